"""The sample Stripe events: signed and verified like live ones, and shaped like the SDK's own classes for its
API version, so a field that Stripe does not send cannot creep in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import stripe
from stripe._object_classes import get_object_class

from quotaflow.stripe_gateway import verify_webhook
from tests.support.stripe_stub import signed_webhook

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).parent / "samples"
SAMPLE_NAMES = sorted(path.name for path in SAMPLES.glob("*.json"))
HANDLED_TYPES = {
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "charge.refunded",
}
SECRET = "whsec_test_samples"


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return event


def unknown_fields(value: Any, cls: type | None = None, path: str = "$") -> list[str]:
    """Keys that the SDK class for the object (found by its ``object`` value, or as the nested class named after
    the key) does not declare. Metadata and previous_attributes are free-form."""
    if isinstance(value, list):
        return [f for i, item in enumerate(value) for f in unknown_fields(item, cls, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return []
    kind = value.get("object")
    if kind == "list":
        return [f for i, item in enumerate(value["data"]) for f in unknown_fields(item, None, f"{path}.data[{i}]")]
    if isinstance(kind, str):
        cls = get_object_class("V1", kind)
    if cls is None:
        return []
    declared = getattr(cls, "__annotations__", {})
    found = [f"{path}.{key} (not on {cls.__name__})" for key in value if key not in declared]
    for key, child in value.items():
        if key in ("metadata", "previous_attributes"):
            continue
        nested = getattr(cls, "".join(part.capitalize() for part in key.split("_")), None)
        found += unknown_fields(child, nested if isinstance(nested, type) else None, f"{path}.{key}")
    return found


def test_there_is_a_sample_for_every_handled_type_and_one_unknown() -> None:
    types = {load(name)["type"] for name in SAMPLE_NAMES}

    assert types >= HANDLED_TYPES
    assert types - HANDLED_TYPES == {"product.created"}


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_a_sample_verifies_once_signed(name: str) -> None:
    event = load(name)
    payload, header = signed_webhook(event, SECRET, timestamp=event["created"] + 2)

    assert verify_webhook(payload, header, [SECRET], now_epoch_s=event["created"] + 5) == event


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_a_sample_only_has_fields_the_sdk_declares(name: str) -> None:
    event = load(name)

    assert unknown_fields(event) == []
    assert event["api_version"] == stripe.api_version
    assert (event["object"], event["livemode"]) == ("event", False)
    assert event["id"].startswith("evt_")


def test_the_field_check_catches_an_invented_field() -> None:
    event = load("charge.refunded.json")
    event["data"]["object"]["outcome"]["made_up"] = 1

    assert unknown_fields(event) == ["$.data.object.outcome.made_up (not on Outcome)"]


def test_the_paid_session_names_user_and_price_in_its_metadata() -> None:
    session = load("checkout.session.completed.paid.json")["data"]["object"]

    assert (session["status"], session["payment_status"], session["mode"]) == ("complete", "paid", "payment")
    assert set(session["metadata"]) == {"quotaflow_user_id", "quotaflow_price_id"}
    assert "line_items" not in session  # webhooks never carry them: fetch them when metadata names no price


def test_the_session_without_metadata_relies_on_client_reference_id() -> None:
    session = load("checkout.session.completed.client_reference_id.json")["data"]["object"]

    assert session["metadata"] == {}
    assert session["client_reference_id"] == "user_77"
    assert session["payment_status"] == "paid"


def test_an_async_payment_completes_unpaid_first_then_succeeds() -> None:
    pending = load("checkout.session.completed.unpaid.json")["data"]["object"]
    paid = load("checkout.session.async_payment_succeeded.json")["data"]["object"]

    assert pending["id"] == paid["id"]
    assert (pending["payment_status"], paid["payment_status"]) == ("unpaid", "paid")


def test_subscription_samples_carry_the_price_and_user() -> None:
    created, updated, deleted = (
        load(f"customer.subscription.{kind}.json") for kind in ("created", "updated", "deleted")
    )

    for event in (created, updated, deleted):
        subscription = event["data"]["object"]
        assert subscription["metadata"]["quotaflow_user_id"] == "user_42"
        assert subscription["items"]["data"][0]["price"]["id"].startswith("price_")
    previous_price = updated["data"]["previous_attributes"]["items"]["data"][0]["price"]["id"]
    assert previous_price == created["data"]["object"]["items"]["data"][0]["price"]["id"]
    assert previous_price != updated["data"]["object"]["items"]["data"][0]["price"]["id"]
    assert deleted["data"]["object"]["status"] == "canceled"


def test_the_refunded_charge_points_at_the_paid_session_payment_intent() -> None:
    charge = load("charge.refunded.json")["data"]["object"]
    session = load("checkout.session.completed.paid.json")["data"]["object"]

    assert charge["payment_intent"] == session["payment_intent"]
    assert (charge["amount_refunded"], charge["refunded"]) == (charge["amount"], True)
