"""The billing export against a Stripe-protocol server on loopback, through the real `stripe` SDK: deltas sent
once, watermarks advanced, crashes and reruns never double-billed, a closed period flushed inside itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.handlers import billing_export
from quotaflow.handlers.runtime import Runtime
from quotaflow.local.events import LocalContext, scheduled_event
from quotaflow.services import billing
from quotaflow.store.table import Store
from tests.api.conftest import Api, bind_with_stripe
from tests.conftest import Clock
from tests.support.stripe_stub import StripeStub

pytestmark = pytest.mark.unit
CONTEXT = cast(LambdaContext, LocalContext(function_name="quotaflow-billing-export"))


@pytest.fixture
def stub(clock: Clock) -> Iterator[StripeStub]:
    with StripeStub(now_epoch_s=int(clock().timestamp())) as running:
        running.add_customers("cus_1", "cus_2")
        running.add_meters("llm_tokens")
        yield running


@pytest.fixture
def runtime(moto_store: Store, clock: Clock, stub: StripeStub) -> Runtime:
    return bind_with_stripe(moto_store, clock, stub.url)


@pytest.fixture
def metered(qf: Api, stub: StripeStub) -> Api:
    plan = {
        "name": "Post-paid",
        "limits": {
            "tokens": {"quota": 10**9, "period": "month", "enforcement": "none"},
            "requests": {"quota": 10**6, "period": "day", "enforcement": "none"},
        },
        "stripe": {"meter_event_names": {"tokens": "llm_tokens"}},
    }
    assert qf("PUT", "/v1/plans/plan_metered", plan).status == 200
    for user, customer in (("u1", "cus_1"), ("u2", "cus_2"), ("u3", None)):
        body = {"plan_id": "plan_metered", **({"stripe_customer_id": customer} if customer else {})}
        assert qf("PUT", f"/v1/users/{user}/subscription", body).status == 200
    config = {"webhook_secret": "whsec_unused_0001", "api_key": stub.api_key}
    assert qf("PUT", "/v1/stripe/config", config).status == 200
    return qf


def use(qf: Api, user: str, amount: int) -> None:
    assert qf("POST", "/v1/events", {"user_id": user, "lines": [{"meter": "tokens", "amount": amount}]}).status == 201


def run(clock: Clock, **extra: Any) -> dict[str, Any]:
    return billing_export.handler({**scheduled_event("billing-export", clock()), **extra}, CONTEXT)


def sent(stub: StripeStub) -> list[tuple[str, int]]:
    return [(event["payload"]["stripe_customer_id"], int(event["payload"]["value"])) for event in stub.meter_events]


def test_usage_goes_out_as_deltas_and_never_twice(metered: Api, clock: Clock, stub: StripeStub) -> None:
    use(metered, "u1", 800)
    use(metered, "u2", 50)
    report = run(clock)
    assert (report["events_sent"], report["value_sent"], report["failed"]) == (2, 850, [])
    assert {(s["user_id"], s["reason"]) for s in report["skipped"]} >= {("u3", "no stripe_customer_id")}
    assert any(s["meter"] == "requests" and s["user_id"] is None for s in report["skipped"])
    assert run(clock)["events_sent"] == 0, "a rerun finds nothing new"
    clock.advance(hours=1)
    stub.advance(3600)
    use(metered, "u1", 200)
    assert run(clock)["value_sent"] == 200
    assert sorted(sent(stub)) == [("cus_1", 200), ("cus_1", 800), ("cus_2", 50)]
    assert metered("POST", "/v1/verify", {}).body["ok"] is True


def test_a_lost_answer_resends_the_same_identifier_and_stripe_counts_it_once(
    metered: Api, clock: Clock, stub: StripeStub
) -> None:
    use(metered, "u1", 800)
    stub.drop_next(1, path="/v1/billing/meter_events", after_processing=True)
    report = run(clock)
    assert (report["events_sent"], report["failed"]) == (1, [])
    assert sent(stub) == [("cus_1", 800)]
    identifiers = [r.params.get("identifier") for r in stub.requests if r.path == "/v1/billing/meter_events"]
    assert len(identifiers) == 2 and identifiers[0] == identifiers[1]


@pytest.mark.parametrize("reached_stripe", [True, False], ids=["answer-lost", "never-arrived"])
def test_usage_added_while_a_send_was_unconfirmed_is_billed_too(
    metered: Api, clock: Clock, stub: StripeStub, reached_stripe: bool
) -> None:
    """A run sends 800 and never hears back (Stripe may or may not hold it); 200 more are used before the next run.
    The next run resends exactly the 800 under the same identifier and sends the 200 on their own: Stripe ends with
    1,000 (it once dropped the 200, folded into a resend of the old identifier)."""
    use(metered, "u1", 800)
    stub.drop_next(billing.SEND_ATTEMPTS_MAX, path="/v1/billing/meter_events", after_processing=reached_stripe)
    assert len(run(clock)["failed"]) == 1
    assert sent(stub) == ([("cus_1", 800)] if reached_stripe else [])
    use(metered, "u1", 200)
    report = run(clock)
    assert (report["events_sent"], report["value_sent"], report["failed"]) == (2, 1000, [])
    assert sent(stub) == [("cus_1", 800), ("cus_1", 200)]
    assert run(clock)["events_sent"] == 0, "a rerun finds nothing new"


def test_a_send_unconfirmed_when_its_period_closes_is_resent_inside_that_period(
    metered: Api, clock: Clock, stub: StripeStub
) -> None:
    clock.now = clock.now.replace(day=30, hour=23, minute=10)
    stub.now_epoch_s = int(clock().timestamp())
    use(metered, "u1", 800)
    stub.drop_next(billing.SEND_ATTEMPTS_MAX, path="/v1/billing/meter_events", after_processing=True)
    run(clock)
    use(metered, "u1", 100)
    clock.advance(minutes=70)  # December: the first write closes November's counter with the send under way
    stub.now_epoch_s = int(clock().timestamp())
    use(metered, "u1", 7)
    report = run(clock)
    assert (report["value_sent"], report["failed"]) == (907, [])
    assert sorted(sent(stub)) == [("cus_1", 7), ("cus_1", 100), ("cus_1", 800)]
    assert metered("POST", "/v1/verify", {}).body["ok"] is True


def test_a_failing_customer_does_not_block_the_others_and_is_retried_next_run(
    metered: Api, clock: Clock, stub: StripeStub
) -> None:
    use(metered, "u1", 800)
    use(metered, "u2", 50)
    stub.fail_next(3, status=500, path="/v1/billing/meter_events", customer="cus_1")
    report = run(clock)
    assert report["events_sent"] == 1 and len(report["failed"]) == 1
    assert "Stripe unavailable after 3 attempts" in report["failed"][0]["error"]
    assert run(clock)["events_sent"] == 1, "the next run sends what failed"
    assert sorted(sent(stub)) == [("cus_1", 800), ("cus_2", 50)]


def test_a_refund_after_an_export_nets_against_the_next_delta(metered: Api, clock: Clock, stub: StripeStub) -> None:
    use(metered, "u1", 800)
    run(clock)
    assert (
        metered("POST", "/v1/refunds", {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 300}]}).status == 201
    )
    assert run(clock)["events_sent"] == 0
    use(metered, "u1", 500)  # used 1,000 against 800 exported
    assert run(clock)["value_sent"] == 200


def test_the_first_run_after_a_period_ends_flushes_it_inside_it(metered: Api, clock: Clock, stub: StripeStub) -> None:
    clock.now = clock.now.replace(day=30, hour=23, minute=10)
    stub.now_epoch_s = int(clock().timestamp())
    use(metered, "u1", 800)
    run(clock)
    clock.advance(minutes=40)  # 23:50: more November usage, not exported yet
    use(metered, "u1", 100)
    clock.advance(minutes=30)  # December 1st, 00:20: first usage of December, then the hourly run
    stub.now_epoch_s = int(clock().timestamp())
    use(metered, "u1", 7)
    report = run(clock)
    assert report["value_sent"] == 107
    november_end = int(clock.now.replace(day=1, hour=0, minute=0).timestamp())
    flushed = [e for e in stub.meter_events if int(e["payload"]["value"]) == 100]
    assert len(flushed) == 1 and int(flushed[0]["timestamp"]) == november_end - 1
    assert metered("POST", "/v1/verify", {}).body["ok"] is True


def test_a_dry_run_reports_without_sending(metered: Api, clock: Clock, stub: StripeStub) -> None:
    use(metered, "u1", 800)
    report = run(clock, dry_run=True)
    assert (report["dry_run"], report["events_sent"], report["value_sent"]) == (True, 1, 800)
    assert stub.meter_events == []
    assert run(clock)["events_sent"] == 1


def test_exports_are_stamped_inside_anchored_periods_even_when_an_anchor_change_cuts_one(
    metered: Api, clock: Clock, stub: StripeStub
) -> None:
    anchored = {"plan_id": "plan_metered", "stripe_customer_id": "cus_1", "period_anchor": "2026-11-15T00:00:00Z"}
    assert metered("PUT", "/v1/users/u1/subscription", anchored).status == 200
    use(metered, "u1", 800)  # in [2026-11-15, 2026-12-15)
    clock.advance(hours=2)  # 12:00: the billing date moves; the running period ends here, unexported
    moved = {**anchored, "period_anchor": "2026-11-20T00:00:00Z"}
    assert metered("PUT", "/v1/users/u1/subscription", moved).status == 200
    cut_at = int(clock().timestamp())
    clock.advance(hours=1)
    stub.now_epoch_s = int(clock().timestamp())
    run(clock)
    first = [int(e["timestamp"]) for e in stub.meter_events if e["payload"]["stripe_customer_id"] == "cus_1"]
    assert first == [cut_at - 1], "the cut period's usage is stamped before the cut, not at the run"
    use(metered, "u1", 50)  # in the new period [12:00, 2026-12-20)
    clock.advance(minutes=10)
    stub.now_epoch_s = int(clock().timestamp())
    run(clock)
    stamps = [int(e["timestamp"]) for e in stub.meter_events if e["payload"]["stripe_customer_id"] == "cus_1"]
    assert stamps[1:] == [int(clock().timestamp())] and stamps[1] >= cut_at
    assert metered("POST", "/v1/verify", {}).body["ok"] is True


def test_an_accounts_pool_is_billed_to_the_accounts_customer_once(metered: Api, clock: Clock, stub: StripeStub) -> None:
    account = {"name": "Acme", "plan_id": "plan_metered", "stripe_customer_id": "cus_2"}
    assert metered("PUT", "/v1/accounts/acme", account).status == 200
    assert metered("PUT", "/v1/users/u4/subscription", {"plan_id": "plan_metered", "account_id": "acme"}).status == 200
    use(metered, "u4", 500)  # the member has no customer of its own: only the pool is billed
    report = run(clock)
    assert sent(stub) == [("cus_2", 500)]
    assert ("u4", "no stripe_customer_id") in {(s["user_id"], s["reason"]) for s in report["skipped"]}
    assert run(clock)["events_sent"] == 0
