"""The Lambda bundles, run. Each bundle is built by the stack's own bundling code (`PipBundling`, the wheel plus its
extra's dependencies from PyPI) for this machine's platform and Python instead of Lambda's, then every function is
run from its bundle alone: an isolated interpreter (`python -I -S`: no venv, no site-packages, no PYTHONPATH) with
the standard library and the bundle directory on its path, against DynamoDB Local and the loopback Stripe server.
A dependency missing from an extra, or a module only the dev environment has, fails here instead of in AWS.

Built once per test session (pip's cache keeps a rebuild to seconds)."""

from __future__ import annotations

import json
import platform
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from quotaflow.local.events import http_event, scheduled_event
from quotaflow.store import keys
from quotaflow.store.table import Store
from quotaflow_infra.bundling import PipBundling
from quotaflow_infra.functions import FUNCTIONS, Bundle
from tests.infra.conftest import REPO_ROOT
from tests.support.ddb_local import ACCESS_KEY, REGION, SECRET_KEY, DynamoDBLocal, boto3_client
from tests.support.stripe_stub import StripeStub, signed_webhook

pytestmark = pytest.mark.integration

HOST_PIP_PLATFORM = f"manylinux2014_{platform.machine()}"  # glibc 2.17 wheels, as for Lambda's arm64
HOST_PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
# The interpreter the venv was made from, never the venv's own: with -I -S it sees the standard library only.
BASE_PYTHON = Path(sys.base_prefix) / "bin" / f"python{HOST_PYTHON_VERSION}"
DRIVER = Path(__file__).with_name("bundle_driver.py")
RUN_TIMEOUT_SECONDS = 120
ADMIN_KEY = "qf_admin_bundle_key_0123456789"
WEBHOOK_SECRET = "whsec_bundle_signing_secret_01"
PACK = "price_1SXtokens100kPackA"  # the pack the sample checkout session names
EVENTS = REPO_ROOT / "events"
# Never in a bundle: the local emulator, the test tools. Stripe only where the registry asks for it.
DEV_ONLY = ("moto", "pytest", "hypothesis", "schemathesis", "aws_cdk")


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[Bundle, Path]:
    root = tmp_path_factory.mktemp("bundles")
    built: dict[Bundle, Path] = {}
    for extra in Bundle:
        output = root / extra.value
        output.mkdir()
        bundling = PipBundling(REPO_ROOT, extra, pip_platform=HOST_PIP_PLATFORM, python_version=HOST_PYTHON_VERSION)
        bundling.build(str(output))
        built[extra] = output
    return built


