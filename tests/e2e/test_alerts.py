"""Alerts end to end on `quotaflow serve`: counter writes on the table's stream become signed webhook calls to a
receiver on loopback, once per threshold, retried on schedule while the receiver fails."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from quotaflow.local.server import LocalServer, build_server
from tests.support.webhook_receiver import SECRET, Receiver, verified

pytestmark = pytest.mark.unit


@pytest.fixture
def server() -> Iterator[LocalServer]:
    running = build_server(port=0, admin_key="qf_admin_alerts_key_0123456789")
    running.start_in_thread()
    yield running
    running.close()


def test_thresholds_reach_the_webhook_once_and_retries_follow_the_schedule(server: LocalServer) -> None:
    receiver = Receiver(failures=2)
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    key = httpx.post(f"{server.url}/v1/admin/tenants", json={"tenant_id": "acme"}, headers=admin).json()["secret_key"]
    qf = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
    assert qf.put("/v1/webhooks", json={"url": "http://10.0.0.1/hooks", "secret": SECRET}).status_code == 400
    assert qf.put("/v1/webhooks", json={"url": receiver.url, "secret": SECRET}).json()["secret"] == "…0001"
    plan = {"name": "Free", "limits": {"tokens": {"quota": 1000, "period": "month", "alerts": [50, 80]}}}
    assert qf.put("/v1/plans/free", json=plan).status_code == 200
    assert qf.put("/v1/users/u1/subscription", json={"plan_id": "free"}).status_code == 200
    for amount in (300, 300, 100):  # 300, 600 (crosses 50 %), 700
        assert (
            qf.post("/v1/events", json={"user_id": "u1", "lines": [{"meter": "tokens", "amount": amount}]}).status_code
            == 201
        )

    def run(after: timedelta = timedelta(0)) -> dict[str, Any]:
        now = (datetime.now(UTC) + after).strftime("%Y-%m-%dT%H:%M:%SZ")
        report: dict[str, Any] = httpx.post(
            f"{server.url}/_local/run/notifier", json={"now": now}, headers=admin
        ).json()
        return report

    assert run()["stream_records"] > 0
    assert len(receiver.received) == 1, "the first attempt, which the receiver fails"
    run()
    assert len(receiver.received) == 1, "not due again before its retry time"
    assert run(timedelta(seconds=11))["redelivered"] == {"pending": 1}
    assert run(timedelta(minutes=2))["redelivered"] == {"delivered": 1}
    bodies = [verified(headers, body) for headers, body in receiver.received]
    assert {event["id"] for event in bodies} == {bodies[0]["id"]}, "one event id, delivered three times"
    assert bodies[-1]["type"] == "usage.threshold_crossed"
    assert bodies[-1]["data"] == {
        "user_id": "u1",
        "meter": "tokens",
        "threshold_percent": 50,
        "quota": 1000,
        "used": 600,
        "remaining": 400,
        "period_start": bodies[-1]["data"]["period_start"],
    }
    assert (
        qf.post("/v1/events", json={"user_id": "u1", "lines": [{"meter": "tokens", "amount": 200}]}).status_code == 201
    )
    run()
    assert [verified(h, b)["data"]["threshold_percent"] for h, b in receiver.received[3:]] == [80]
    assert run(timedelta(hours=1))["redelivered"] == {}, "nothing left to deliver"
