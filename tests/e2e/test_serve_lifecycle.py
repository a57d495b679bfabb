"""How `quotaflow serve` stops and how it survives a dead worker, checked by process id: SIGTERM and SIGINT drain
what is in flight and end every worker, exit 0; a worker that dies is replaced; workers never outlive serve."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import httpx
import pytest

from quotaflow.local.workers import POOL_REPLACEMENTS_MAX
from tests.support.ddb_local import DynamoDBLocal
from tests.support.serve_process import ServeProcess, alive, eventually
from tests.support.stripe_stub import StripeStub

WORKERS = 3
PROCESS_SECONDS_MAX = 60  # a bound on waiting for processes to start or end, not a speed check
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def stub() -> Iterator[StripeStub]:
    with StripeStub() as running:
        running.add_customers("cus_1")
        running.add_meters("llm_tokens")
        yield running


def on_workers(ddb_local: DynamoDBLocal, table: str, stub: StripeStub | None = None) -> ServeProcess:
    env = {**CREDENTIALS, **({"QUOTAFLOW_STRIPE_API_BASE": stub.url} if stub else {})}
    args = ("--no-timers", "--dynamodb-endpoint", ddb_local.endpoint, "--table", table, "--workers", str(WORKERS))
    return ServeProcess(*args, env=env)


def metered_tenant(serve: ServeProcess, stub: StripeStub) -> None:
    """A tenant with one billable user who used 800 tokens, so an export has one meter event to send."""
    admin = {"Authorization": f"Bearer {serve.admin_key}"}
    key = httpx.post(f"{serve.url}/v1/admin/tenants", json={"tenant_id": "acme"}, headers=admin, timeout=30)
    qf = httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {key.json()['secret_key']}"}, timeout=30)
    plan = {
        "name": "Post-paid",
        "limits": {"tokens": {"quota": 10**9, "period": "month", "enforcement": "none"}},
        "stripe": {"meter_event_names": {"tokens": "llm_tokens"}},
    }
    assert qf.put("/v1/plans/metered", json=plan).status_code == 200
    assert qf.put("/v1/users/u1/subscription", json={"plan_id": "metered", "stripe_customer_id": "cus_1"}).is_success
    assert qf.put("/v1/stripe/config", json={"webhook_secret": "whsec_unused_0001", "api_key": stub.api_key}).is_success
    assert qf.post("/v1/events", json={"user_id": "u1", "lines": [{"meter": "tokens", "amount": 800}]}).is_success


@pytest.mark.integration
def test_sigterm_drains_the_request_in_flight_ends_every_worker_and_exits_0(
    ddb_local: DynamoDBLocal, stub: StripeStub
) -> None:
    with on_workers(ddb_local, "serve-sigterm", stub) as serve:
        workers = serve.workers()
        assert len(workers) == WORKERS, workers
        metered_tenant(serve, stub)
        stub.latency_seconds = 3.0  # the export's call to Stripe is still running when SIGTERM arrives
        answers: list[httpx.Response] = []
        admin = {"Authorization": f"Bearer {serve.admin_key}"}
        export = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{serve.url}/_local/run/billing-export", headers=admin, timeout=PROCESS_SECONDS_MAX)
            )
        )
        export.start()
        eventually(lambda: len(stub.meter_events) == 1, PROCESS_SECONDS_MAX, "the export reached Stripe")
        assert serve.stop(signal.SIGTERM) == 0, serve.output
        export.join(timeout=PROCESS_SECONDS_MAX)
        assert [answer.status_code for answer in answers] == [200], "the request in flight was answered"
        assert answers[0].json()["events_sent"] == 1
        assert [pid for pid in workers if alive(pid)] == [], "no worker outlives serve"
        assert "Traceback" not in serve.output, serve.output


@pytest.mark.unit
def test_sigint_stops_the_embedded_server_and_its_timers_with_exit_0() -> None:
    with ServeProcess() as serve:
        assert httpx.get(f"{serve.url}/v1/health", timeout=30).status_code == 200
        assert serve.stop(signal.SIGINT) == 0, serve.output
        assert "quotaflow stopped" in serve.output and "Traceback" not in serve.output, serve.output


@pytest.mark.integration
def test_a_worker_that_dies_is_replaced_and_no_request_sees_a_5xx(ddb_local: DynamoDBLocal) -> None:
    with on_workers(ddb_local, "serve-worker-dies") as serve:
        before = serve.workers()
        assert len(before) == WORKERS, before
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        statuses: list[int] = []

        def serves_again() -> bool:
            statuses.append(httpx.get(f"{serve.url}/v1/health", timeout=30).status_code)
            return statuses[-1] == 200 and len(serve.workers()) == WORKERS

        eventually(serves_again, PROCESS_SECONDS_MAX, "serve answers again with a full set of workers")
        assert set(statuses) <= {200, 503}, statuses
        after = serve.workers()
        assert not alive(victim) and victim not in after
        assert serve.stop(signal.SIGTERM) == 0, serve.output
        assert [pid for pid in before + after if alive(pid)] == []


@pytest.mark.integration
def test_workers_end_when_serve_itself_is_killed(ddb_local: DynamoDBLocal) -> None:
    with on_workers(ddb_local, "serve-killed") as serve:
        workers = serve.workers()
        assert len(workers) == WORKERS, workers
        assert serve.stop(signal.SIGKILL) == -signal.SIGKILL
        eventually(lambda: not any(alive(pid) for pid in workers), PROCESS_SECONDS_MAX, "the orphaned workers exited")


def replaced_or_stopped(serve: ServeProcess, dead: frozenset[int]) -> bool:
    assert serve.process is not None
    now = serve.workers()
    return serve.process.poll() is not None or (len(now) == WORKERS and not set(now) & dead)


@pytest.mark.integration
def test_workers_that_keep_dying_stop_serve_with_exit_1(ddb_local: DynamoDBLocal) -> None:
    with on_workers(ddb_local, "serve-workers-keep-dying") as serve:
        assert serve.process is not None
        for _ in range(POOL_REPLACEMENTS_MAX + 1):
            before = serve.workers()
            os.kill(before[0], signal.SIGKILL)
            try:
                status = httpx.get(f"{serve.url}/v1/health", timeout=30).status_code
            except httpx.TransportError:
                status = 0  # serve stopped while this request waited: its listening socket is gone
            assert status in (0, 200, 503), status

            eventually(
                lambda gone=frozenset(before): replaced_or_stopped(serve, gone),
                PROCESS_SECONDS_MAX,
                "a new set of workers, or serve has stopped",
            )
        assert serve.process.wait(timeout=PROCESS_SECONDS_MAX) == 1, serve.output
        assert "workers kept dying" in serve.output
        assert [pid for pid in serve.worker_pids_seen if alive(pid)] == []