@dataclass
class World:
    """One tenant on a fresh table of DynamoDB Local, the Stripe stub, and how to run a function from its bundle."""

    bundles: dict[Bundle, Path]
    store: Store
    stripe: StripeStub
    env: dict[str, str]
    secret_key: str = ""

    def run(self, function: str, events: list[dict[str, Any]]) -> list[Any]:
        spec = next(spec for spec in FUNCTIONS if spec.name == function)
        bundle = self.bundles[spec.bundle]
        order = {"bundle": str(bundle), "handler": spec.handler, "function_name": function, "events": events}
        done = subprocess.run(
            [str(BASE_PYTHON), "-I", "-S", str(DRIVER)],
            input=json.dumps(order),
            capture_output=True,
            text=True,
            env=self.env,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
        assert done.returncode == 0, f"{function} failed in its bundle:\n{done.stderr[-4000:]}"
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["quotaflow_file"].startswith(str(bundle)), report["quotaflow_file"]
        assert report["foreign_paths"] == [], "only the standard library and the bundle may be on the path"
        results: list[Any] = report["results"]
        return results

    def api(self, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
        return self.api_batch([(method, path, body)], key)[0]

    def api_batch(self, calls: list[tuple[str, str, Any]], key: str | None = None) -> list[tuple[int, Any]]:
        headers = {"Authorization": f"Bearer {key or self.secret_key}", "Content-Type": "application/json"}
        events = [
            http_event(method, path, headers=headers, body=json.dumps(body).encode() if body is not None else None)
            for method, path, body in calls
        ]
        return [(reply["statusCode"], json.loads(reply["body"] or "null")) for reply in self.run("Api", events)]

    def usage(self, user_id: str) -> dict[str, Any]:
        status, body = self.api("GET", f"/v1/users/{user_id}/usage")
        assert status == 200, body
        return next(counter for counter in body["counters"] if counter["meter"] == "tokens")


@pytest.fixture(scope="module")
def world(
    bundles: dict[Bundle, Path], ddb_local: DynamoDBLocal, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    store = Store(boto3_client(ddb_local.endpoint), f"qf-bundle-{secrets.token_hex(4)}")
    store.create_table()
    with StripeStub() as stripe:
        stripe.add_customers("cus_bundle_1")
        stripe.add_meters("llm_tokens")
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path_factory.mktemp("home")),  # no ~/.aws of the machine's
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "QUOTAFLOW_TABLE": store.table_name,
            "QUOTAFLOW_DYNAMODB_ENDPOINT": ddb_local.endpoint,
            "QUOTAFLOW_ADMIN_KEY": ADMIN_KEY,
            "QUOTAFLOW_STRIPE_API_BASE": stripe.url,
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        world = World(bundles, store, stripe, env)
        status, created = world.api("POST", "/v1/admin/tenants", {"tenant_id": "acme"}, key=ADMIN_KEY)
        assert status == 201, created
        world.secret_key = created["secret_key"]
        plan = {
            "name": "Pay as you go",
            "limits": {"tokens": {"quota": 100_000, "period": "month", "enforcement": "hard"}},
            "stripe": {"meter_event_names": {"tokens": "llm_tokens"}},
        }
        config = {
            "webhook_secret": WEBHOOK_SECRET,
            "api_key": stripe.api_key,
            "credit_packs": {PACK: {"meter": "tokens", "amount": 100_000}},
        }
        setup = world.api_batch(
            [
                ("PUT", "/v1/plans/plan_paygo", plan),
                ("PUT", "/v1/users/u1/subscription", {"plan_id": "plan_paygo", "stripe_customer_id": "cus_bundle_1"}),
                ("PUT", "/v1/users/user_42/subscription", {"plan_id": "plan_paygo"}),
                ("PUT", "/v1/stripe/config", config),
            ]
        )
        assert [status for status, _ in setup] == [200, 200, 200, 200], setup
        yield world
    store.client.delete_table(TableName=store.table_name)


def test_each_bundle_holds_its_extra_and_nothing_of_the_dev_environment(bundles: dict[Bundle, Path]) -> None:
    for extra, bundle in bundles.items():
        top_level = {path.name for path in bundle.iterdir()}
        assert {"quotaflow", "boto3", "botocore", "pydantic", "aws_lambda_powertools"} <= top_level, extra
        assert not top_level & set(DEV_ONLY), (extra, sorted(top_level & set(DEV_ONLY)))
        assert ("stripe" in top_level) is (extra is Bundle.STRIPE), extra
        size_mb = sum(path.stat().st_size for path in bundle.rglob("*") if path.is_file()) / 2**20
        print(f"bundle {extra.value}: {size_mb:.1f} MiB, {len(top_level)} top-level entries")


def test_the_api_bundle_serves_a_reserve_and_commit(world: World) -> None:
    ((held, reservation),) = world.api_batch(
        [("POST", "/v1/reservations", {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 4000}]})]
    )
    assert held == 201, reservation
    committed, body = world.api(
        "POST",
        f"/v1/reservations/{reservation['reservation_id']}/commit",
        {"lines": [{"meter": "tokens", "amount": 800}]},
    )
    assert committed == 200, body
    assert world.usage("u1")["used"] >= 800


