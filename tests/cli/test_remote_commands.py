"""tenants, keys, usage and verify against a real `quotaflow serve`, as a person (tables) and a script (--json)."""

from __future__ import annotations

import json

import pytest

from quotaflow.cli.main import main
from quotaflow.local.server import LocalServer
from quotaflow.sdk import Client, TenantCreated, Unauthenticated

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def environment(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI finds the server through QUOTAFLOW_URL; keys come from flags unless a test sets them."""
    monkeypatch.setenv("QUOTAFLOW_URL", server.url)
    monkeypatch.delenv("QUOTAFLOW_API_KEY", raising=False)
    monkeypatch.delenv("QUOTAFLOW_ADMIN_KEY", raising=False)


def test_tenants_create_prints_the_keys_once(server: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tenants", "create", "acme", "--api-key", server.admin_key]) == 0
    out = capsys.readouterr().out
    assert "tenant acme created" in out and "qf_sk_" in out and "qf_pk_" in out


def test_tenants_create_as_json_with_the_admin_key_from_the_environment(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUOTAFLOW_ADMIN_KEY", server.admin_key)
    monkeypatch.setenv("QUOTAFLOW_API_KEY", "qf_sk_not_the_admin_key")
    assert main(["tenants", "create", "acme", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["tenant_id"] == "acme" and created["secret_key"].startswith("qf_sk_")


def test_keys_create_and_revoke(server: LocalServer, tenant: TenantCreated, capsys: pytest.CaptureFixture[str]) -> None:
    admin = ["--api-key", server.admin_key]
    assert main(["keys", "create", tenant.tenant_id, "--kind", "secret", "--json", *admin]) == 0
    created = json.loads(capsys.readouterr().out)
    assert main(["keys", "revoke", tenant.tenant_id, created["key_id"], *admin]) == 0
    assert f"key {created['key_id']} of tenant {tenant.tenant_id} revoked" in capsys.readouterr().out
    with Client(api_key=created["key"], base_url=server.url) as revoked, pytest.raises(Unauthenticated):
        revoked.list_plans()
    assert main(["keys", "create", tenant.tenant_id, "--kind", "publishable", *admin]) == 0
    assert "publishable key key_" in capsys.readouterr().out


def test_usage_prints_a_table(qf: Client, tenant: TenantCreated, capsys: pytest.CaptureFixture[str]) -> None:
    qf.track("u1", {"tokens": 800})
    assert main(["usage", "u1", "--api-key", tenant.secret_key]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "user u1, plan plan_paygo"
    assert lines[1].split() == [
        "METER", "LABEL", "PERIOD", "RESETS", "ENFORCEMENT", "QUOTA", "CREDITS", "USED", "RESERVED", "REMAINING"
    ]  # fmt: skip
    assert lines[2].split() == ["tokens", "Tokens", "none", "-", "hard", "100000", "0", "800", "0", "99200"]


def test_usage_as_json_with_the_key_from_the_environment(
    qf: Client, tenant: TenantCreated, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUOTAFLOW_API_KEY", tenant.secret_key)
    assert main(["usage", "u1", "--json"]) == 0
    usage = json.loads(capsys.readouterr().out)
    assert usage["counters"][0]["remaining"] == 100_000


def test_verify_a_user_and_the_whole_tenant(
    qf: Client, tenant: TenantCreated, capsys: pytest.CaptureFixture[str]
) -> None:
    key = ["--api-key", tenant.secret_key]
    assert main(["verify", "u1", *key]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 counter of user u1 checked")
    assert main(["verify", *key]) == 0
    assert "of the whole tenant checked" in capsys.readouterr().out
    assert main(["verify", "--json", *key]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "checked": 1, "problems": []}


def test_api_errors_exit_1_with_the_code(tenant: TenantCreated, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "nobody", "--api-key", tenant.secret_key]) == 1
    assert "quotaflow usage: not_found:" in capsys.readouterr().err


def test_a_missing_key_exits_2_and_says_how_to_give_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "u1"]) == 2
    assert "pass --api-key or set QUOTAFLOW_API_KEY" in capsys.readouterr().err
    assert main(["tenants", "create", "acme"]) == 2
    assert "set QUOTAFLOW_ADMIN_KEY" in capsys.readouterr().err


def test_url_flag_wins_over_the_environment(
    server: LocalServer, tenant: TenantCreated, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUOTAFLOW_URL", "http://127.0.0.1:9")
    assert main(["verify", "--url", server.url, "--api-key", tenant.secret_key]) == 0
    assert capsys.readouterr().out.startswith("ok:")


def test_reservation_shows_the_hold_and_its_steps(
    server: LocalServer, tenant: TenantCreated, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client(api_key=tenant.secret_key, base_url=server.url) as qf:
        qf.put_plan("plan_paygo", "Pay as you go", {"tokens": {"label": "Tokens", "quota": 10_000, "period": "none"}})
        qf.upsert_subscription("u1", "plan_paygo")
        run = qf.run("u1", {"tokens": 5000})
        run.draw({"tokens": 1200}, {"step": "search"})
        run.draw({"tokens": 300}, {"step": "answer"})
    assert main(["reservation", run.id, "--api-key", tenant.secret_key]) == 0
    out = capsys.readouterr().out
    assert f"reservation {run.id} of user u1: pending" in out
    assert "tokens 5000" in out and "tokens 1500" in out and "tokens 3500" in out
    assert "2 steps" in out and "'step': 'search'" in out and "'step': 'answer'" in out
    assert main(["reservation", run.id, "--api-key", tenant.secret_key, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [s["lines"][0]["amount"] for s in shown["steps"]] == [1200, 300]
