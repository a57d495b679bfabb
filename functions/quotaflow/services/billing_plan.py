"""The billing export's planner: every tenant with a Stripe configuration, every plan that names meter events, every
subscriber with a Stripe customer, grouped into (customer, meter) pairs — the unit a worker exports alone.

The planner reads subscriptions (bounded pages of the plan-subscribers index) and then the pairs' current counters,
100 per BatchGetItem: a pair with nothing pending (no new usage, no send to confirm, no closed period marked for
its final flush) becomes no task at all, and a task carries the counters as read, so its worker reads nothing
before its first write (each write is conditioned on the watermark as read: a stale task sends nothing twice).
Users that bill to one customer share its pairs; a pair with more subjects than fit one task becomes several
tasks of the same pair, which the queue runs in turn."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime

from quotaflow.ledger.periods import iso
from quotaflow.services.billing import CounterState, ExportReport, PairTask, Skipped, Subject
from quotaflow.services.stripe_config import load_config
from quotaflow.store import items, keys
from quotaflow.store.secret_box import SecretBox
from quotaflow.store.table import BATCH_GET_KEYS_MAX, Store

TENANT_PAGES_MAX = 10
SUBSCRIBER_PAGES_MAX = 100
SUBJECTS_PER_TASK_MAX = 50  # keeps a queued task far below SQS's 256 KiB and a worker's run short
Progress = Callable[[str], None]


def plan(
    store: Store, box: SecretBox, now: datetime, report: ExportReport, progress: Progress | None = None
) -> Iterator[PairTask]:
    """Every pair with something pending, tenant by tenant; skips and counts go on `report`."""
    for registered in store.query_all(keys.STRIPE_TENANTS, "", pages_max=TENANT_PAGES_MAX):
        tenant_id = registered["tenant_id"]
        if load_config(store, box, tenant_id, now) is None:
            continue
        report.tenants += 1
        pairs = _tenant_pairs(store, tenant_id, report)
        report.pairs += len(pairs)
        if progress:
            progress(f"tenant {tenant_id}: {len(pairs)} customer+meter pairs")
        for chunk in _chunks(sorted(pairs.items())):
            for (customer_id, event_name), subjects in _pending(store, tenant_id, chunk, report):
                for start in range(0, len(subjects), SUBJECTS_PER_TASK_MAX):
                    yield PairTask(
                        tenant_id=tenant_id,
                        customer_id=customer_id,
                        event_name=event_name,
                        subjects=subjects[start : start + SUBJECTS_PER_TASK_MAX],
                        now=iso(now),
                        dry_run=report.dry_run,
                    )


Pair = tuple[tuple[str, str], list[Subject]]  # (customer, event name) and the counters billed to it


def _chunks(pairs: list[Pair]) -> Iterator[list[Pair]]:
    """Pairs in groups of about one batch read of subjects, so the first tasks start while the rest is read."""
    chunk: list[Pair] = []
    subjects = 0
    for pair in pairs:
        chunk.append(pair)
        subjects += len(pair[1])
        if subjects >= BATCH_GET_KEYS_MAX:
            yield chunk
            chunk, subjects = [], 0
    if chunk:
        yield chunk


def _pending(store: Store, tenant_id: str, chunk: list[Pair], report: ExportReport) -> list[Pair]:
    """The chunk's pairs with each subject's current counter attached (read in batches), keeping only subjects
    with something pending; a pair left with none is idle. A counter that does not exist has nothing to send."""
    wanted = [
        keys.counter_current(tenant_id, subject.user_id, subject.meter) for _, listed in chunk for subject in listed
    ]
    found: dict[tuple[str, str], CounterState] = {}
    for start in range(0, len(wanted), BATCH_GET_KEYS_MAX):
        read = store.get_many(wanted[start : start + BATCH_GET_KEYS_MAX])
        found |= {(item["pk"], item["sk"]): CounterState.of(item) for item in read if item is not None}
    report.counters_checked += len(found)
    pending: list[Pair] = []
    for pair, listed in chunk:
        for subject in listed:
            key = keys.counter_current(tenant_id, subject.user_id, subject.meter)
            subject.current = found.get((key["pk"], key["sk"]))
        kept = [subject for subject in listed if subject.current is not None and subject.current.pending]
        if kept:
            pending.append((pair, kept))
        else:
            report.pairs_idle += 1
    return pending


def _tenant_pairs(store: Store, tenant_id: str, report: ExportReport) -> dict[tuple[str, str], list[Subject]]:
    pairs: dict[tuple[str, str], list[Subject]] = defaultdict(list)
    pk, prefix = keys.plans_prefix(tenant_id)
    for plan_item in store.query_all(pk, prefix, pages_max=TENANT_PAGES_MAX):
        stored_plan = items.plan_from(plan_item)
        names = stored_plan.stripe.meter_event_names
        report.skipped += [
            Skipped(
                tenant_id=tenant_id,
                user_id=None,
                meter=meter,
                reason=f"plan {stored_plan.plan_id} names no Stripe meter event for it",
            )
            for meter in sorted(set(stored_plan.limits) - set(names))
        ]
        if not names:
            continue
        for subscriber in store.query_all(
            keys.plan_subscribers(tenant_id, stored_plan.plan_id),
            "",
            pages_max=SUBSCRIBER_PAGES_MAX,
            index=keys.GSI_PLAN_SUBSCRIBERS,
        ):
            user_id = subscriber["gsi1sk"]
            customer = subscriber["subscription"].get("stripe_customer_id")
            if not customer:
                report.skipped += [
                    Skipped(tenant_id=tenant_id, user_id=user_id, meter=meter, reason="no stripe_customer_id")
                    for meter in sorted(names)
                ]
                continue
            for meter, event_name in sorted(names.items()):
                pairs[(customer, event_name)].append(Subject(user_id=user_id, meter=meter))
    return pairs
