"""Importing a model price catalog (the public LiteLLM cost map) into a tenant's prices, one model at a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quotaflow.ledger.errors import InvalidRequest
from quotaflow.ledger.model import Model
from quotaflow.ledger.price_catalog import IMPORT_MODELS_MAX, Skipped, catalog_price
from quotaflow.services import pricing
from quotaflow.services.idempotency import IdempotencyClaim
from quotaflow.services.scope import Scope
from quotaflow.store import keys
from quotaflow.store.table import ConditionFailed


class SkippedView(Model):
    model: str
    reason: str


class ImportView(Model):
    imported: int  # models whose price is new or changed: a new version each
    unchanged: int  # models already at that price: no new version
    skipped: list[SkippedView]


def import_catalog(
    scope: Scope, catalog: Mapping[str, Any], markup_percent: int, claim: IdempotencyClaim | None
) -> ImportView:
    """Every entry of `catalog` (model -> LiteLLM entry, numbers as Decimal) at `markup_percent`. Idempotent: importing
    the same catalog again changes nothing and reports every model as unchanged; a retry under the same
    Idempotency-Key replays the first answer. Each model is its own write, so a duplicate arriving in flight repeats
    writes that change nothing, and then replays the first answer too."""
    if claim is not None:
        stored = scope.store.get(keys.idempotency(scope.tenant_id, claim.key))
        if stored is not None:
            claim.replay_stored(stored)
    view = _import(scope, catalog, markup_percent)
    if claim is not None:
        _remember(scope, claim, view)
    return view


def _remember(scope: Scope, claim: IdempotencyClaim, view: ImportView) -> None:
    try:
        record = claim.record(scope, claim.success_status, view.model_dump())
        scope.store.put(record, condition="attribute_not_exists(pk)")
    except ConditionFailed as taken:
        stored = taken.item or scope.store.get(keys.idempotency(scope.tenant_id, claim.key))
        if stored is not None:
            claim.replay_stored(stored)


def _import(scope: Scope, catalog: Mapping[str, Any], markup_percent: int) -> ImportView:
    if len(catalog) > IMPORT_MODELS_MAX:
        raise InvalidRequest(f"at most {IMPORT_MODELS_MAX} models per import; send the rest in another", field="body")
    imported = unchanged = 0
    skipped: list[SkippedView] = []
    for model, entry in catalog.items():
        body = catalog_price(model, entry, markup_percent)
        if isinstance(body, Skipped):
            skipped.append(SkippedView(model=body.model, reason=body.reason))
            continue
        _, changed = pricing.store_price(scope, model, body)
        imported, unchanged = (imported + 1, unchanged) if changed else (imported, unchanged + 1)
    return ImportView(imported=imported, unchanged=unchanged, skipped=skipped)
