"""DynamoDB calls of the billing export, per pair: deterministic, so a regression fails here. The planner reads
the pairs' current counters in batches and makes no task for an idle pair; a pair with one delta costs its worker
the record and the advance, nothing else; closed periods are read only for a counter marked with one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quotaflow.handlers.runtime import Runtime
from quotaflow.ledger.periods import iso
from quotaflow.services.billing import ExportReport, PairTask, export_pair
from quotaflow.services.billing_plan import plan
from quotaflow.store import keys
from quotaflow.store.table import Store
from quotaflow.stripe_gateway import StripeGateway
from tests.api.conftest import Api, bind_with_stripe
from tests.conftest import Clock, dynamodb_calls
from tests.support.stripe_stub import StripeStub

pytestmark = pytest.mark.unit
USERS = [("u1", "cus_1"), ("u2", "cus_2"), ("u3", "cus_3")]
RECORD_AND_ADVANCE = ["UpdateItem", "UpdateItem"]


@pytest.fixture
def stub(clock: Clock) -> Iterator[StripeStub]:
    with StripeStub(now_epoch_s=int(clock().timestamp())) as running:
        running.add_customers(*(customer for _, customer in USERS))
        running.add_meters("llm_tokens")
        yield running


@pytest.fixture
def runtime(moto_store: Store, clock: Clock, stub: StripeStub) -> Runtime:
    return bind_with_stripe(moto_store, clock, stub.url)


@pytest.fixture
def metered(qf: Api, stub: StripeStub) -> Api:
    body = {
        "name": "Post-paid",
        "limits": {"tokens": {"quota": 10**9, "period": "month", "enforcement": "none"}},
        "stripe": {"meter_event_names": {"tokens": "llm_tokens"}},
    }
    assert qf("PUT", "/v1/plans/plan_metered", body).status == 200
    for user, customer in USERS:
        subscription = {"plan_id": "plan_metered", "stripe_customer_id": customer}
        assert qf("PUT", f"/v1/users/{user}/subscription", subscription).status == 200
    config = {"webhook_secret": "whsec_unused_0001", "api_key": stub.api_key}
    assert qf("PUT", "/v1/stripe/config", config).status == 200
    return qf


def use(qf: Api, user: str, amount: int) -> None:
    assert qf("POST", "/v1/events", {"user_id": user, "lines": [{"meter": "tokens", "amount": amount}]}).status == 201


def planned(runtime: Runtime, clock: Clock) -> tuple[list[PairTask], ExportReport]:
    report = ExportReport(now=iso(clock()), dry_run=False)
    return list(plan(runtime.store, runtime.secret_box, clock(), report)), report


def exported(runtime: Runtime, stub: StripeStub, tasks: list[PairTask]) -> list[list[str]]:
    """Each task through the worker; the DynamoDB calls each one made."""
    gateway = StripeGateway(stub.api_key, api_base=stub.url)
    per_task = []
    for task in tasks:
        calls = dynamodb_calls(runtime.store)
        export_pair(runtime.store, gateway, task)
        per_task.append(list(calls))
    return per_task


def test_idle_pairs_cost_a_share_of_one_batch_read_and_no_task(
    metered: Api, runtime: Runtime, clock: Clock, stub: StripeStub
) -> None:
    use(metered, "u1", 800)
    calls = dynamodb_calls(runtime.store)
    tasks, report = planned(runtime, clock)
    assert calls.count("BatchGetItem") == 1, "3 pairs' current counters in one read"
    assert "UpdateItem" not in calls and "GetItem" not in calls[calls.index("BatchGetItem") :]
    assert [(task.customer_id, report.pairs, report.pairs_idle) for task in tasks] == [("cus_1", 3, 2)]


def test_a_pair_with_one_delta_costs_its_worker_the_record_and_the_advance(
    metered: Api, runtime: Runtime, clock: Clock, stub: StripeStub
) -> None:
    for user, _ in USERS:
        use(metered, user, 100)
    tasks, _ = planned(runtime, clock)
    assert exported(runtime, stub, tasks) == [RECORD_AND_ADVANCE] * 3
    assert len(stub.meter_events) == 3
    assert planned(runtime, clock)[0] == [], "every pair is idle now"


def test_a_stale_task_reads_its_counter_once_and_sends_nothing(
    metered: Api, runtime: Runtime, clock: Clock, stub: StripeStub
) -> None:
    use(metered, "u1", 800)
    tasks, _ = planned(runtime, clock)
    exported(runtime, stub, tasks)
    assert exported(runtime, stub, tasks) == [["UpdateItem", "GetItem"]], "the refused record, then a fresh read"
    assert len(stub.meter_events) == 1


def close_november(metered: Api, runtime: Runtime, clock: Clock, stub: StripeStub, unsent: int) -> None:
    """u1 uses 800 tokens late on 30 November and they are exported, then `unsent` more; 70 minutes later, in
    December, u1 uses 7: that first write of the month closes November."""
    clock.now = clock.now.replace(day=30, hour=23, minute=10)
    stub.now_epoch_s = int(clock().timestamp())
    use(metered, "u1", 800)
    exported(runtime, stub, planned(runtime, clock)[0])
    if unsent:
        use(metered, "u1", unsent)
    clock.advance(minutes=70)
    stub.now_epoch_s = int(clock().timestamp())
    use(metered, "u1", 7)


def test_a_closed_period_is_read_once_after_it_closes_then_never(
    metered: Api, runtime: Runtime, clock: Clock, stub: StripeStub
) -> None:
    close_november(metered, runtime, clock, stub, unsent=100)  # the first December write marks November
    flush = RECORD_AND_ADVANCE + ["Query"] + RECORD_AND_ADVANCE + ["UpdateItem"]  # ... and the mark cleared
    assert exported(runtime, stub, planned(runtime, clock)[0]) == [flush]
    use(metered, "u1", 5)
    assert exported(runtime, stub, planned(runtime, clock)[0]) == [RECORD_AND_ADVANCE]
    assert sorted(int(event["payload"]["value"]) for event in stub.meter_events) == [5, 7, 100, 800]
    assert metered("POST", "/v1/verify", {}).body["ok"] is True


def test_a_counter_opened_before_the_mark_has_its_closed_periods_read_once_then_is_marked(
    metered: Api, runtime: Runtime, clock: Clock, stub: StripeStub
) -> None:
    use(metered, "u1", 800)
    current = keys.counter_current(metered_tenant(runtime), "u1", "tokens")
    runtime.store.update(current, "REMOVE export_closed ADD rev :one", values={":one": 1})  # as opened before
    assert exported(runtime, stub, planned(runtime, clock)[0]) == [RECORD_AND_ADVANCE + ["Query", "UpdateItem"]]
    assert runtime.store.get(current)["export_closed"] == ""  # type: ignore[index]
    use(metered, "u1", 5)
    assert exported(runtime, stub, planned(runtime, clock)[0]) == [RECORD_AND_ADVANCE]


def metered_tenant(runtime: Runtime) -> str:
    tenants = list(runtime.store.query_all(keys.STRIPE_TENANTS, "", pages_max=1))
    assert len(tenants) == 1
    return str(tenants[0]["tenant_id"])


def test_a_period_that_closes_with_everything_sent_is_never_read_again(
    metered: Api, runtime: Runtime, clock: Clock, stub: StripeStub
) -> None:
    close_november(metered, runtime, clock, stub, unsent=0)  # all of November sent: its closing marks nothing
    assert exported(runtime, stub, planned(runtime, clock)[0]) == [RECORD_AND_ADVANCE]
    assert sorted(int(event["payload"]["value"]) for event in stub.meter_events) == [7, 800]
