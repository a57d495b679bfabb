"""`quotaflow plans apply`: plans as code, idempotent, with a diff against the server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quotaflow.cli.main import main
from quotaflow.local.server import LocalServer
from quotaflow.sdk import Client, TenantCreated

pytestmark = pytest.mark.unit
Apply = Callable[..., str]  # run `plans apply` on this text with these flags; its stdout

PLANS_V1 = """
plans:
  plan_paygo:
    name: Pay as you go
    limits:
      tokens: {label: Tokens, quota: 0, period: none, enforcement: hard}
  plan_pro:
    name: Pro
    limits:
      tokens: {label: Tokens, quota: 1000000, period: month}
      requests: {label: Requests, quota: 5000, period: day, enforcement: soft}
    stripe:
      meter_event_names: {tokens: llm_tokens}
"""
PLANS_V2 = PLANS_V1.replace("quota: 1000000", "quota: 2000000").replace("enforcement: soft", "enforcement: none")


@pytest.fixture
def apply(server: LocalServer, tenant: TenantCreated, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Apply:
    def run(text: str, *flags: str) -> str:
        path = tmp_path / "plans.yaml"
        path.write_text(text)
        code = main(["plans", "apply", str(path), "--url", server.url, "--api-key", tenant.secret_key, *flags])
        assert code == 0, capsys.readouterr().err
        return capsys.readouterr().out

    return run


@pytest.fixture
def qf_tenant(server: LocalServer, tenant: TenantCreated) -> Iterator[Client]:
    with Client(api_key=tenant.secret_key, base_url=server.url) as client:
        yield client


def test_a_first_apply_creates_every_plan_and_shows_what(apply: Apply, qf_tenant: Client) -> None:
    out = apply(PLANS_V1)
    assert "+ plan_paygo" in out and "+ plan_pro" in out
    assert "    limits.tokens.quota: 1000000" in out
    assert '    stripe.meter_event_names.tokens: "llm_tokens"' in out
    assert out.splitlines()[-1] == "plans: 2 created, 0 updated, 0 unchanged"
    pro = qf_tenant.get_plan("plan_pro")
    assert (pro.limits["requests"].enforcement, pro.stripe.meter_event_names) == ("soft", {"tokens": "llm_tokens"})


def test_applying_the_same_file_again_changes_nothing(apply: Apply, qf_tenant: Client) -> None:
    apply(PLANS_V1)
    versions = {plan.plan_id: plan.version for plan in qf_tenant.list_plans()}
    out = apply(PLANS_V1)
    assert "= plan_paygo (unchanged)" in out and "= plan_pro (unchanged)" in out
    assert out.splitlines()[-1] == "plans: 0 created, 0 updated, 2 unchanged"
    assert {plan.plan_id: plan.version for plan in qf_tenant.list_plans()} == versions


def test_a_changed_file_shows_each_changed_field_and_updates_only_that_plan(apply: Apply, qf_tenant: Client) -> None:
    apply(PLANS_V1)
    out = apply(PLANS_V2)
    assert "~ plan_pro" in out and "= plan_paygo (unchanged)" in out
    assert "    limits.tokens.quota: 1000000 -> 2000000" in out
    assert '    limits.requests.enforcement: "soft" -> "none"' in out
    assert qf_tenant.get_plan("plan_pro").limits["tokens"].quota == 2_000_000
    assert qf_tenant.get_plan("plan_paygo").version == 1


def test_features_are_plans_as_code_too(apply: Apply, qf_tenant: Client) -> None:
    with_features = PLANS_V1 + "    features: {gpt-4o: true, max_context_tokens: 128000, support: email}\n"
    out = apply(with_features)
    assert "    features.gpt-4o: true" in out and '    features.support: "email"' in out
    assert qf_tenant.get_plan("plan_pro").features == {"gpt-4o": True, "max_context_tokens": 128000, "support": "email"}
    out = apply(with_features.replace("gpt-4o: true", "gpt-4o: false"))
    assert "    features.gpt-4o: true -> false" in out and "~ plan_pro" in out
    assert qf_tenant.get_plan("plan_pro").features["gpt-4o"] is False
    assert apply(with_features.replace("gpt-4o: true", "gpt-4o: false")).splitlines()[-1].endswith("2 unchanged")


def test_a_dry_run_shows_the_diff_and_changes_nothing(apply: Apply, qf_tenant: Client) -> None:
    apply(PLANS_V1)
    out = apply(PLANS_V2, "--dry-run")
    assert "    limits.tokens.quota: 1000000 -> 2000000" in out
    assert out.splitlines()[-1] == "dry run, nothing changed: 0 to create, 1 to update, 1 unchanged"
    assert qf_tenant.get_plan("plan_pro").limits["tokens"].quota == 1_000_000


def test_plans_only_on_the_server_are_listed_and_kept(apply: Apply, qf_tenant: Client) -> None:
    qf_tenant.put_plan("plan_legacy", "Legacy", {"tokens": {"quota": 1}})
    out = apply(PLANS_V1, "--json")
    report = json.loads(out)
    assert report["server_only"] == ["plan_legacy"]
    assert {p["plan_id"]: p["action"] for p in report["plans"]} == {"plan_paygo": "create", "plan_pro": "create"}
    assert {"path": "name", "after": "Pro"} in report["plans"][1]["changes"]
    assert qf_tenant.get_plan("plan_legacy").name == "Legacy"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("plans: []", "expected `plans:` mapping"),
        ("plans:\n  p1:\n    name: P\n    limits:\n      tokens: {period: day}\n", "plan p1"),
        ("plans: {p1: [unclosed", "plans.yaml"),
    ],
)
def test_a_bad_file_is_refused_before_any_request(
    text: str,
    message: str,
    server: LocalServer,
    tenant: TenantCreated,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "plans.yaml"
    path.write_text(text)
    assert main(["plans", "apply", str(path), "--url", server.url, "--api-key", tenant.secret_key]) == 2
    assert message in capsys.readouterr().err
