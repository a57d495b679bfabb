"""Stripe events, once verified, applied at most once: credit packs bought, plans changed, payments refunded.
Each grant is written with a marker for (event, pack) in the same transaction; other effects are idempotent in
themselves (moving a user to a plan twice is moving them once), and their marker is written after them."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from quotaflow.ledger.amounts import ID_PATTERN
from quotaflow.ledger.errors import NotFound
from quotaflow.ledger.periods import iso
from quotaflow.services import credits, plans, users
from quotaflow.services.scope import Scope
from quotaflow.services.stripe_config import StripeConfig
from quotaflow.store import keys
from quotaflow.store.table import ConditionFailed, Item

GRANTS_PER_PAYMENT_MAX = 20
ANCHOR_EPOCH_S_MAX = 253_402_300_799  # 9999-12-31T23:59:59Z: anything later is not a time
LineItems = Callable[[str], list[tuple[str, int]]]  # checkout session id -> [(price id, quantity)] from Stripe


def apply(scope: Scope, config: StripeConfig, event: dict[str, Any], line_items: LineItems) -> str:
    """Apply a verified event; returns what happened, for the log ("ignored: …" for events with no effect)."""
    event_id, kind = str(event.get("id", "")), str(event.get("type", ""))
    obj: dict[str, Any] = (event.get("data") or {}).get("object") or {}
    if not event_id:
        return "ignored: no event id"
    if scope.store.get(keys.stripe_event(scope.tenant_id, event_id)) is not None:
        return "already applied"
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        outcome = _credit_packs(scope, config, event_id, kind, obj, line_items)
    elif kind in ("customer.subscription.created", "customer.subscription.updated"):
        plan_id = config.plans_by_price.get(_subscription_price(obj) or "")
        outcome = _move_to_plan(scope, obj, plan_id, _current_period_start(obj))
    elif kind == "customer.subscription.deleted":
        outcome = _move_to_plan(scope, obj, users.default_plan_id(scope), None)
    elif kind == "charge.refunded":
        outcome = _revoke(scope, obj)
    else:
        outcome = f"ignored: {kind or 'untyped'} events have no effect"
    _mark(scope, keys.stripe_event(scope.tenant_id, event_id), kind)
    return outcome


def _mark(scope: Scope, key: dict[str, str], kind: str) -> None:
    with contextlib.suppress(ConditionFailed):  # a concurrent delivery of the same event got here first
        scope.store.put({**key, "type": kind, "applied_at": iso(scope.now)}, condition="attribute_not_exists(pk)")


def _user_of(scope: Scope, obj: dict[str, Any], *, allow_reference: bool) -> str | None:
    """The holder an event is for: `metadata.quotaflow_account_id` (a pool), else `quotaflow_user_id`, else the
    session's `client_reference_id`, else whoever the Stripe customer is linked to. Ids that are not valid
    quotaflow ids are ignored (they never reach a key)."""
    metadata = obj.get("metadata") or {}
    account = metadata.get("quotaflow_account_id")
    if isinstance(account, str) and re.fullmatch(ID_PATTERN, account):
        return keys.account_holder(account)
    user = metadata.get("quotaflow_user_id") or (obj.get("client_reference_id") if allow_reference else None)
    if isinstance(user, str) and re.fullmatch(ID_PATTERN, user):
        return user
    customer = obj.get("customer")
    if isinstance(customer, str):
        pointer = scope.store.get(keys.stripe_customer(scope.tenant_id, customer))
        return str(pointer["user_id"]) if pointer else None
    return None


def _credit_packs(
    scope: Scope, config: StripeConfig, event_id: str, kind: str, session: dict[str, Any], line_items: LineItems
) -> str:
    if kind == "checkout.session.completed" and session.get("payment_status") != "paid":
        return "ignored: not paid yet (async_payment_succeeded will follow)"
    user = _user_of(scope, session, allow_reference=True)
    if user is None:
        return "ignored: no quotaflow_user_id or client_reference_id"
    named = (session.get("metadata") or {}).get("quotaflow_price_id")
    bought = [(str(named), 1)] if named else _line_items(session, line_items)
    packs = [
        (price, quantity, config.credit_packs[price]) for price, quantity in bought if price in config.credit_packs
    ]
    granted: list[Item] = []
    payment = session.get("payment_intent") if isinstance(session.get("payment_intent"), str) else None
    for index, (price, quantity, pack) in enumerate(packs[:GRANTS_PER_PAYMENT_MAX]):
        marker = {**keys.stripe_event(scope.tenant_id, f"{event_id}#{index}"), "type": kind}
        source = {"stripe_event": event_id, "price_id": price, "payment_intent": payment}
        try:
            view = credits.grant(scope, user, pack.meter, pack.amount * quantity, None, None, source, marker)
        except credits.AlreadyApplied:
            continue
        granted.append({"user_id": user, "meter": pack.meter, "grant_id": view.grant_id})
    if payment and granted:
        existing = scope.store.get(keys.stripe_payment(scope.tenant_id, payment)) or {}
        scope.store.put(
            {**keys.stripe_payment(scope.tenant_id, payment), "grants": [*existing.get("grants", []), *granted]}
        )
    return f"granted {len(granted)} of {len(packs)} credit packs to {user}"


def _line_items(session: dict[str, Any], line_items: LineItems) -> list[tuple[str, int]]:
    embedded = (session.get("line_items") or {}).get("data")
    if embedded is None:
        return line_items(str(session.get("id", "")))
    return [(str((row.get("price") or {}).get("id")), int(row.get("quantity") or 1)) for row in embedded]


def _subscription_price(subscription: dict[str, Any]) -> str | None:
    rows = (subscription.get("items") or {}).get("data") or []
    return str((rows[0].get("price") or {}).get("id")) if rows else None


def _current_period_start(subscription: dict[str, Any]) -> datetime | None:
    """Where Stripe's billing period starts: the item's `current_period_start` (API 2025-03-31.basil on), else
    the subscription's own (earlier versions)."""
    rows = (subscription.get("items") or {}).get("data") or []
    for holder in (rows[0] if rows and isinstance(rows[0], dict) else {}, subscription):
        start = holder.get("current_period_start")
        if isinstance(start, int) and not isinstance(start, bool) and 0 < start < ANCHOR_EPOCH_S_MAX:
            return datetime.fromtimestamp(start, UTC)
    return None


