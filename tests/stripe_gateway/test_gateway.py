"""StripeGateway through the real SDK over HTTP to the loopback stub: what it sends, and how answers map."""

from __future__ import annotations

import threading
import time

import pytest
import stripe

from quotaflow.stripe_gateway import (
    LineItem,
    MeterEvent,
    StripeGateway,
    StripeRejected,
    StripeRetryable,
)
from tests.stripe_gateway.conftest import NOW_EPOCH_S
from tests.support.stripe_stub import StripeStub, line_items_route, meter_events_path

pytestmark = pytest.mark.unit

METER_POST = f"POST {meter_events_path}"
LINE_ITEMS_GET = f"GET {line_items_route}"


def usage(identifier: str = "qf:acme:user_42:tokens:2026-11:0", **changes: object) -> MeterEvent:
    fields: dict[str, object] = {
        "event_name": "qf_tokens",
        "customer_id": "cus_TQf8sLk2WbXq9R",
        "value": 1250,
        "identifier": identifier,
        "timestamp_epoch_s": NOW_EPOCH_S - 600,
    }
    fields.update(changes)
    return MeterEvent(**fields)  # type: ignore[arg-type]


# --- line items ----------------------------------------------------------------------------------------------


def test_line_items_of_a_small_session_come_in_one_request(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.add_checkout_session("cs_test_small", [("price_pack_a", 2), ("price_pack_b", 1)])

    items = gateway.checkout_line_items("cs_test_small")

    assert items == [LineItem("price_pack_a", 2), LineItem("price_pack_b", 1)]
    assert stub.count("GET", line_items_route) == 1
    assert stub.requests[0].params == {"limit": "100"}


def test_line_items_are_followed_across_pages_with_starting_after(stub: StripeStub, gateway: StripeGateway) -> None:
    created = stub.add_checkout_session("cs_test_big", [(f"price_{n}", n) for n in range(1, 251)])

    items = gateway.checkout_line_items("cs_test_big")

    assert items == [LineItem(f"price_{n}", n) for n in range(1, 251)]
    assert [r.params for r in stub.requests] == [
        {"limit": "100"},
        {"limit": "100", "starting_after": created[99]["id"]},
        {"limit": "100", "starting_after": created[199]["id"]},
    ]


def test_exactly_one_full_page_needs_no_second_request(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.add_checkout_session("cs_test_100", [(f"price_{n}", 1) for n in range(100)])

    assert len(gateway.checkout_line_items("cs_test_100")) == 100
    assert stub.count("GET", line_items_route) == 1


def test_a_line_item_without_quantity_counts_once(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.add_checkout_session("cs_test_noqty", [("price_pack_a", None)])

    assert gateway.checkout_line_items("cs_test_noqty") == [LineItem("price_pack_a", 1)]


def test_an_unknown_session_is_rejected_as_stripe_words_it(gateway: StripeGateway) -> None:
    with pytest.raises(StripeRejected) as raised:
        gateway.checkout_line_items("cs_test_missing")

    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"
    assert raised.value.message == "No such checkout.session: 'cs_test_missing'"


def test_paging_stops_at_its_limit_instead_of_running_on(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.add_checkout_session("cs_test_huge", [(f"price_{n}", 1) for n in range(1001)])

    with pytest.raises(StripeRejected, match="more than 1000 line items"):
        gateway.checkout_line_items("cs_test_huge")
    assert stub.count("GET", line_items_route) == 10


def test_line_items_failures_map_like_any_other_call(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.add_checkout_session("cs_test_small", [("price_pack_a", 1)])
    stub.fail_next(1, 503)

    with pytest.raises(StripeRetryable):
        gateway.checkout_line_items("cs_test_small")
    assert gateway.checkout_line_items("cs_test_small") == [LineItem("price_pack_a", 1)]


# --- meter events: what is sent ------------------------------------------------------------------------------


def test_a_meter_event_is_sent_with_identifier_timestamp_and_payload(stub: StripeStub, gateway: StripeGateway) -> None:
    gateway.send_meter_event(usage())

    (request,) = stub.requests
    assert request.route == METER_POST
    assert request.params == {
        "event_name": "qf_tokens",
        "identifier": "qf:acme:user_42:tokens:2026-11:0",
        "timestamp": str(NOW_EPOCH_S - 600),
        "payload": {"stripe_customer_id": "cus_TQf8sLk2WbXq9R", "value": "1250"},
    }
    assert request.headers["authorization"] == f"Bearer {stub.api_key}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["idempotency-key"]
    assert stub.meter_events == [
        {
            "object": "billing.meter_event",
            "created": NOW_EPOCH_S,
            "event_name": "qf_tokens",
            "identifier": "qf:acme:user_42:tokens:2026-11:0",
            "livemode": False,
            "payload": {"stripe_customer_id": "cus_TQf8sLk2WbXq9R", "value": "1250"},
            "timestamp": NOW_EPOCH_S - 600,
        }
    ]


def test_a_negative_whole_number_is_sent_as_such(stub: StripeStub, gateway: StripeGateway) -> None:
    gateway.send_meter_event(usage(value=-40))

    assert stub.meter_events[0]["payload"]["value"] == "-40"


def test_the_gateway_never_touches_the_sdk_globals(stub: StripeStub, gateway: StripeGateway) -> None:
    gateway.send_meter_event(usage())

    assert stripe.api_key is None
    assert stripe.api_base == "https://api.stripe.com"


def test_an_api_base_with_a_trailing_slash_works(stub: StripeStub) -> None:
    StripeGateway(stub.api_key, api_base=stub.url + "/").send_meter_event(usage())

    assert stub.requests[0].path == meter_events_path


# --- meter events: duplicates --------------------------------------------------------------------------------


def test_resending_an_identifier_stripe_holds_is_success(stub: StripeStub, gateway: StripeGateway) -> None:
    gateway.send_meter_event(usage())
    gateway.send_meter_event(usage())  # a rerun after a crash before the watermark moved

    assert stub.count("POST", meter_events_path) == 2
    assert len(stub.meter_events) == 1


def test_a_lost_answer_then_a_resend_counts_once(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.drop_next(1, after_processing=True)

    with pytest.raises(StripeRetryable):
        gateway.send_meter_event(usage())
    gateway.send_meter_event(usage())

    assert len(stub.meter_events) == 1


def test_a_slow_answer_past_the_timeout_is_retryable_and_the_resend_is_deduped(stub: StripeStub) -> None:
    gateway = StripeGateway(stub.api_key, api_base=stub.url, timeout_seconds=0.2)
    stub.latency_seconds = 0.6

    started = time.monotonic()
    with pytest.raises(StripeRetryable) as raised:
        gateway.send_meter_event(usage())
    assert time.monotonic() - started < 0.55
    assert raised.value.http_status is None

    stub.latency_seconds = 0
    time.sleep(0.5)  # the stub finishes the first call and frees the customer+meter slot
    gateway.send_meter_event(usage())
    assert len(stub.meter_events) == 1


def test_sdk_retries_reuse_the_idempotency_key_and_stripe_replays_the_answer(stub: StripeStub) -> None:
    gateway = StripeGateway(stub.api_key, api_base=stub.url, max_network_retries=1)
    stub.drop_next(1, after_processing=True)

    gateway.send_meter_event(usage())

    first, retry = stub.requests
    assert first.headers["idempotency-key"] == retry.headers["idempotency-key"]
    assert len(stub.meter_events) == 1


def test_sdk_retries_ride_out_a_single_server_error_when_enabled(stub: StripeStub) -> None:
    gateway = StripeGateway(stub.api_key, api_base=stub.url, max_network_retries=1)
    stub.fail_next(1, 500)

    gateway.send_meter_event(usage())

    assert stub.count("POST", meter_events_path) == 2
    assert len(stub.meter_events) == 1


# --- meter events: retryable ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 409])
def test_busy_or_failing_stripe_is_retryable(stub: StripeStub, gateway: StripeGateway, status: int) -> None:
    stub.fail_next(1, status)

    with pytest.raises(StripeRetryable) as raised:
        gateway.send_meter_event(usage())

    assert raised.value.http_status == status
    assert stub.meter_events == []
    gateway.send_meter_event(usage())  # the fault is spent
    assert len(stub.meter_events) == 1


def test_retry_after_is_passed_on(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.fail_next(1, 429, retry_after=7)

    with pytest.raises(StripeRetryable) as raised:
        gateway.send_meter_event(usage())

    assert raised.value.retry_after_seconds == 7.0
    assert "rate limit" in raised.value.message


def test_a_429_storm_stays_retryable_until_it_passes(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.fail_next(5, 429, path=meter_events_path)

    outcomes = []
    for _ in range(6):
        try:
            gateway.send_meter_event(usage())
            outcomes.append("sent")
        except StripeRetryable:
            outcomes.append("retry")

    assert outcomes == ["retry"] * 5 + ["sent"]
    assert stub.count("POST", meter_events_path) == 6


def test_a_dropped_connection_is_retryable(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.drop_next(1)

    with pytest.raises(StripeRetryable):
        gateway.send_meter_event(usage())
    assert stub.meter_events == []


def test_an_unreachable_stripe_is_retryable() -> None:
    with StripeStub() as gone:
        dead_url = gone.url
    gateway = StripeGateway("sk_test_x", api_base=dead_url, timeout_seconds=0.5)

    with pytest.raises(StripeRetryable):
        gateway.send_meter_event(usage())


def test_a_4xx_that_stripe_marks_retryable_is_retryable(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.fail_next(1, 400, should_retry=True, code="lock_timeout")

    with pytest.raises(StripeRetryable):
        gateway.send_meter_event(usage())


def test_a_concurrent_call_for_the_same_customer_and_meter_is_retryable(
    stub: StripeStub, gateway: StripeGateway
) -> None:
    stub.latency_seconds = 0.5
    first = threading.Thread(target=gateway.send_meter_event, args=(usage("first"),))
    first.start()
    deadline = time.monotonic() + 2
    while not stub.meter_events and time.monotonic() < deadline:
        time.sleep(0.01)

    with pytest.raises(StripeRetryable) as raised:
        gateway.send_meter_event(usage("second"))
    first.join()

    assert raised.value.http_status == 429
    assert [e["identifier"] for e in stub.meter_events] == ["first"]


# --- meter events: rejected ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 402, 403, 404])
def test_refusals_are_rejected(stub: StripeStub, gateway: StripeGateway, status: int) -> None:
    stub.fail_next(1, status)

    with pytest.raises(StripeRejected) as raised:
        gateway.send_meter_event(usage())

    assert raised.value.http_status == status


def test_a_wrong_api_key_is_rejected(stub: StripeStub) -> None:
    gateway = StripeGateway("sk_test_wrong_key_000000000000", api_base=stub.url)

    with pytest.raises(StripeRejected) as raised:
        gateway.send_meter_event(usage())

    assert raised.value.http_status == 401
    assert raised.value.message.startswith("Invalid API Key provided: sk_test_")
    assert stub.meter_events == []


def test_a_timestamp_older_than_35_days_is_rejected(stub: StripeStub, gateway: StripeGateway) -> None:
    with pytest.raises(StripeRejected) as raised:
        gateway.send_meter_event(usage(timestamp_epoch_s=NOW_EPOCH_S - 35 * 86400 - 1))

    assert raised.value.code == "timestamp_too_far_in_past"
    assert raised.value.param == "timestamp"
    assert raised.value.http_status == 400


def test_a_timestamp_exactly_35_days_old_is_accepted(stub: StripeStub, gateway: StripeGateway) -> None:
    gateway.send_meter_event(usage(timestamp_epoch_s=NOW_EPOCH_S - 35 * 86400))

    assert len(stub.meter_events) == 1


def test_a_timestamp_more_than_5_minutes_ahead_is_rejected(stub: StripeStub, gateway: StripeGateway) -> None:
    gateway.send_meter_event(usage("ok", timestamp_epoch_s=NOW_EPOCH_S + 300))

    with pytest.raises(StripeRejected) as raised:
        gateway.send_meter_event(usage("ahead", timestamp_epoch_s=NOW_EPOCH_S + 301))

    assert raised.value.code == "timestamp_in_future"


def test_the_stub_clock_decides_what_is_too_old(stub: StripeStub, gateway: StripeGateway) -> None:
    event = usage(timestamp_epoch_s=NOW_EPOCH_S - 34 * 86400)
    stub.advance(2 * 86400)

    with pytest.raises(StripeRejected, match="35 calendar days"):
        gateway.send_meter_event(event)


def test_an_unknown_customer_is_rejected_once_customers_are_known(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.add_customers("cus_known")

    with pytest.raises(StripeRejected) as raised:
        gateway.send_meter_event(usage(customer_id="cus_unknown"))

    assert raised.value.code == "meter_event_customer_not_found"
    assert raised.value.param == "payload[stripe_customer_id]"
    gateway.send_meter_event(usage(customer_id="cus_known"))
    assert len(stub.meter_events) == 1


def test_an_unknown_meter_is_rejected_once_meters_are_known(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.add_meters("qf_tokens")

    with pytest.raises(StripeRejected) as raised:
        gateway.send_meter_event(usage(event_name="qf_images"))

    assert raised.value.code == "no_meter"


def test_one_rejected_customer_does_not_stop_the_next(stub: StripeStub, gateway: StripeGateway) -> None:
    stub.add_customers("cus_a", "cus_c")
    outcomes = {}
    for customer in ("cus_a", "cus_b", "cus_c"):
        try:
            gateway.send_meter_event(usage(f"id-{customer}", customer_id=customer))
            outcomes[customer] = "sent"
        except StripeRejected as exc:
            outcomes[customer] = exc.code or ""

    assert outcomes == {"cus_a": "sent", "cus_b": "meter_event_customer_not_found", "cus_c": "sent"}


# --- the event itself ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"identifier": ""}, "needs an identifier"),
        ({"identifier": "x" * 101}, "over 100 characters"),
        ({"event_name": ""}, "event_name"),
        ({"customer_id": ""}, "customer id"),
        ({"value": True}, "whole number"),
        ({"value": 1.5}, "whole number"),
    ],
)
def test_a_meter_event_that_stripe_could_not_dedupe_or_accept_is_not_built(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        usage(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "arguments",
    [{"api_key": ""}, {"api_key": "sk", "timeout_seconds": 0}, {"api_key": "sk", "max_network_retries": -1}],
)
def test_a_misconfigured_gateway_is_refused_at_once(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case words it differently
        StripeGateway(**arguments)  # type: ignore[arg-type]
