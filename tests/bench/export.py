"""The billing export's rate: meter events per second pushed to the loopback Stripe server (tests/support/stripe_stub
in its own process, driven through the real `stripe` SDK), one run of the billing export function over many users
with new usage, each its own (customer, meter) pair.

The users are clones of one user made through the API (its subscription and counter items, re-keyed), written with
BatchWriteItem: seeding through the API would take minutes on DynamoDB Local. The export runs as `serve` runs it:
the planner's pairs on the in-process queue (bounded thread pool, a lock per pair). `export_events_per_s` is
measured with Stripe answering at once; `export_pairs_per_s_at_150ms` with every meter event answered after 150 ms
(about Stripe's own latency), where only the fan-out keeps the rate up: one pair at a time would make ~6.7/s."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from quotaflow.store import keys
from quotaflow.store.table import Store
from tests.bench.harness import METER, TABLE_NAME, TENANT_ID, Api, bind_runtime, new_client, progress

EXPORT_USERS_DEFAULT = 1_000  # the 10,000 take minutes here: QUOTAFLOW_BENCH_EXPORT_USERS=10000 runs them
EXPORT_USERS_MAX = 10_000
STRIPE_LATENCY_S = 0.150
EXPORT_PLAN_ID = "plan_export"
EXPORT_METER_EVENT = "llm_tokens"
TEMPLATE_USER = "export-template-user"
TEMPLATE_CUSTOMER = "cus_exporttemplate"
USED_TOKENS = 1_234
BATCH_ITEMS_MAX = 25  # DynamoDB's BatchWriteItem limit
BATCH_ATTEMPTS_MAX = 8
SEED_THREADS = 4


@dataclass
class ExportRate:
    users: int = 0
    events_sent: int = 0
    seconds: float = 0.0
    failed: int = 0
    stub_events: int = 0
    pairs: int = 0  # planned, including earlier runs' pairs with nothing new (read, not sent)
    in_flight_max: int = 0  # the most meter-event calls the stub saw at once
    dynamodb_calls: dict[str, int] = field(default_factory=dict)  # by operation, during the run that sent
    idle_pairs: int = 0  # the rerun right after: every pair idle
    idle_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        """Each user is its own pair with one event: also the pairs exported per second."""
        return self.events_sent / self.seconds if self.seconds else 0.0


def users_requested() -> int:
    raw = os.environ.get("QUOTAFLOW_BENCH_EXPORT_USERS", "")
    return min(EXPORT_USERS_MAX, max(1, int(raw))) if raw.isdigit() else EXPORT_USERS_DEFAULT


def measure(
    endpoint: str, tenant: Api, users: int, *, stripe_latency_s: float = 0.0, clones: str = "export"
) -> ExportRate:
    """One export run over `users` fresh clones (named by `clones`) and the template user."""
    from quotaflow.handlers import billing_export
    from quotaflow.local.events import LocalContext, scheduled_event
    from tests.bench.stripe_process import StripeProcess

    store = Store(new_client(endpoint), TABLE_NAME)
    customers = [TEMPLATE_CUSTOMER, *(_customer(clones, index) for index in range(users))]
    with StripeProcess(latency_s=stripe_latency_s, customers=customers, meters=[EXPORT_METER_EVENT]) as stub:
        bind_runtime(store, settings={"stripe_api_base": stub.url})
        _template_user(tenant, stub.api_key)
        progress(f"billing export: writing {users} users with new usage (BatchWriteItem)")
        _clone_users(store, users, clones)
        latency = f", answering after {stripe_latency_s * 1000:.0f} ms" if stripe_latency_s else ""
        progress(f"billing export: one run over {users + 1} users to the loopback Stripe server{latency}")
        context = cast(Any, LocalContext(function_name="quotaflow-billing-export"))
        calls = _count_calls(store)
        started, cpu_started = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):  # the function prints its metrics (EMF) to stdout
            report = billing_export.handler(scheduled_event("billing-export", datetime.now(UTC)), context)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        sending_calls = dict(calls)
        calls.clear()
        idle_started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the same pairs again, nothing new: all idle
            idle = billing_export.handler(scheduled_event("billing-export", datetime.now(UTC)), context)
        idle_seconds = time.perf_counter() - idle_started
    received = stub.received
    rate = ExportRate(
        users + 1,
        report["events_sent"],
        seconds,
        len(report["failed"]),
        received.meter_events if received else -1,
        report["pairs"],
        received.in_flight_max if received else -1,
    )
    rate.notes.append(f"the exporter's own CPU: {cpu_seconds:.1f} s in {seconds:.1f} s (one interpreter lock)")
    rate.dynamodb_calls = sending_calls
    per_pair = sum(sending_calls.values()) / max(1, report["pairs"])
    rate.notes.append(f"DynamoDB calls: {per_pair:.2f} per pair ({_calls_text(sending_calls)})")
    rate.idle_pairs, rate.idle_seconds = idle["pairs_idle"], idle_seconds
    rate.notes.append(
        f"a rerun with nothing new: {idle['pairs_idle']} idle pairs in {idle_seconds:.2f} s ({_calls_text(calls)})"
    )
    if rate.failed:
        rate.notes.append(f"first failure: {report['failed'][0]}")
    return rate


def _count_calls(store: Store) -> Counter[str]:
    """Every DynamoDB call the store's client makes from now on, by operation."""
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        calls[event_name.rsplit(".", 1)[-1]] += 1

    store.client.meta.events.register("before-call.dynamodb.*", count)
    return calls


