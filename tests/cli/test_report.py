"""`quotaflow report` against a real `quotaflow serve`: usage written through the SDK, read back from the lake."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from quotaflow.cli.main import main
from quotaflow.local.server import LocalServer
from quotaflow.sdk import Client, TenantCreated

pytestmark = pytest.mark.unit


@pytest.fixture
def written(server: LocalServer, tenant: TenantCreated, qf: Client) -> TenantCreated:
    qf.track("u1", {"tokens": 120}, properties={"model": "gpt-4o"})
    qf.track("u1", {"tokens": 30}, properties={"model": "gpt-4o"})
    qf.track("u1", {"tokens": 50}, properties={"model": "claude"})
    flushed = httpx.post(f"{server.url}/_local/run/notifier", headers={"Authorization": f"Bearer {server.admin_key}"})
    assert flushed.status_code == 200
    return tenant


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")


def report(server: LocalServer, tenant: TenantCreated, *flags: str) -> list[str]:
    return ["report", "--meter", "tokens", "--url", server.url, "--api-key", tenant.secret_key, *flags]


def test_report_prints_a_table_by_model(
    server: LocalServer, written: TenantCreated, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(report(server, written, "--group-by", "model", "--window", "day")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["WINDOW_START", "MODEL", "USED", "EVENTS"]
    assert [line.split() for line in lines[1:]] == [[today(), "gpt-4o", "150", "2"], [today(), "claude", "50", "1"]]


def test_report_as_csv_with_a_filter(
    server: LocalServer, written: TenantCreated, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ("--group-by", "model", "--group-by", "user", "--filter", "model=claude", "--csv")
    assert main(report(server, written, *flags)) == 0
    assert capsys.readouterr().out.splitlines() == ["window_start,model,user,used,events", f"{today()},claude,u1,50,1"]


def test_a_refused_query_says_why(
    server: LocalServer, written: TenantCreated, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(report(server, written, "--group-by", "tenant")) == 1
    assert "group_by[0]" in capsys.readouterr().err