def _move_to_plan(
    scope: Scope, subscription: dict[str, Any], plan_id: str | None, period_anchor: datetime | None
) -> str:
    user = _user_of(scope, subscription, allow_reference=False)
    if user is None:
        return "ignored: no quotaflow_user_id, and the customer is not linked to a user"
    if plan_id is None:
        return "ignored: no plan for this price (plans_by_price), or no default plan"
    try:
        plan = users.get_plan(scope, plan_id)
    except NotFound:
        return f"ignored: plan {plan_id} does not exist"
    customer = subscription.get("customer") if isinstance(subscription.get("customer"), str) else None
    plans.link_customer(scope, user, customer)
    # the anchor follows Stripe's billing period (cleared when the subscription ends): quotas reset on the invoice date
    users.resync(scope, user, plan, changes={"stripe_customer_id": customer, "period_anchor": period_anchor})
    return f"moved {user} to {plan_id}"


def _revoke(scope: Scope, charge: dict[str, Any]) -> str:
    payment = charge.get("payment_intent")
    pointer = scope.store.get(keys.stripe_payment(scope.tenant_id, payment)) if isinstance(payment, str) else None
    if pointer is None:
        return "ignored: not a credit-pack payment"
    taken = 0
    for granted in pointer["grants"]:
        removed = credits.end_grant(
            scope,
            granted["user_id"],
            granted["meter"],
            granted["grant_id"],
            "revoked",
            f"charge {charge.get('id')} refunded",
        )
        taken += removed or 0
    return f"revoked {taken} unspent credits"
