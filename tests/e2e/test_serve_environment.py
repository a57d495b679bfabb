"""`quotaflow serve` started directly, in a bare environment (no Makefile, no test-suite variables), reads the
settings the Lambda functions read and delivers what `make run` delivers."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import httpx
import pytest

from quotaflow.local.server import serve_settings
from tests.support.ddb_local import DynamoDBLocal
from tests.support.serve_process import ServeProcess, eventually
from tests.support.stripe_stub import StripeStub
from tests.support.webhook_receiver import SECRET, Receiver, verified

DELIVERY_SECONDS_MAX = 60  # the notifier's timer runs every 2 s; a bound on waiting, not a speed check


def tenant_client(serve: ServeProcess) -> httpx.Client:
    admin = {"Authorization": f"Bearer {serve.admin_key}"}
    created = httpx.post(f"{serve.url}/v1/admin/tenants", json={"tenant_id": "acme"}, headers=admin, timeout=30)
    assert created.status_code == 201, created.text
    return httpx.Client(
        base_url=serve.url, headers={"Authorization": f"Bearer {created.json()['secret_key']}"}, timeout=30
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(failures=0)
    yield running
    running.close()


@pytest.mark.unit
def test_serve_without_the_makefile_environment_delivers_alerts_from_the_stream(receiver: Receiver) -> None:
    with ServeProcess() as serve:  # timers on, as `make run`; no AWS_ACCOUNT_ID_ENDPOINT_MODE anywhere
        qf = tenant_client(serve)
        assert qf.put("/v1/webhooks", json={"url": receiver.url, "secret": SECRET}).status_code == 200
        plan = {"name": "Free", "limits": {"tokens": {"quota": 1000, "period": "month", "alerts": [50]}}}
        assert qf.put("/v1/plans/free", json=plan).status_code == 200
        assert qf.put("/v1/users/u1/subscription", json={"plan_id": "free"}).status_code == 200
        used = qf.post("/v1/events", json={"user_id": "u1", "lines": [{"meter": "tokens", "amount": 600}]})
        assert used.status_code == 201
        eventually(lambda: len(receiver.received) > 0, DELIVERY_SECONDS_MAX, "the alert reached the webhook")
        alert = verified(*receiver.received[0])
        assert (alert["type"], alert["data"]["threshold_percent"], alert["data"]["used"]) == (
            "usage.threshold_crossed",
            50,
            600,
        )
        assert "Traceback" not in serve.output, serve.output


@pytest.mark.unit
def test_serve_sends_the_billing_export_where_quotaflow_stripe_api_base_points() -> None:
    with StripeStub() as stub:
        stub.add_customers("cus_1")
        stub.add_meters("llm_tokens")
        with ServeProcess("--no-timers", env={"QUOTAFLOW_STRIPE_API_BASE": stub.url}) as serve:
            qf = tenant_client(serve)
            plan = {
                "name": "Post-paid",
                "limits": {"tokens": {"quota": 10**9, "period": "month", "enforcement": "none"}},
                "stripe": {"meter_event_names": {"tokens": "llm_tokens"}},
            }
            assert qf.put("/v1/plans/metered", json=plan).status_code == 200
            subscription = {"plan_id": "metered", "stripe_customer_id": "cus_1"}
            assert qf.put("/v1/users/u1/subscription", json=subscription).status_code == 200
            config = {"webhook_secret": "whsec_unused_0001", "api_key": stub.api_key}
            assert qf.put("/v1/stripe/config", json=config).status_code == 200
            used = qf.post("/v1/events", json={"user_id": "u1", "lines": [{"meter": "tokens", "amount": 800}]})
            assert used.status_code == 201
            admin = {"Authorization": f"Bearer {serve.admin_key}"}
            report = httpx.post(f"{serve.url}/_local/run/billing-export", headers=admin, timeout=60).json()
        assert (report["events_sent"], report["failed"]) == (1, []), report
        assert [(e["payload"]["stripe_customer_id"], e["payload"]["value"]) for e in stub.meter_events] == [
            ("cus_1", "800")
        ]


@pytest.mark.integration
def test_serve_takes_its_table_and_endpoint_from_the_environment(ddb_local: DynamoDBLocal) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": "us-east-1",
        "QUOTAFLOW_DYNAMODB_ENDPOINT": ddb_local.endpoint,
        "QUOTAFLOW_TABLE": "serve-from-env",
    }
    with ServeProcess("--no-timers", "--workers", "2", env=env) as serve:
        assert httpx.get(f"{serve.url}/v1/health", timeout=30).status_code == 200
        tenant_client(serve)
    client = boto3.client("dynamodb", endpoint_url=ddb_local.endpoint, region_name="us-east-1")
    assert client.scan(TableName="serve-from-env", Limit=1)["Items"], (
        "the tenant went to the table QUOTAFLOW_TABLE names"
    )


@pytest.mark.unit
def test_serve_settings_are_the_functions_settings_with_the_flags_on_top() -> None:
    env = {
        "QUOTAFLOW_TABLE": "from-env",
        "QUOTAFLOW_STRIPE_API_BASE": "http://127.0.0.1:9/",
        "QUOTAFLOW_ADMIN_KEY": "qf_admin_from_env_0123456789",
        "QUOTAFLOW_ALERT_BUS": "bus",
        "AWS_REGION": "eu-west-1",
    }
    from_env = serve_settings(env)
    assert (from_env.table_name, from_env.stripe_api_base, from_env.admin_key) == (
        "from-env",
        "http://127.0.0.1:9/",
        "qf_admin_from_env_0123456789",
    )
    assert (from_env.alert_bus, from_env.region, from_env.allow_loopback_webhooks) == ("bus", "eu-west-1", True)
    flagged = serve_settings(env, table_name="from-flag", dynamodb_endpoint="http://127.0.0.1:8000")
    assert (flagged.table_name, flagged.dynamodb_endpoint) == ("from-flag", "http://127.0.0.1:8000")
    made_up = serve_settings({})
    assert made_up.admin_key is not None and made_up.admin_key.startswith("qf_admin_")
    with pytest.raises(ValueError, match="admin_key"):
        serve_settings({}, admin_key="short")
