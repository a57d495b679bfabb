"""The sample events in events/api/ are real API Gateway v2 events: replay them, in order, through the function."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quotaflow.handlers import api
from quotaflow.handlers.runtime import Runtime
from quotaflow.local.events import LocalContext
from tests.api.conftest import ADMIN_KEY

pytestmark = pytest.mark.unit

EVENTS = Path(__file__).resolve().parents[2] / "events" / "api"
SEQUENCE = [
    ("health", 200),
    ("admin-create-tenant", 201),
    ("put-plan", 200),
    ("put-subscription", 200),
    ("reserve", 201),
    ("commit", 200),
    ("usage", 200),
    ("can-use", 200),
    ("event", 201),
    ("refund", 201),
    ("credits", 201),
    ("ledger", 200),
    ("verify", 200),
]


def load(name: str, values: dict[str, str]) -> dict[str, Any]:
    text = (EVENTS / f"{name}.json").read_text()
    for placeholder, value in values.items():
        text = text.replace("${" + placeholder + "}", value)
    event: dict[str, Any] = json.loads(text)
    return event


def test_every_sample_event_is_exercised() -> None:
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == sorted(name for name, _ in SEQUENCE)


def test_sample_events_replay_the_seed_scenario(runtime: Runtime) -> None:
    values = {"ADMIN_KEY": ADMIN_KEY}
    bodies: dict[str, Any] = {}
    for name, status in SEQUENCE:
        response = api.handler(load(name, values), LocalContext())
        assert response["statusCode"] == status, (name, response["body"])
        bodies[name] = json.loads(response["body"])
        if name == "admin-create-tenant":
            values["SECRET_KEY"] = bodies[name]["secret_key"]
        if name == "reserve":
            values["RESERVATION_ID"] = bodies[name]["reservation_id"]
    assert bodies["can-use"] == {"allowed": False, "remaining": 99200}
    assert bodies["verify"]["ok"] is True
    assert api.handler(load("reserve", values), LocalContext())["body"] == json.dumps(
        bodies["reserve"], separators=(",", ":")
    ), "a replayed sample reserve returns the stored response"
