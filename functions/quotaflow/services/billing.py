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
import enum
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
    pairs_idle: int = 0  # of those, pairs with nothing pending: no task made
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


class CounterState(Model):
    """What the export needs of one counter item, as read (by the planner, for the current counter)."""

    sk: str
    period_key: str
    period_end: str | None = None
    used: int
    exported: int = 0
    exporting: int | None = None  # a send recorded and maybe under way, from `exported`
    export_closed: str | None = None  # current counters: the closed period still to flush ("" none, None unknown)

    @classmethod
    def of(cls, item: Item) -> CounterState:
        return cls.model_validate({name: item.get(name) for name in _STATE_FIELDS if item.get(name) is not None})

    @property
    def pending(self) -> bool:
        """Something to send: a recorded send to confirm, new usage, or a closed period to flush."""
        return self.exporting is not None or self.used > self.exported or self.export_closed != ""


_STATE_FIELDS = ("sk", "period_key", "period_end", "used", "exported", "exporting", "export_closed")


class Subject(Model):
    """One counter family of a pair: a user's meter (several users may bill to one customer)."""

    user_id: str
    meter: str
    current: CounterState | None = None  # the current counter as the planner read it; None: the worker reads it


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
    """The worker: one (customer, meter) pair's pending deltas, one call at a time, each recorded before it is sent
    and followed by its watermark. The current counter comes as the planner read it; every write is conditioned on
    the watermark as read, so a stale read (a redelivered task, a concurrent run) sends nothing twice and is read
    again once. Closed periods are read only for a counter marked with one. `gateway` is None for a dry run."""
    now = parse_iso(task.now)
    report = ExportReport(now=task.now, dry_run=task.dry_run, pairs=1)
    for subject in task.subjects:
        current = subject.current
        if current is None:
            current = _read(store, keys.counter_current(task.tenant_id, subject.user_id, subject.meter))
            report.counters_checked += 1
        if current is not None:
            _export_counter(store, gateway, task, subject, current, now, report)
        if current is None or current.export_closed != "":
            _flush_closed(store, gateway, task, subject, current, now, report)
    return report


def _flush_closed(
    store: Store,
    gateway: StripeGateway | None,
    task: PairTask,
    subject: Subject,
    current: CounterState | None,
    now: datetime,
    report: ExportReport,
) -> None:
    """The meter's last closed counters (a closed period's final flush); when all went out, the current counter's
    mark is cleared so the next runs skip this read."""
    partition = keys.user_partition(task.tenant_id, subject.user_id)
    closed = store.query(
        partition, f"{keys.COUNTER_CLOSED_PREFIX}{subject.meter}#", limit=CLOSED_PERIODS_READ_MAX, newest_first=True
    ).items
    report.counters_checked += len(closed)
    settled = [_export_counter(store, gateway, task, subject, CounterState.of(item), now, report) for item in closed]
    if current is not None and gateway is not None and all(settled):
        _clear_mark(store, {"pk": partition, "sk": current.sk}, current)


def _clear_mark(store: Store, key: dict[str, str], current: CounterState) -> None:
    """Nothing closed is left to flush: unless a period closed again meanwhile (a newer mark), say so."""
    seen = "attribute_not_exists(export_closed)" if current.export_closed is None else "export_closed = :seen"
    values: dict[str, Any] = {":none": "", ":one": 1, ":pk": current.period_key}
    if current.export_closed is not None:
        values[":seen"] = current.export_closed
    with contextlib.suppress(ConditionFailed):
        store.update(
            key, "SET export_closed = :none ADD rev :one", condition=f"period_key = :pk AND {seen}", values=values
        )


def _export_counter(
    store: Store,
    gateway: StripeGateway | None,
    task: PairTask,
    subject: Subject,
    state: CounterState,
    now: datetime,
    report: ExportReport,
) -> bool:
    """Every pending delta of one counter; True when nothing is left pending. A record refused because the
    counter moved since it was read is followed by one fresh read."""
    for fresh in (False, True):
        outcome = Sent.DONE
        for billable in _billables(task, subject, state, now):
            if gateway is None:
                report.events_sent += 1
                report.value_sent += billable.delta
                continue
            outcome = _send(store, gateway, billable, now, report)
            if outcome is not Sent.DONE:
                break
        if outcome is not Sent.STALE or fresh:
            return outcome is Sent.DONE
        reread = _read(store, {"pk": keys.user_partition(task.tenant_id, subject.user_id), "sk": state.sk})
        if reread is None:
            return True
        state = reread
    return False


def _read(store: Store, key: dict[str, str]) -> CounterState | None:
    item = store.get(key)
    return CounterState.of(item) if item is not None else None


def _billables(task: PairTask, subject: Subject, state: CounterState, now: datetime) -> Iterator[Billable]:
    # A send under way goes out again as it was; what was used beyond it follows in a second event (recorded only
    # once the first has moved the watermark).
    sending = state.exporting or 0
    deltas = [(state.exported, sending, True)] if state.exporting is not None else []
    deltas.append((state.exported + sending, state.used - state.exported - sending, False))
    key = {"pk": keys.user_partition(task.tenant_id, subject.user_id), "sk": state.sk}
    for base, delta, resend in deltas:
        if delta <= 0:
            continue
        event = MeterEvent(
            event_name=task.event_name,
            customer_id=task.customer_id,
            value=delta,
            identifier=identifier(task.tenant_id, subject.user_id, subject.meter, state.period_key, base),
            timestamp_epoch_s=_timestamp(state.period_end, now),
        )
        yield Billable(
            task.tenant_id, subject.user_id, subject.meter, key, state.period_key, base, delta, event, resend
        )


class Sent(enum.Enum):
    DONE = "done"  # Stripe holds the event and the watermark moved (or another run moved it first)
    FAILED = "failed"  # reported in `failed`; the record stays, so a later run resends exactly this
    STALE = "stale"  # not sent: the counter moved since it was read


def _send(store: Store, gateway: StripeGateway, billable: Billable, now: datetime, report: ExportReport) -> Sent:
    failure: str | None = None
    retryable = False
    if now - datetime.fromtimestamp(billable.event.timestamp_epoch_s, now.tzinfo) > STRIPE_TIMESTAMP_AGE_MAX:
        failure = "the period closed more than 35 days ago: Stripe no longer accepts its usage"
    if failure is None and not billable.in_flight and not _record(store, billable):
        return Sent.STALE  # a concurrent run (or an earlier delivery of this task) recorded or sent it first
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
        return Sent.FAILED
    _advance(store, billable)
    report.events_sent += 1
    report.value_sent += billable.delta
    return Sent.DONE


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
