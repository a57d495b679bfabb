"""A tenant's Stripe settings: API key and webhook signing secret sealed at rest, shown masked; credit packs and
plans by Stripe price id."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from quotaflow.ledger.amounts import Amount, EntityId, MeterKey
from quotaflow.ledger.errors import NotFound
from quotaflow.ledger.model import Model
from quotaflow.ledger.periods import iso, parse_iso
from quotaflow.services.scope import Scope
from quotaflow.store import keys
from quotaflow.store.secret_box import SecretBox
from quotaflow.store.table import Item, Store

SIGNING_SECRET_OVERLAP = timedelta(hours=24)  # Stripe signs with the old and the new secret for up to 24 h
PRICE_MAPPINGS_MAX = 100
StripeId = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")]
Secret = Annotated[str, StringConstraints(min_length=8, max_length=255)]


class CreditPack(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    meter: MeterKey
    amount: Amount


class StripeConfigBody(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_secret: Secret
    api_key: Secret
    credit_packs: dict[StripeId, CreditPack] = Field(default={}, max_length=PRICE_MAPPINGS_MAX)
    plans_by_price: dict[StripeId, EntityId] = Field(default={}, max_length=PRICE_MAPPINGS_MAX)


class StripeConfigView(Model):
    webhook_secret: str
    api_key: str
    credit_packs: dict[str, CreditPack]
    plans_by_price: dict[str, str]
    updated_at: str


@dataclass(frozen=True)
class StripeConfig:
    api_key: str
    webhook_secrets: list[str]
    credit_packs: dict[str, CreditPack] = field(default_factory=dict)
    plans_by_price: dict[str, str] = field(default_factory=dict)


def _mask(secret: str) -> str:
    return "…" + secret[-4:]


def put_config(scope: Scope, box: SecretBox, body: StripeConfigBody) -> StripeConfigView:
    """Store the settings; a new webhook secret keeps the previous one valid for SIGNING_SECRET_OVERLAP."""
    previous = load_config(scope.store, box, scope.tenant_id, scope.now)
    item: Item = {
        **keys.stripe_config(scope.tenant_id),
        "api_key_sealed": box.seal(scope.tenant_id, body.api_key),
        "webhook_secret_sealed": box.seal(scope.tenant_id, body.webhook_secret),
        "api_key_masked": _mask(body.api_key),
        "webhook_secret_masked": _mask(body.webhook_secret),
        "credit_packs": {price: pack.model_dump() for price, pack in body.credit_packs.items()},
        "plans_by_price": dict(body.plans_by_price),
        "updated_at": iso(scope.now),
    }
    if previous is not None and previous.webhook_secrets[0] != body.webhook_secret:
        item["previous_webhook_secret_sealed"] = box.seal(scope.tenant_id, previous.webhook_secrets[0])
        item["previous_valid_until"] = iso(scope.now + SIGNING_SECRET_OVERLAP)
    tx = scope.store.transaction()
    tx.put("config", item)
    tx.put("registry", {**keys.stripe_tenant(scope.tenant_id), "tenant_id": scope.tenant_id})
    scope.store.transact(tx)
    return _view(item)


def _view(item: Item) -> StripeConfigView:
    return StripeConfigView(
        webhook_secret=item["webhook_secret_masked"],
        api_key=item["api_key_masked"],
        credit_packs={price: CreditPack.model_validate(pack) for price, pack in item["credit_packs"].items()},
        plans_by_price=item["plans_by_price"],
        updated_at=item["updated_at"],
    )


def get_config(scope: Scope) -> StripeConfigView:
    item = scope.store.get(keys.stripe_config(scope.tenant_id))
    if item is None:
        raise NotFound("this tenant has no Stripe configuration")
    return _view(item)


def load_config(store: Store, box: SecretBox, tenant_id: str, now: datetime) -> StripeConfig | None:
    """The tenant's settings with secrets opened (webhook secrets current first), or None if it has none."""
    item = store.get(keys.stripe_config(tenant_id))
    if item is None:
        return None
    secrets = [box.open(tenant_id, item["webhook_secret_sealed"])]
    previous_until = item.get("previous_valid_until")
    if previous_until and parse_iso(previous_until) > now:
        secrets.append(box.open(tenant_id, item["previous_webhook_secret_sealed"]))
    return StripeConfig(
        api_key=box.open(tenant_id, item["api_key_sealed"]),
        webhook_secrets=secrets,
        credit_packs={price: CreditPack.model_validate(pack) for price, pack in item["credit_packs"].items()},
        plans_by_price=item["plans_by_price"],
    )
