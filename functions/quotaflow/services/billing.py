"""Post-paid usage to Stripe Billing Meter Events: for every billable counter, what was used since the last push.

A counter is billable when its user's plan names a Stripe meter event for the meter and the subscription has a
Stripe customer. Each run records `used - exported` (when positive) on the counter as `exporting`, sends it as one
meter event whose identifier is derived from (tenant, user, meter, period, exported), then advances `exported` by
it and clears `exporting`, each with a conditional write. A crash or a rerun after the record resends exactly the
recorded value under the same identifier, which Stripe refuses as a duplicate if it already holds it: nothing is
billed twice, and usage added meanwhile goes out in the next event, not folded into a resend Stripe would drop.
Deltas go out continuously (hourly), so Stripe files usage in the right invoice whatever the customer's billing
anchor; the first run after a period ends flushes what is left of it, stamped inside it. A refund after an export
leaves `used` below `exported`: nothing is sent until usage passes the watermark again, so the refund is netted
against the next positive delta."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field

from quotaflow.ledger.model import Model
from quotaflow.ledger.periods import NO_PERIOD, iso, parse_iso
from quotaflow.services.scope import ContainerCache, Scope
from quotaflow.services.stripe_config import load_config
from quotaflow.store import items, keys
from quotaflow.store.secret_box import SecretBox
from quotaflow.store.table import ConditionFailed, Item, Store
from quotaflow.stripe_gateway import MeterEvent, StripeGateway, StripeRejected, StripeRetryable

TENANT_PAGES_MAX = 10
SUBSCRIBER_PAGES_MAX = 100
CLOSED_PERIODS_READ_MAX = 3  # Stripe takes events up to 35 days old: older periods cannot be billed anyway
SEND_ATTEMPTS_MAX = 3
BACKOFF_BASE_S = 0.5
STRIPE_TIMESTAMP_AGE_MAX = timedelta(days=35)
Gateways = Callable[[str], StripeGateway]  # the tenant's API key -> a gateway
Progress = Callable[[str], None]


class Skipped(Model):
    tenant_id: str
    user_id: str | None
    meter: str
    reason: str


class Failed(Model):
    tenant_id: str
    user_id: str
    meter: str
    period_start: str | None
    error: str


class ExportReport(Model):
    now: str
    dry_run: bool
    tenants: int = 0
    counters_checked: int = 0
    events_sent: int = 0
    value_sent: int = 0
    skipped: list[Skipped] = Field(default_factory=list)
    failed: list[Failed] = Field(default_factory=list)


@dataclass(frozen=True)
class Billable:
    """One counter's pending delta, as it will be sent."""

    tenant_id: str
    user_id: str
    meter: str
    key: dict[str, str]  # the counter item
    period_key: str
    exported: int
    delta: int
    event: MeterEvent
    in_flight: bool  # recorded as `exporting` by an earlier run that may have reached Stripe: resent as it was


def identifier(tenant_id: str, user_id: str, meter: str, period_key: str, exported: int) -> str:
    digest = hashlib.sha256(f"{tenant_id}|{user_id}|{meter}|{period_key}|{exported}".encode()).hexdigest()
    return f"qf_{digest[:48]}"


def _timestamp(period_end: str | None, now: datetime) -> int:
    """Inside the period the usage belongs to: now, or the last second of a period that has closed."""
    if period_end is None or parse_iso(period_end) > now:
        return int(now.timestamp())
    return int(parse_iso(period_end).timestamp()) - 1