def test_the_webhook_bundle_applies_a_signed_stripe_event(world: World) -> None:
    sample = json.loads((EVENTS / "stripe" / "checkout.session.completed.paid.json").read_text())
    payload, signature = signed_webhook(sample, WEBHOOK_SECRET)
    headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
    event = http_event("POST", "/v1/stripe/webhook/acme", headers=headers, body=payload)
    (reply,) = world.run("StripeWebhook", [event])
    assert (reply["statusCode"], json.loads(reply["body"])) == (200, {"received": True})
    assert world.usage("user_42")["credits"] == 100_000


def test_the_sweeper_bundle_expires_an_overdue_hold(world: World) -> None:
    status, held = world.api(
        "POST", "/v1/reservations", {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 7}], "ttl_seconds": 1}
    )
    assert status == 201, held
    (report,) = world.run("Sweeper", [scheduled_event("sweeper", datetime.now(UTC) + timedelta(minutes=5))])
    assert report["expired"] >= 1, report
    assert world.api("GET", f"/v1/reservations/{held['reservation_id']}")[1]["status"] == "expired"


def test_the_reaper_bundle_refunds_a_hold_that_ttl_deleted(world: World) -> None:
    status, held = world.api(
        "POST",
        "/v1/reservations",
        {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 4000}], "ttl_seconds": 3600},
    )
    assert status == 201, held
    before = world.usage("u1")["reserved"]
    rid = held["reservation_id"]
    world.store.delete(keys.reservation("acme", rid))  # what DynamoDB TTL does before the stream record arrives
    text = (EVENTS / "stream" / "ttl-remove-pending.json").read_text().replace("${RESERVATION_ID}", rid)
    (report,) = world.run("Reaper", [json.loads(text)])
    assert report == {"batchItemFailures": []}
    assert world.usage("u1")["reserved"] == before - 4000


def test_the_export_bundle_sends_usage_to_stripe(world: World) -> None:
    status, body = world.api("POST", "/v1/events", {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 25}]})
    assert status == 201, body
    (report,) = world.run("BillingExport", [scheduled_event("billing-export", datetime.now(UTC))])
    assert report["failed"] == [] and report["events_sent"] >= 1, report
    sent = [event["payload"] for event in world.stripe.meter_events]
    assert any(payload["stripe_customer_id"] == "cus_bundle_1" and int(payload["value"]) >= 25 for payload in sent)
    verified, result = world.api("POST", "/v1/verify", {})
    assert (verified, result["ok"]) == (200, True), result


def test_the_export_worker_bundle_exports_a_queued_pair(world: World) -> None:
    from quotaflow.ledger.periods import iso
    from quotaflow.services.billing import PairTask, Subject

    status, body = world.api("POST", "/v1/events", {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 30}]})
    assert status == 201, body
    task = PairTask(
        tenant_id="acme",
        customer_id="cus_bundle_1",
        event_name="llm_tokens",
        subjects=[Subject(user_id="u1", meter="tokens")],
        now=iso(datetime.now(UTC)),
    )
    record = {
        "messageId": "0f5a7c1e-export-worker-bundle",
        "receiptHandle": "AQEB-bundle",
        "body": task.model_dump_json(),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1796000000000",
            "SequenceNumber": "18880000000000000001",
            "MessageGroupId": task.pair_id,
            "SenderId": "AIDAEXAMPLE",
            "MessageDeduplicationId": "bundle-1",
            "ApproximateFirstReceiveTimestamp": "1796000000001",
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:export.fifo",
        "awsRegion": "us-east-1",
    }
    before = len(world.stripe.meter_events)
    (report,) = world.run("BillingExportWorker", [{"Records": [record]}])
    assert report == {"batchItemFailures": []}, report
    sent = [event["payload"] for event in world.stripe.meter_events[before:]]
    assert [payload["stripe_customer_id"] for payload in sent] == ["cus_bundle_1"]
    assert int(sent[0]["value"]) >= 30
