"""The sweeper and the TTL reaper functions, driven by the real-shaped sample events in events/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.handlers import reaper, sweeper
from quotaflow.handlers.runtime import Runtime
from quotaflow.local.events import LocalContext
from quotaflow.store import keys
from tests.api.conftest import Api
from tests.conftest import Clock

pytestmark = pytest.mark.unit
EVENTS = Path(__file__).resolve().parents[2] / "events"
CONTEXT = cast(LambdaContext, LocalContext(function_name="quotaflow-background"))


def load(relative: str, **values: str) -> dict[str, Any]:
    text = (EVENTS / relative).read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    event: dict[str, Any] = json.loads(text)
    return event


def hold(qf: Api) -> str:
    """The sample events' reservation: u1 holds 4,000 tokens for 300 s from 10:00."""
    created = qf(
        "POST",
        "/v1/reservations",
        {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 4000}], "ttl_seconds": 300},
    )
    return str(created.body["reservation_id"])


def reserved(qf: Api) -> int:
    return int(qf("GET", "/v1/users/u1/usage").body["counters"][1]["reserved"])


def test_the_scheduled_sweep_expires_overdue_holds_and_reports(qf: Api, capsys: pytest.CaptureFixture[str]) -> None:
    rid = hold(qf)
    report = sweeper.handler(load("schedule/sweeper.json"), CONTEXT)
    assert (report["now"], report["expired"], report["oldest_overdue_age_seconds"]) == ("2026-11-27T10:06:00Z", 1, 60)
    assert reserved(qf) == 0
    assert qf("GET", f"/v1/reservations/{rid}").body["status"] == "expired"
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    metric_names = {m["Name"] for blob in emitted for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"ReservationsExpired", "OldestOverdueReservationAgeSeconds"} <= metric_names


def test_a_ttl_deletion_of_a_pending_hold_is_refunded_once(qf: Api, runtime: Runtime, clock: Clock) -> None:
    rid = hold(qf)
    runtime.store.delete(keys.reservation("acme", rid))  # TTL deleted it before any sweep
    clock.advance(hours=1, minutes=6)
    event = load("stream/ttl-remove-pending.json", RESERVATION_ID=rid)
    assert reaper.handler(event, CONTEXT) == {"batchItemFailures": []}
    assert reserved(qf) == 0
    assert reaper.handler(event, CONTEXT) == {"batchItemFailures": []}, "a retried batch"
    assert sum(e["kind"] == "expire" for e in qf("GET", "/v1/users/u1/ledger").body["entries"]) == 1
    assert qf("POST", "/v1/verify", {}).body["ok"] is True


def test_the_reaper_ignores_committed_items_and_deletions_by_users(qf: Api) -> None:
    rid = hold(qf)
    assert reaper.handler(load("stream/ttl-remove-committed.json"), CONTEXT) == {"batchItemFailures": []}
    assert reaper.handler(load("stream/user-remove.json", RESERVATION_ID=rid), CONTEXT) == {"batchItemFailures": []}
    assert reserved(qf) == 4000


def test_a_malformed_record_fails_alone(qf: Api, runtime: Runtime, clock: Clock) -> None:
    rid = hold(qf)
    runtime.store.delete(keys.reservation("acme", rid))
    batch = (
        load("stream/malformed.json")["Records"] + load("stream/ttl-remove-pending.json", RESERVATION_ID=rid)["Records"]
    )
    assert reaper.handler({"Records": batch}, CONTEXT) == {"batchItemFailures": [{"itemIdentifier": "400"}]}
    assert reserved(qf) == 0, "the good record in the same batch was applied"