def _calls_text(calls: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(calls.items())) or "none"


def _customer(clones: str, index: int) -> str:
    return f"cus_{clones}{index:06d}"


def _template_user(tenant: Api, stripe_api_key: str) -> None:
    plan = {
        "name": "Post-paid",
        "limits": {METER: {"label": "Tokens", "quota": 10**12, "period": "month", "enforcement": "none"}},
        "stripe": {"meter_event_names": {METER: EXPORT_METER_EVENT}},
    }
    tenant.call("PUT", f"/v1/plans/{EXPORT_PLAN_ID}", plan, expect=200)
    config = {"webhook_secret": "whsec_bench_unused_0001", "api_key": stripe_api_key}
    tenant.call("PUT", "/v1/stripe/config", config, expect=200)
    subscription = {"plan_id": EXPORT_PLAN_ID, "stripe_customer_id": TEMPLATE_CUSTOMER}
    tenant.call("PUT", f"/v1/users/{TEMPLATE_USER}/subscription", subscription, expect=200)
    event = {"user_id": TEMPLATE_USER, "lines": [{"meter": METER, "amount": USED_TOKENS}]}
    tenant.call("POST", "/v1/events", event, expect=201)


def _clone_users(store: Store, users: int, clones: str) -> None:
    """The template user's subscription and counter, re-keyed for each clone (its own user id and customer)."""
    templates = []
    for key in (keys.subscription(TENANT_ID, TEMPLATE_USER), keys.counter_current(TENANT_ID, TEMPLATE_USER, METER)):
        raw = store.client.get_item(
            TableName=TABLE_NAME, Key={k: {"S": v} for k, v in key.items()}, ConsistentRead=True
        )
        templates.append(json.dumps(raw["Item"]))
    requests = [
        {
            "PutRequest": {
                "Item": json.loads(
                    text.replace(TEMPLATE_USER, f"{clones}-u{index}").replace(
                        TEMPLATE_CUSTOMER, _customer(clones, index)
                    )
                )
            }
        }
        for index in range(users)
        for text in templates
    ]
    batches = [requests[start : start + BATCH_ITEMS_MAX] for start in range(0, len(requests), BATCH_ITEMS_MAX)]
    with ThreadPoolExecutor(max_workers=SEED_THREADS) as pool:
        list(pool.map(lambda batch: _write_batch(store.client, batch), batches))


def _write_batch(client: Any, batch: list[dict[str, Any]]) -> None:
    pending = {TABLE_NAME: batch}
    for attempt in range(BATCH_ATTEMPTS_MAX):
        pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if not pending:
            return
        time.sleep(0.05 * 2**attempt)
    raise RuntimeError(f"BatchWriteItem left items unwritten after {BATCH_ATTEMPTS_MAX} attempts")
