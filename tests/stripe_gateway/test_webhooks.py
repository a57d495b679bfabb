"""verify_webhook: Stripe's signature scheme through the real SDK, with a clock the test sets."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from quotaflow.stripe_gateway import WebhookSignatureInvalid, verify_webhook
from tests.support.stripe_stub import signature_header, signed_webhook

pytestmark = pytest.mark.unit

NOW = 1_795_168_800
SECRET = "whsec_test_current_0123456789abcdef"
OLD_SECRET = "whsec_test_previous_fedcba9876543210"
EVENT: dict[str, Any] = {
    "id": "evt_1SXg2gLk2WbXq9RpaidMeta1",
    "object": "event",
    "type": "checkout.session.completed",
    "created": NOW,
    "data": {"object": {"id": "cs_test_1", "object": "checkout.session", "metadata": {"quotaflow_user_id": "u1"}}},
}


def test_a_good_signature_returns_the_event_as_a_plain_dict() -> None:
    payload, header = signed_webhook(EVENT, SECRET, timestamp=NOW - 5)

    event = verify_webhook(payload, header, [SECRET], now_epoch_s=NOW)

    assert event == EVENT
    assert type(event) is dict
    assert type(event["data"]["object"]["metadata"]) is dict


def test_a_body_handed_over_as_text_verifies_too() -> None:
    payload, header = signed_webhook(EVENT, SECRET, timestamp=NOW)

    assert verify_webhook(payload.decode(), header, [SECRET], now_epoch_s=NOW) == EVENT


def test_the_signature_header_comes_from_the_sdk_and_matches_the_documented_scheme() -> None:
    payload, header = signed_webhook(EVENT, SECRET, timestamp=NOW)

    assert header == signature_header(payload, [SECRET], NOW)


def test_a_signature_made_with_another_secret_is_refused() -> None:
    payload, header = signed_webhook(EVENT, "whsec_someone_else", timestamp=NOW)

    with pytest.raises(WebhookSignatureInvalid, match="matches none of the 1 signing secret"):
        verify_webhook(payload, header, [SECRET], now_epoch_s=NOW)


def test_a_tampered_payload_is_refused() -> None:
    payload, header = signed_webhook(EVENT, SECRET, timestamp=NOW)
    tampered = payload.replace(b'"u1"', b'"u2"')

    with pytest.raises(WebhookSignatureInvalid):
        verify_webhook(tampered, header, [SECRET], now_epoch_s=NOW)


@pytest.mark.parametrize("header", [None, ""])
def test_a_missing_signature_header_is_refused(header: str | None) -> None:
    payload, _ = signed_webhook(EVENT, SECRET, timestamp=NOW)

    with pytest.raises(WebhookSignatureInvalid, match="no Stripe-Signature header"):
        verify_webhook(payload, header, [SECRET], now_epoch_s=NOW)


@pytest.mark.parametrize(
    "header",
    ["garbage", f"t={NOW}", f"v1={'0' * 64}", f"t=soon,v1={'0' * 64}", f"t={NOW},v0={'0' * 64}"],
)
def test_a_malformed_signature_header_is_refused(header: str) -> None:
    payload, _ = signed_webhook(EVENT, SECRET, timestamp=NOW)

    with pytest.raises(WebhookSignatureInvalid):
        verify_webhook(payload, header, [SECRET], now_epoch_s=NOW)


def test_a_signature_older_than_the_tolerance_is_refused() -> None:
    payload, header = signed_webhook(EVENT, SECRET, timestamp=NOW - 301)

    with pytest.raises(WebhookSignatureInvalid, match="301 s old, over the 300 s tolerance"):
        verify_webhook(payload, header, [SECRET], now_epoch_s=NOW)


def test_a_signature_exactly_at_the_tolerance_is_accepted() -> None:
    payload, header = signed_webhook(EVENT, SECRET, timestamp=NOW - 300)

    assert verify_webhook(payload, header, [SECRET], now_epoch_s=NOW)["id"] == EVENT["id"]


def test_the_tolerance_can_be_tightened() -> None:
    payload, header = signed_webhook(EVENT, SECRET, timestamp=NOW - 61)

    with pytest.raises(WebhookSignatureInvalid, match="over the 60 s tolerance"):
        verify_webhook(payload, header, [SECRET], tolerance_seconds=60, now_epoch_s=NOW)


def test_a_timestamp_ahead_of_the_clock_is_accepted_as_the_sdk_accepts_it() -> None:
    payload, header = signed_webhook(EVENT, SECRET, timestamp=NOW + 120)

    assert verify_webhook(payload, header, [SECRET], now_epoch_s=NOW)["id"] == EVENT["id"]


def test_without_a_clock_the_real_time_is_used() -> None:
    fresh_payload, fresh_header = signed_webhook(EVENT, SECRET)  # signed now
    stale_payload, stale_header = signed_webhook(EVENT, SECRET, timestamp=int(time.time()) - 400)

    assert verify_webhook(fresh_payload, fresh_header, [SECRET])["id"] == EVENT["id"]
    with pytest.raises(WebhookSignatureInvalid, match="tolerance"):
        verify_webhook(stale_payload, stale_header, [SECRET])


@pytest.mark.parametrize("signing_secret", [OLD_SECRET, SECRET])
def test_during_a_rotation_either_configured_secret_verifies(signing_secret: str) -> None:
    payload, header = signed_webhook(EVENT, signing_secret, timestamp=NOW)

    assert verify_webhook(payload, header, [SECRET, OLD_SECRET], now_epoch_s=NOW)["id"] == EVENT["id"]


def test_a_header_with_several_v1_signatures_verifies_when_any_matches() -> None:
    payload = json.dumps(EVENT).encode()
    header = signature_header(payload, ["whsec_rolled_away", SECRET], NOW)

    assert header.count("v1=") == 2
    assert verify_webhook(payload, header, [SECRET], now_epoch_s=NOW)["id"] == EVENT["id"]


def test_a_header_whose_v1_signatures_all_miss_is_refused() -> None:
    payload = json.dumps(EVENT).encode()
    header = signature_header(payload, ["whsec_a", "whsec_b"], NOW)

    with pytest.raises(WebhookSignatureInvalid, match="none of the 2 signing secret"):
        verify_webhook(payload, header, [SECRET, OLD_SECRET], now_epoch_s=NOW)


@pytest.mark.parametrize("secrets", [[], [""], ["  "]])
def test_without_a_usable_secret_nothing_verifies(secrets: list[str]) -> None:
    payload, header = signed_webhook(EVENT, SECRET, timestamp=NOW)

    with pytest.raises(WebhookSignatureInvalid, match="no webhook signing secret"):
        verify_webhook(payload, header, secrets, now_epoch_s=NOW)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"id": "evt_1"}', "no string id and type"),
        (b'{"id": "evt_1", "type": "v1.billing.meter.error_report_triggered", "object": "v2.core.event"}', "thin"),
    ],
)
def test_a_correctly_signed_payload_that_is_not_a_stripe_event_is_refused(body: bytes, reason: str) -> None:
    header = signature_header(body, [SECRET], NOW)

    with pytest.raises(WebhookSignatureInvalid, match=reason):
        verify_webhook(body, header, [SECRET], now_epoch_s=NOW)


def test_a_payload_that_is_not_utf8_is_refused() -> None:
    body = b'{"id": "\xff"}'
    header = signature_header(body, [SECRET], NOW)

    with pytest.raises(WebhookSignatureInvalid, match="UTF-8"):
        verify_webhook(body, header, [SECRET], now_epoch_s=NOW)


def test_a_non_positive_tolerance_is_a_programming_error() -> None:
    payload, header = signed_webhook(EVENT, SECRET, timestamp=NOW)

    with pytest.raises(ValueError, match="tolerance_seconds"):
        verify_webhook(payload, header, [SECRET], tolerance_seconds=0, now_epoch_s=NOW)
