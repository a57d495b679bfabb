"""`quotaflow export`: the billing export from the command line, against a table directly (moto here)."""

from __future__ import annotations

import json

import pytest

from quotaflow.cli.main import main
from quotaflow.ledger.plans import Limit, Plan, StripePlanSettings
from quotaflow.services import metering, plans
from quotaflow.services.stripe_config import StripeConfigBody, put_config
from quotaflow.store.secret_box import LocalSecretBox
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import Tenant, lines

pytestmark = pytest.mark.unit
ADMIN = "qf_admin_cli_export_0123456789"


def test_a_dry_run_reports_what_would_be_billed(
    moto_store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUOTAFLOW_ADMIN_KEY", ADMIN)
    monkeypatch.setenv("QUOTAFLOW_TABLE", moto_store.table_name)
    tenant = Tenant(moto_store, clock)
    plan = Plan(
        plan_id="metered",
        name="Metered",
        limits={"tokens": Limit(quota=10**9, enforcement="none")},
        stripe=StripePlanSettings(meter_event_names={"tokens": "llm_tokens"}),
    )
    plans.put_plan(tenant.scope, plan)
    plans.put_subscription(tenant.scope, "u1", "metered", {}, "cus_1")
    put_config(
        tenant.scope,
        LocalSecretBox(ADMIN),
        StripeConfigBody(webhook_secret="whsec_0123456789", api_key="sk_test_0123456789"),
    )
    metering.track(tenant.scope, "u1", lines(tokens=1234), None, None)
    assert main(["export", "--dry-run", "--json", "--now", "2026-11-27T11:00:00Z"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert (report["dry_run"], report["events_sent"], report["value_sent"]) == (True, 1, 1234)
    assert "tenant acme" in captured.err, "progress on stderr"


def test_export_explains_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "--dry-run" in capsys.readouterr().out
