"""Usage reports through both SDK clients against a real `quotaflow serve` and its local lake."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from quotaflow.local.server import LocalServer
from quotaflow.sdk import AsyncClient, Client, InvalidRequest, TenantCreated

pytestmark = pytest.mark.unit


def flush(server: LocalServer) -> None:
    answer = httpx.post(f"{server.url}/_local/run/notifier", headers={"Authorization": f"Bearer {server.admin_key}"})
    assert answer.status_code == 200


def test_both_clients_read_the_same_report_up_to_the_moment_they_ask(
    server: LocalServer, tenant: TenantCreated, qf: Client
) -> None:
    started = datetime.now(UTC) - timedelta(minutes=1)
    qf.track("u1", {"tokens": 70}, properties={"model": "gpt-4o", "feature": "chat"})
    qf.track("u1", {"tokens": 30}, properties={"model": "gpt-4o", "feature": "search"})
    flush(server)

    report = qf.usage_report("tokens", started, datetime.now(UTC), group_by=["property:feature"], window="month")

    assert report.status == "succeeded"
    assert [(row["property:feature"], row["used"]) for row in report.rows] == [("chat", 70), ("search", 30)]

    async def read() -> list[dict[str, object]]:
        async with AsyncClient(api_key=tenant.secret_key, base_url=server.url) as client:
            found = await client.usage_report("tokens", started, datetime.now(UTC), group_by=["property:feature"])
            return found.rows

    assert [row["used"] for row in asyncio.run(read())] == [70, 30]


def test_a_refused_report_is_a_typed_error(qf: Client) -> None:
    now = datetime.now(UTC)
    with pytest.raises(InvalidRequest) as refused:
        qf.usage_report("tokens", now, now - timedelta(days=1))
    assert refused.value.details["field"] == "from"