def export(
    store: Store,
    box: SecretBox,
    now: datetime,
    gateways: Gateways,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ExportReport:
    report = ExportReport(now=iso(now), dry_run=dry_run)
    for registered in store.query_all(keys.STRIPE_TENANTS, "", pages_max=TENANT_PAGES_MAX):
        tenant_id = registered["tenant_id"]
        config = load_config(store, box, tenant_id, now)
        if config is None:
            continue
        report.tenants += 1
        if progress:
            progress(f"tenant {tenant_id}: {report.events_sent} events sent so far")
        gateway = None if dry_run else gateways(config.api_key)
        for billable in _billables(Scope(store, tenant_id, now, ContainerCache()), report):
            if dry_run:
                report.events_sent += 1
                report.value_sent += billable.delta
            elif gateway is not None:
                _send(store, gateway, billable, now, report)
    return report


def _billables(scope: Scope, report: ExportReport) -> Iterator[Billable]:
    pk, prefix = keys.plans_prefix(scope.tenant_id)
    for plan_item in scope.store.query_all(pk, prefix, pages_max=TENANT_PAGES_MAX):
        plan = items.plan_from(plan_item)
        names = plan.stripe.meter_event_names
        report.skipped += [
            Skipped(
                tenant_id=scope.tenant_id,
                user_id=None,
                meter=meter,
                reason=f"plan {plan.plan_id} names no Stripe meter event for it",
            )
            for meter in sorted(set(plan.limits) - set(names))
        ]
        if not names:
            continue
        for subscriber in scope.store.query_all(
            keys.plan_subscribers(scope.tenant_id, plan.plan_id),
            "",
            pages_max=SUBSCRIBER_PAGES_MAX,
            index=keys.GSI_PLAN_SUBSCRIBERS,
        ):
            yield from _user_billables(scope, subscriber, names, report)


def _user_billables(
    scope: Scope, subscription: Item, names: dict[str, str], report: ExportReport
) -> Iterator[Billable]:
    user_id = subscription["gsi1sk"]
    customer = subscription["subscription"].get("stripe_customer_id")
    if not customer:
        report.skipped += [
            Skipped(tenant_id=scope.tenant_id, user_id=user_id, meter=meter, reason="no stripe_customer_id")
            for meter in sorted(names)
        ]
        return
    for meter, event_name in sorted(names.items()):
        for item in _counter_items(scope, user_id, meter):
            report.counters_checked += 1
            exported, in_flight = item.get("exported", 0), item.get("exporting")
            # A send under way goes out again as it was; what was used beyond it follows in a second event
            # (recorded only once the first has moved the watermark).
            sending = in_flight or 0
            deltas = [(exported, sending, True)] if in_flight is not None else []
            deltas.append((exported + sending, item["used"] - exported - sending, False))
            key = {"pk": item["pk"], "sk": item["sk"]}
            for base, delta, resend in deltas:
                if delta <= 0:
                    continue
                event = MeterEvent(
                    event_name=event_name,
                    customer_id=customer,
                    value=delta,
                    identifier=identifier(scope.tenant_id, user_id, meter, item["period_key"], base),
                    timestamp_epoch_s=_timestamp(item.get("period_end"), scope.now),
                )
                yield Billable(scope.tenant_id, user_id, meter, key, item["period_key"], base, delta, event, resend)


def _counter_items(scope: Scope, user_id: str, meter: str) -> list[Item]:
    """The meter's current counter and its last closed ones (a closed period's final flush)."""
    partition = keys.user_partition(scope.tenant_id, user_id)
    closed = scope.store.query(
        partition, f"{keys.COUNTER_CLOSED_PREFIX}{meter}#", limit=CLOSED_PERIODS_READ_MAX, newest_first=True
    ).items
    current = scope.store.get(keys.counter_current(scope.tenant_id, user_id, meter))
    return [current, *closed] if current else closed


def _send(store: Store, gateway: StripeGateway, billable: Billable, now: datetime, report: ExportReport) -> None:
    failure: str | None = None
    if now - datetime.fromtimestamp(billable.event.timestamp_epoch_s, now.tzinfo) > STRIPE_TIMESTAMP_AGE_MAX:
        failure = "the period closed more than 35 days ago: Stripe no longer accepts its usage"
    if failure is None and not billable.in_flight and not _record(store, billable):
        return  # a concurrent run recorded or sent this delta first
    for attempt in range(SEND_ATTEMPTS_MAX if failure is None else 0):
        try:
            gateway.send_meter_event(billable.event)
            failure = None
            break
        except StripeRetryable as transient:
            failure = f"Stripe unavailable after {attempt + 1} attempts: {transient}"
            if attempt + 1 < SEND_ATTEMPTS_MAX:
                time.sleep(transient.retry_after_seconds or BACKOFF_BASE_S * 2**attempt)
        except StripeRejected as rejected:
            failure = f"Stripe refused it: {rejected}"
            break
    if failure is not None:
        report.failed.append(
            Failed(
                tenant_id=billable.tenant_id,
                user_id=billable.user_id,
                meter=billable.meter,
                period_start=None if billable.period_key == NO_PERIOD else billable.period_key,
                error=failure,
            )
        )
        return
    _advance(store, billable)
    report.events_sent += 1
    report.value_sent += billable.delta


_WATERMARK_AS_READ = "period_key = :pk AND (attribute_not_exists(exported) OR exported = :read)"


def _record(store: Store, billable: Billable) -> bool:
    """Note the delta about to be sent, before it can reach Stripe: whatever happens next, a later run resends this
    value and no other under this identifier. False when the counter's watermark moved since it was read."""
    try:
        store.update(
            billable.key,
            "SET exporting = :delta ADD rev :one",
            condition=f"{_WATERMARK_AS_READ} AND attribute_not_exists(exporting)",
            values={":delta": billable.delta, ":one": 1, ":pk": billable.period_key, ":read": billable.exported},
        )
    except ConditionFailed:
        return False
    return True


def _advance(store: Store, billable: Billable) -> None:
    """Move the watermark past what was sent and clear the record; a concurrent run that moved it first wins."""
    with contextlib.suppress(ConditionFailed):
        store.update(
            billable.key,
            "SET exported = :sent REMOVE exporting ADD rev :one",
            condition=_WATERMARK_AS_READ,
            values={
                ":sent": billable.exported + billable.delta,
                ":one": 1,
                ":pk": billable.period_key,
                ":read": billable.exported,
            },
        )
