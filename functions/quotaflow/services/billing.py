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
against the next positive delta.

The work is split into (customer, meter) pairs, Stripe's unit of concurrency (one call at a time per customer and
meter): `billing_plan` enumerates them into `PairTask`s, `export_pair` below is the worker for one task, and
`billing_fanout` runs tasks in parallel in this process (`serve`, the CLI, tests) while AWS runs them from a FIFO
queue grouped by pair. Only the record, the watermark and the identifier make the export exactly once; the
fan-out only decides who sends what when."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field

from quotaflow.ledger.model import Model
from quotaflow.ledger.periods import NO_PERIOD, parse_iso
from quotaflow.store import keys
from quotaflow.store.table import ConditionFailed, Item, Store
from quotaflow.stripe_gateway import MeterEvent, StripeGateway, StripeRejected, StripeRetryable

CLOSED_PERIODS_READ_MAX = 3  # Stripe takes events up to 35 days old: older periods cannot be billed anyway
SEND_ATTEMPTS_MAX = 3
BACKOFF_BASE_S = 0.5
STRIPE_TIMESTAMP_AGE_MAX = timedelta(days=35)
PAIR_ID_HEX_CHARS = 64


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
    retryable: bool = False  # Stripe was unavailable: a later delivery or run may succeed


class ExportReport(Model):
    now: str
    dry_run: bool
    tenants: int = 0
    pairs: int = 0  # (customer, meter) pairs planned
    enqueued: int = 0  # tasks put on the export queue (AWS); 0 when the pairs ran in this process
    counters_checked: int = 0
    events_sent: int = 0
    value_sent: int = 0
    skipped: list[Skipped] = Field(default_factory=list)
    failed: list[Failed] = Field(default_factory=list)

    def add(self, part: ExportReport) -> None:
        """Fold one worker's report into the run's."""
        self.counters_checked += part.counters_checked
        self.events_sent += part.events_sent
        self.value_sent += part.value_sent
        self.skipped += part.skipped
        self.failed += part.failed


class Subject(Model):
    """One counter family of a pair: a user's meter (several users may bill to one customer)."""

    user_id: str
    meter: str


class PairTask(Model):
    """One unit of export work, as queued: a (customer, meter) pair of one tenant and the counters billed to it.
    Carries no secret: the worker loads the tenant's Stripe key itself."""

    tenant_id: str
    customer_id: str
    event_name: str
    subjects: list[Subject]
    now: str  # the run's clock, so a redelivery stamps events as the run would have
    dry_run: bool = False

    @property
    def pair_id(self) -> str:
        """Stripe's concurrency unit, as a queue's message group: tenant (its Stripe account), customer, meter."""
        digest = hashlib.sha256(f"{self.tenant_id}|{self.customer_id}|{self.event_name}".encode()).hexdigest()
        return digest[:PAIR_ID_HEX_CHARS]


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


def export_pair(store: Store, gateway: StripeGateway | None, task: PairTask) -> ExportReport:
    """The worker: one (customer, meter) pair's pending deltas, one call at a time, each followed by its watermark.
    The counters are read here, not in the planner, so a redelivered or stale task sends only what is still
    pending under the identifiers Stripe already holds. `gateway` is None for a dry run."""
    now = parse_iso(task.now)
    report = ExportReport(now=task.now, dry_run=task.dry_run, pairs=1)
    for subject in task.subjects:
        for billable in _subject_billables(store, task, subject, now, report):
            if gateway is None:
                report.events_sent += 1
                report.value_sent += billable.delta
            else:
                _send(store, gateway, billable, now, report)
    return report


def _subject_billables(
    store: Store, task: PairTask, subject: Subject, now: datetime, report: ExportReport
) -> Iterator[Billable]:
    for item in _counter_items(store, task.tenant_id, subject.user_id, subject.meter):
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
                event_name=task.event_name,
                customer_id=task.customer_id,
                value=delta,
                identifier=identifier(task.tenant_id, subject.user_id, subject.meter, item["period_key"], base),
                timestamp_epoch_s=_timestamp(item.get("period_end"), now),
            )
            yield Billable(
                task.tenant_id, subject.user_id, subject.meter, key, item["period_key"], base, delta, event, resend
            )


def _counter_items(store: Store, tenant_id: str, user_id: str, meter: str) -> list[Item]:
    """The meter's current counter and its last closed ones (a closed period's final flush)."""
    partition = keys.user_partition(tenant_id, user_id)
    closed = store.query(
        partition, f"{keys.COUNTER_CLOSED_PREFIX}{meter}#", limit=CLOSED_PERIODS_READ_MAX, newest_first=True
    ).items
    current = store.get(keys.counter_current(tenant_id, user_id, meter))
    return [current, *closed] if current else closed


def _send(store: Store, gateway: StripeGateway, billable: Billable, now: datetime, report: ExportReport) -> None:
    failure: str | None = None
    retryable = False
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
            failure, retryable = f"Stripe unavailable after {attempt + 1} attempts: {transient}", True
            if attempt + 1 < SEND_ATTEMPTS_MAX:
                time.sleep(transient.retry_after_seconds or BACKOFF_BASE_S * 2**attempt)
        except StripeRejected as rejected:
            failure, retryable = f"Stripe refused it: {rejected}", False
            break
    if failure is not None:
        report.failed.append(
            Failed(
                tenant_id=billable.tenant_id,
                user_id=billable.user_id,
                meter=billable.meter,
                period_start=None if billable.period_key == NO_PERIOD else billable.period_key,
                error=failure,
                retryable=retryable,
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
