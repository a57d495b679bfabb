"""Stripe settings and webhooks, end to end: the real `stripe` SDK signs the sample events in events/stripe/, the
webhook function verifies and applies them, and line items come from a Stripe-protocol server on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.handlers import stripe_webhook
from quotaflow.handlers.runtime import Runtime
from quotaflow.local.events import LocalContext, http_event
from quotaflow.store.table import Store
from tests.api.conftest import Api, bind_with_stripe
from tests.conftest import Clock
from tests.support.stripe_stub import StripeStub, signed_webhook

pytestmark = pytest.mark.unit
EVENTS = Path(__file__).resolve().parents[2] / "events" / "stripe"
SECRET = "whsec_test_signing_secret_0001"
PACK = "price_1SXtokens100kPackA"
CONFIG = {
    "webhook_secret": SECRET,
    "api_key": "sk_test_quotaflow_stub",
    "credit_packs": {PACK: {"meter": "tokens", "amount": 100_000}},
    "plans_by_price": {"price_1SXplanStarterMonC": "plan_starter", "price_1SXplanProMonthlyB": "plan_pro"},
}


@pytest.fixture
def stub() -> Iterator[StripeStub]:
    with StripeStub() as running:
        yield running


@pytest.fixture
def runtime(moto_store: Store, clock: Clock, stub: StripeStub) -> Runtime:
    return bind_with_stripe(moto_store, clock, stub.url)


@pytest.fixture
def shop(qf: Api) -> Api:
    """acme with Stripe settings, plans for its prices, and users 42 and 77 on pay-as-you-go."""
    for plan_id, quota in (("plan_starter", 10_000), ("plan_pro", 1_000_000)):
        body = {"name": plan_id, "limits": {"tokens": {"quota": quota, "period": "month"}}}
        assert qf("PUT", f"/v1/plans/{plan_id}", body).status == 200
    for user in ("user_42", "user_77"):
        assert qf("PUT", f"/v1/users/{user}/subscription", {"plan_id": "plan_paygo"}).status == 200
    assert qf("PUT", "/v1/settings", {"default_plan_id": "plan_paygo"}).status == 200
    assert qf("PUT", "/v1/stripe/config", CONFIG).status == 200
    return qf


def deliver(
    sample: str | dict[str, Any],
    clock: Clock,
    *,
    secret: str = SECRET,
    tenant: str = "acme",
    age_seconds: int = 0,
    header: str | None = None,
) -> tuple[int, Any]:
    event = json.loads((EVENTS / f"{sample}.json").read_text()) if isinstance(sample, str) else sample
    payload, signature = signed_webhook(event, secret, timestamp=int(clock().timestamp()) - age_seconds)
    headers = {"Content-Type": "application/json", "Stripe-Signature": header if header is not None else signature}
    response = stripe_webhook.handler(
        http_event("POST", f"/v1/stripe/webhook/{tenant}", headers=headers, body=payload),
        cast(LambdaContext, LocalContext()),
    )
    return response["statusCode"], json.loads(response["body"])


def tokens(qf: Api, user: str) -> dict[str, Any]:
    return next(c for c in qf("GET", f"/v1/users/{user}/usage").body["counters"] if c["meter"] == "tokens")


def test_settings_are_stored_sealed_and_shown_masked(shop: Api, runtime: Runtime) -> None:
    shown = shop("GET", "/v1/stripe/config").body
    assert (shown["webhook_secret"], shown["api_key"]) == ("…0001", "…stub")
    dump = json.dumps(runtime.store.client.scan(TableName=runtime.store.table_name)["Items"])
    assert SECRET not in dump and CONFIG["api_key"] not in dump


def test_a_paid_checkout_grants_its_pack_once(shop: Api, clock: Clock) -> None:
    assert deliver("checkout.session.completed.paid", clock) == (200, {"received": True})
    assert tokens(shop, "user_42")["credits"] == 100_000
    assert deliver("checkout.session.completed.paid", clock) == (200, {"received": True}), "a redelivery"
    assert tokens(shop, "user_42")["credits"] == 100_000
    assert shop("POST", "/v1/verify", {}).body["ok"] is True


def test_an_unpaid_checkout_waits_for_the_async_payment(shop: Api, clock: Clock) -> None:
    assert deliver("checkout.session.completed.unpaid", clock)[0] == 200
    assert tokens(shop, "user_42")["credits"] == 0
    assert deliver("checkout.session.async_payment_succeeded", clock)[0] == 200
    assert tokens(shop, "user_42")["credits"] == 100_000


def test_packs_come_from_the_line_items_when_the_event_does_not_name_them(
    shop: Api, clock: Clock, stub: StripeStub
) -> None:
    stub.add_checkout_session("cs_test_b2ClientReferenceOnly0002", [(PACK, 2), ("price_not_a_pack", 1)])
    stub.fail_next(1, status=500)
    assert deliver("checkout.session.completed.client_reference_id", clock)[0] == 503, "Stripe was down"
    assert tokens(shop, "user_77")["credits"] == 0
    assert deliver("checkout.session.completed.client_reference_id", clock)[0] == 200
    assert tokens(shop, "user_77")["credits"] == 200_000


def test_subscription_events_move_the_user_between_plans(shop: Api, clock: Clock) -> None:
    assert deliver("customer.subscription.created", clock)[0] == 200
    assert shop("GET", "/v1/users/user_42/subscription").body["plan_id"] == "plan_starter"
    assert deliver("customer.subscription.updated", clock)[0] == 200
    subscription = shop("GET", "/v1/users/user_42/subscription").body
    assert (subscription["plan_id"], subscription["stripe_customer_id"]) == ("plan_pro", "cus_TQf8sLk2WbXq9R")
    assert tokens(shop, "user_42")["quota"] == 1_000_000
    assert deliver("customer.subscription.deleted", clock)[0] == 200
    assert shop("GET", "/v1/users/user_42/subscription").body["plan_id"] == "plan_paygo"


def test_a_subscription_update_moves_the_period_anchor(shop: Api, clock: Clock) -> None:
    assert deliver("customer.subscription.created", clock)[0] == 200  # Stripe's period started 2026-11-10T10:00
    assert shop("GET", "/v1/users/user_42/subscription").body["period_anchor"] == "2026-11-10T10:00:00Z"
    counter = tokens(shop, "user_42")
    assert (counter["period_start"], counter["period_end"]) == ("2026-11-27T10:00:00Z", "2026-12-10T10:00:00Z"), (
        "the calendar month running at the change is cut there; the next period ends on the billing date"
    )
    assert (
        shop("POST", "/v1/events", {"user_id": "user_42", "lines": [{"meter": "tokens", "amount": 700}]}).status == 201
    )
    clock.advance(days=1, seconds=5)
    assert deliver("customer.subscription.updated.anchor_moved", clock)[0] == 200  # the cycle reset on the 28th
    assert shop("GET", "/v1/users/user_42/subscription").body["period_anchor"] == "2026-11-28T10:00:00Z"
    counter = tokens(shop, "user_42")
    assert (counter["period_start"], counter["period_end"]) == ("2026-11-28T10:00:05Z", "2026-12-28T10:00:00Z")
    assert (counter["used"], counter["quota"]) == (0, 1_000_000), "a new period: the 700 stay in the old one"
    assert shop("POST", "/v1/events", {"user_id": "user_42", "lines": [{"meter": "tokens", "amount": 1}]}).status == 201
    entries = shop("GET", "/v1/users/user_42/ledger", query="limit=200").body["entries"]
    opened = [e for e in entries if e["ref"] == "period_cut"]
    assert {e["period_start"] for e in opened} == {"2026-11-27T10:00:00Z", "2026-11-28T10:00:05Z"}, "both cuts"
    assert shop("POST", "/v1/verify", {"user_id": "user_42"}).body["ok"] is True


def test_before_basil_the_anchor_is_the_subscriptions_own_period_start(shop: Api, clock: Clock) -> None:
    event = json.loads((EVENTS / "customer.subscription.updated.anchor_moved.json").read_text())
    event["id"], event["api_version"] = "evt_acacia_shape_0001", "2024-09-30.acacia"
    subscription = event["data"]["object"]
    item = subscription["items"]["data"][0]
    subscription["current_period_start"] = item.pop("current_period_start")  # where older versions kept it
    subscription["current_period_end"] = item.pop("current_period_end")
    assert deliver(event, clock)[0] == 200
    assert shop("GET", "/v1/users/user_42/subscription").body["period_anchor"] == "2026-11-28T10:00:00Z"


def test_a_refunded_charge_revokes_what_is_left_of_the_pack(shop: Api, clock: Clock) -> None:
    deliver("checkout.session.completed.paid", clock)
    spent = shop("POST", "/v1/events", {"user_id": "user_42", "lines": [{"meter": "tokens", "amount": 30_000}]})
    assert spent.status == 201
    assert deliver("charge.refunded", clock)[0] == 200
    counter = tokens(shop, "user_42")
    assert (counter["credits"], counter["used"]) == (30_000, 30_000), "what was already used stays paid for"
    assert deliver("charge.refunded", clock)[0] == 200
    assert tokens(shop, "user_42")["credits"] == 30_000
    assert shop("POST", "/v1/verify", {}).body["ok"] is True


def test_unknown_event_types_are_acknowledged_and_ignored(shop: Api, clock: Clock) -> None:
    assert deliver("product.created", clock) == (200, {"received": True})


@pytest.mark.parametrize(
    "case", ["wrong secret", "stale", "missing header", "garbage header", "unknown tenant", "tenant without stripe"]
)
def test_bad_deliveries_are_400_and_write_nothing(shop: Api, clock: Clock, admin: Api, case: str) -> None:
    admin("POST", "/v1/admin/tenants", {"tenant_id": "bare"})
    kwargs: dict[str, Any] = {
        "wrong secret": {"secret": "whsec_someone_else_0002"},
        "stale": {"age_seconds": 301},
        "missing header": {"header": ""},
        "garbage header": {"header": "t=1,v1=00"},
        "unknown tenant": {"tenant": "nobody"},
        "tenant without stripe": {"tenant": "bare"},
    }[case]
    status, body = deliver("checkout.session.completed.paid", clock, **kwargs)
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert tokens(shop, "user_42")["credits"] == 0


def test_a_rotated_signing_secret_keeps_the_old_one_valid_for_a_day(shop: Api, clock: Clock) -> None:
    assert shop("PUT", "/v1/stripe/config", {**CONFIG, "webhook_secret": "whsec_rotated_secret_0003"}).status == 200
    assert deliver("checkout.session.completed.paid", clock)[0] == 200  # signed with the old secret
    clock.advance(hours=25)
    assert deliver("customer.subscription.created", clock)[0] == 400
    assert deliver("customer.subscription.created", clock, secret="whsec_rotated_secret_0003")[0] == 200
