"""The billing export run in this process (`serve`, `quotaflow export`, tests): the planner's tasks on a bounded
thread pool, with a lock per (customer, meter) pair — what the FIFO queue's message groups give in AWS, so the same
planner and worker code keeps Stripe's one-call-at-a-time-per-customer-and-meter rule here too.

A task that raises (a crash mid-pair) is reported as failed and the others go on: its counters keep their
watermarks and the delta recorded for the send under way, so the next run resends exactly that under the same
identifier, which Stripe counts once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import datetime

from quotaflow.ledger.periods import iso, parse_iso
from quotaflow.services.billing import ExportReport, Failed, PairTask, export_pair
from quotaflow.services.billing_plan import Progress, plan
from quotaflow.services.stripe_config import load_config
from quotaflow.store.secret_box import SecretBox
from quotaflow.store.table import Store
from quotaflow.stripe_gateway import StripeGateway

PAIRS_IN_FLIGHT_MAX = 64  # threads; ~400 pairs/s when Stripe answers in 150 ms, far below its 1,000 calls/s
TASKS_QUEUED_MAX = 4 * PAIRS_IN_FLIGHT_MAX  # the planner waits past this many unfinished tasks
TENANTS_CACHED_MAX = 1_000
Gateways = Callable[[str], StripeGateway]  # the tenant's API key -> a gateway
Worker = Callable[[PairTask], ExportReport]


class PairLocks:
    """One lock per pair id while any task holds or waits for it; none kept afterwards (memory stays bounded)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def held(self, pair_id: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(pair_id, (threading.Lock(), 0))
            self._locks[pair_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[pair_id]
                if users == 1:
                    del self._locks[pair_id]
                else:
                    self._locks[pair_id] = (lock, users - 1)


PAIR_LOCKS = PairLocks()  # shared by every run in this process: a timer's run and a manual one never overlap a pair


def run_tasks(
    tasks: Iterator[PairTask],
    worker: Worker,
    report: ExportReport,
    *,
    threads: int = PAIRS_IN_FLIGHT_MAX,
    locks: PairLocks = PAIR_LOCKS,
) -> None:
    """Every task through `worker`, at most `threads` at once and one at a time per pair; results fold into
    `report`. Tasks are drawn from the planner as room frees up, so planning and sending overlap."""

    def one(task: PairTask) -> ExportReport:
        with locks.held(task.pair_id):
            try:
                return worker(task)
            except Exception as crash:  # the task's failure, reported; the run goes on
                return _crashed(task, crash)

    pending: set[Future[ExportReport]] = set()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="export-pair") as pool:
        for task in tasks:
            if len(pending) >= TASKS_QUEUED_MAX:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    report.add(future.result())
            pending.add(pool.submit(one, task))
        for future in pending:
            report.add(future.result())


def _crashed(task: PairTask, crash: Exception) -> ExportReport:
    part = ExportReport(now=task.now, dry_run=task.dry_run)
    part.failed = [
        Failed(
            tenant_id=task.tenant_id,
            user_id=subject.user_id,
            meter=subject.meter,
            period_start=None,
            error=f"the pair's worker stopped: {type(crash).__name__}: {crash}",
            retryable=True,
        )
        for subject in task.subjects
    ]
    return part


def export(
    store: Store,
    box: SecretBox,
    now: datetime,
    gateways: Gateways,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    threads: int = PAIRS_IN_FLIGHT_MAX,
) -> ExportReport:
    """Plan and export every pair in this process."""
    report = ExportReport(now=iso(now), dry_run=dry_run)
    tenant_gateways = TenantGateways(store, box, gateways)

    def worker(task: PairTask) -> ExportReport:
        return export_pair(store, None if task.dry_run else tenant_gateways(task), task)

    run_tasks(plan(store, box, now, report, progress), worker, report, threads=threads)
    if progress:
        progress(f"{report.tenants} tenants, {report.pairs} pairs: {report.events_sent} events sent")
    return report


class TenantGateways:
    """Each tenant's gateway, built from its stored Stripe key and shared by the workers of all its pairs; rebuilt
    after `cache_seconds` so a rotated key is picked up by a long-lived container."""

    def __init__(self, store: Store, box: SecretBox, gateways: Gateways, cache_seconds: float = 300.0) -> None:
        self._store, self._box, self._gateways = store, box, gateways
        self._cache_seconds = cache_seconds
        self._by_tenant: dict[str, tuple[float, StripeGateway]] = {}
        self._lock = threading.Lock()

    def __call__(self, task: PairTask) -> StripeGateway:
        with self._lock:
            cached = self._by_tenant.get(task.tenant_id)
            if cached is not None and time.monotonic() - cached[0] < self._cache_seconds:
                return cached[1]
            config = load_config(self._store, self._box, task.tenant_id, parse_iso(task.now))
            if config is None:
                raise LookupError(f"tenant {task.tenant_id} has no Stripe configuration any more")
            if len(self._by_tenant) >= TENANTS_CACHED_MAX:
                self._by_tenant.pop(next(iter(self._by_tenant)))
            gateway = self._gateways(config.api_key)
            self._by_tenant[task.tenant_id] = (time.monotonic(), gateway)
            return gateway
