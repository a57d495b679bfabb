"""The stub itself, driven with the bare SDK: it must answer the way Stripe does, or the gateway tests prove little."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.stripe_gateway.conftest import NOW_EPOCH_S
from tests.support.stripe_stub import StripeStub, line_items_route, meter_events_path

pytestmark = pytest.mark.unit


def client(stub: StripeStub, api_key: str | None = None) -> stripe.StripeClient:
    return stripe.StripeClient(api_key or stub.api_key, base_addresses={"api": stub.url})


def meter_event(identifier: str = "id-1", **changes: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "event_name": "qf_tokens",
        "identifier": identifier,
        "timestamp": NOW_EPOCH_S,
        "payload": {"stripe_customer_id": "cus_1", "value": "10"},
    }
    params.update(changes)
    return params


def test_an_accepted_meter_event_comes_back_as_a_billing_meter_event(stub: StripeStub) -> None:
    created = client(stub).v1.billing.meter_events.create(meter_event())  # type: ignore[arg-type]

    assert isinstance(created, stripe.billing.MeterEvent)
    assert (created.identifier, created.timestamp, created.livemode) == ("id-1", NOW_EPOCH_S, False)


def test_a_repeated_identifier_is_refused_the_way_stripe_refuses_it(stub: StripeStub) -> None:
    sdk = client(stub)
    sdk.v1.billing.meter_events.create(meter_event())  # type: ignore[arg-type]

    with pytest.raises(stripe.InvalidRequestError) as raised:
        sdk.v1.billing.meter_events.create(meter_event(payload={"stripe_customer_id": "cus_1", "value": "99"}))  # type: ignore[arg-type]

    error = raised.value
    assert error.http_status == 400
    assert error.code is None
    assert error.user_message == "An event already exists with identifier id-1."
    assert error.error is not None and error.error.type == "invalid_request_error"
    assert {k.lower(): v for k, v in (error.headers or {}).items()}["stripe-should-retry"] == "false"
    assert len(stub.meter_events) == 1


def test_an_identifier_is_unique_for_24_hours_then_free_again(stub: StripeStub) -> None:
    sdk = client(stub)
    sdk.v1.billing.meter_events.create(meter_event())  # type: ignore[arg-type]
    stub.advance(24 * 3600 - 1)
    with pytest.raises(stripe.InvalidRequestError):
        sdk.v1.billing.meter_events.create(meter_event(timestamp=stub.now()))  # type: ignore[arg-type]

    stub.advance(1)
    sdk.v1.billing.meter_events.create(meter_event(timestamp=stub.now()))  # type: ignore[arg-type]

    assert len(stub.meter_events) == 2


def test_without_an_identifier_stripe_makes_one_up(stub: StripeStub) -> None:
    params = meter_event()
    del params["identifier"]

    created = client(stub).v1.billing.meter_events.create(params)  # type: ignore[arg-type]

    assert created.identifier


def test_without_a_timestamp_the_event_is_dated_now(stub: StripeStub) -> None:
    params = meter_event()
    del params["timestamp"]

    assert client(stub).v1.billing.meter_events.create(params).timestamp == NOW_EPOCH_S  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["1.5", "ten", "", "1e3"])
def test_only_whole_number_values_are_accepted(stub: StripeStub, value: str) -> None:
    params = meter_event(payload={"stripe_customer_id": "cus_1", "value": value})

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client(stub).v1.billing.meter_events.create(params)  # type: ignore[arg-type]

    assert raised.value.code == "meter_event_invalid_value"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"event_name": ""}, "parameter_missing"),
        ({"payload": {"value": "1"}}, "meter_event_no_customer_defined"),
        ({"payload": {"stripe_customer_id": "cus_1"}}, "meter_event_value_not_found"),
        ({"identifier": "x" * 101}, "string_length_exceeds_maximum"),
        ({"timestamp": "yesterday"}, "parameter_invalid_integer"),
    ],
)
def test_malformed_meter_events_are_refused(stub: StripeStub, changes: dict[str, Any], code: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client(stub).v1.billing.meter_events.create(meter_event(**changes))  # type: ignore[arg-type]

    assert raised.value.code == code
    assert stub.meter_events == []


def test_unknown_customers_can_be_accepted_and_reported_later_instead(stub: StripeStub) -> None:
    stub.add_customers("cus_known")
    stub.reject_unknown_customers = False

    client(stub).v1.billing.meter_events.create(meter_event())  # type: ignore[arg-type]

    assert stub.meter_events == []
    assert [e["payload"]["stripe_customer_id"] for e in stub.unknown_customer_events] == ["cus_1"]


def test_an_idempotency_key_reused_with_other_parameters_is_refused(stub: StripeStub) -> None:
    sdk = client(stub)
    sdk.v1.billing.meter_events.create(meter_event("a"), {"idempotency_key": "key-1"})  # type: ignore[arg-type]
    replay = sdk.v1.billing.meter_events.create(meter_event("a"), {"idempotency_key": "key-1"})  # type: ignore[arg-type]

    with pytest.raises(stripe.IdempotencyError):
        sdk.v1.billing.meter_events.create(meter_event("b"), {"idempotency_key": "key-1"})  # type: ignore[arg-type]
    assert replay.identifier == "a"
    assert replay.last_response is not None
    assert replay.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(stub.meter_events) == 1


def test_a_missing_api_key_is_a_401_as_stripe_words_it(stub: StripeStub) -> None:
    sdk = stripe.StripeClient("  ", base_addresses={"api": stub.url})

    with pytest.raises(stripe.AuthenticationError, match="You did not provide an API key"):
        sdk.v1.billing.meter_events.create(meter_event())  # type: ignore[arg-type]


def test_an_unknown_url_is_a_404_naming_it(stub: StripeStub) -> None:
    with pytest.raises(stripe.InvalidRequestError, match=r"Unrecognized request URL \(GET: /v1/customers/cus_1\)"):
        client(stub).v1.customers.retrieve("cus_1")


def test_line_items_page_both_ways(stub: StripeStub) -> None:
    created = stub.add_checkout_session("cs_test_1", [(f"price_{n}", 1) for n in range(5)])
    ids = [item["id"] for item in created]
    sessions = client(stub).v1.checkout.sessions

    first = sessions.line_items.list("cs_test_1", {"limit": 2})
    middle = sessions.line_items.list("cs_test_1", {"limit": 2, "starting_after": ids[1]})
    last = sessions.line_items.list("cs_test_1", {"limit": 2, "starting_after": ids[3]})
    before = sessions.line_items.list("cs_test_1", {"limit": 2, "ending_before": ids[4]})
    default = sessions.line_items.list("cs_test_1")

    assert ([i.id for i in first.data], first.has_more) == (ids[0:2], True)
    assert ([i.id for i in middle.data], middle.has_more) == (ids[2:4], True)
    assert ([i.id for i in last.data], last.has_more) == (ids[4:], False)
    assert ([i.id for i in before.data], before.has_more) == (ids[2:4], True)
    assert (len(default.data), default.has_more, default.url) == (
        5,
        False,
        "/v1/checkout/sessions/cs_test_1/line_items",
    )
    assert isinstance(first.data[0], stripe.LineItem)
    assert first.data[0].price is not None and first.data[0].price.id == "price_0"


@pytest.mark.parametrize("limit", [0, 101])
def test_a_page_size_outside_1_to_100_is_refused(stub: StripeStub, limit: int) -> None:
    stub.add_checkout_session("cs_test_1", [("price_a", 1)])

    with pytest.raises(stripe.InvalidRequestError, match="between 1 and 100"):
        client(stub).v1.checkout.sessions.line_items.list("cs_test_1", {"limit": limit})


def test_faults_can_target_one_path_and_are_counted(stub: StripeStub) -> None:
    stub.add_checkout_session("cs_test_1", [("price_a", 1)])
    stub.fail_next(1, 500, path=meter_events_path)
    sdk = client(stub)

    sdk.v1.checkout.sessions.line_items.list("cs_test_1")  # not targeted: answered normally
    with pytest.raises(stripe.APIError):
        sdk.v1.billing.meter_events.create(meter_event())  # type: ignore[arg-type]

    assert stub.count("GET", line_items_route) == 1
    assert stub.count("POST", meter_events_path) == 1
    assert sum(stub.request_counts.values()) == 2
