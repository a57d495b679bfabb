"""`quotaflow serve` over real HTTP: the embedded backend, and DynamoDB Local with worker processes under load."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from quotaflow.local.server import LocalServer, build_server
from tests.support.ddb_local import DynamoDBLocal


def seed(base_url: str, admin_key: str, quota: int) -> httpx.Client:
    admin = httpx.post(
        f"{base_url}/v1/admin/tenants", json={"tenant_id": "acme"}, headers={"Authorization": f"Bearer {admin_key}"}
    )
    assert admin.status_code == 201, admin.text
    client = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {admin.json()['secret_key']}"}, timeout=30
    )
    plan = {"name": "Pay as you go", "limits": {"tokens": {"quota": quota, "period": "none", "enforcement": "hard"}}}
    assert client.put("/v1/plans/plan_paygo", json=plan).status_code == 200
    assert client.put("/v1/users/u1/subscription", json={"plan_id": "plan_paygo"}).status_code == 200
    return client


def reserve_many(client: httpx.Client, attempts: int, threads: int) -> list[int]:
    def one(_: int) -> int:
        return client.post(
            "/v1/reservations",
            json={"user_id": "u1", "lines": [{"meter": "tokens", "amount": 1}]},
        ).status_code

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, range(attempts)))


@pytest.fixture
def embedded() -> Iterator[LocalServer]:
    server = build_server(port=0, admin_key="qf_admin_e2e_key_0123456789")
    server.start_in_thread()
    yield server
    server.close()


@pytest.mark.unit
def test_embedded_serve_admits_exactly_the_quota_under_concurrent_clients(embedded: LocalServer) -> None:
    client = seed(embedded.url, embedded.admin_key, quota=50)
    statuses = reserve_many(client, attempts=80, threads=8)
    assert sorted(set(statuses)) == [201, 402] and statuses.count(201) == 50
    counter = client.get("/v1/users/u1/usage").json()["counters"][0]
    assert (counter["reserved"], counter["remaining"]) == (50, 0)
    assert client.post("/v1/verify", json={}).json()["ok"] is True


@pytest.mark.integration
def test_serve_on_dynamodb_local_admits_exactly_the_quota_across_workers(ddb_local: DynamoDBLocal) -> None:
    server = build_server(
        port=0,
        dynamodb_endpoint=ddb_local.endpoint,
        table_name="serve-e2e",
        admin_key="qf_admin_e2e_key_0123456789",
        workers=4,
    )
    server.start_in_thread()
    try:
        client = seed(server.url, server.admin_key, quota=150)
        statuses = reserve_many(client, attempts=240, threads=12)
        assert statuses.count(201) == 150 and statuses.count(402) == 90, sorted(set(statuses))
        counter = client.get("/v1/users/u1/usage").json()["counters"][0]
        assert (counter["reserved"], counter["remaining"]) == (150, 0)
        assert client.post("/v1/verify", json={}).json() == {"ok": True, "checked": 1, "problems": []}
    finally:
        server.close()


@pytest.mark.unit
def test_the_demo_walks_the_seed_scenario() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "quotaflow.cli.main", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"remaining": 99200' in done.stdout and '"allowed": false' in done.stdout
    assert '"refunded": [\n    {\n      "meter": "tokens",\n      "amount": 3200' in done.stdout


@pytest.mark.unit
def test_every_command_explains_itself() -> None:
    for args in (["--help"], ["serve", "--help"], ["demo", "--help"]):
        done = subprocess.run(
            [sys.executable, "-m", "quotaflow.cli.main", *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0 and "usage: quotaflow" in done.stdout, args


@pytest.mark.unit
def test_local_run_triggers_a_scheduled_function_as_of_a_given_time(embedded: LocalServer) -> None:
    client = seed(embedded.url, embedded.admin_key, quota=100)
    rid = client.post(
        "/v1/reservations", json={"user_id": "u1", "lines": [{"meter": "tokens", "amount": 60}], "ttl_seconds": 60}
    ).json()["reservation_id"]
    admin = {"Authorization": f"Bearer {embedded.admin_key}"}
    assert httpx.post(f"{embedded.url}/_local/run/sweeper", headers=admin).json()["expired"] == 0
    later = (datetime.now(UTC) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = httpx.post(f"{embedded.url}/_local/run/sweeper", json={"now": later}, headers=admin).json()
    assert (report["now"], report["expired"]) == (later, 1)
    assert client.get(f"/v1/reservations/{rid}").json()["status"] == "expired"
    assert client.get("/v1/users/u1/usage").json()["counters"][0]["remaining"] == 100
    assert httpx.post(f"{embedded.url}/_local/run/sweeper", headers=client.headers).status_code == 403
    assert httpx.post(f"{embedded.url}/_local/run/sweeper").status_code == 401
    assert httpx.post(f"{embedded.url}/_local/run/nothing", headers=admin).status_code == 404
    assert httpx.post(f"{embedded.url}/_local/run/sweeper", json={"now": "soon"}, headers=admin).status_code == 400


@pytest.mark.unit
def test_timers_expire_overdue_holds_without_being_asked() -> None:
    server = build_server(port=0, admin_key="qf_admin_e2e_key_0123456789", timers=True)
    server.start_in_thread()
    try:
        client = seed(server.url, server.admin_key, quota=10)
        client.post(
            "/v1/reservations", json={"user_id": "u1", "lines": [{"meter": "tokens", "amount": 10}], "ttl_seconds": 1}
        )
        deadline = time.monotonic() + 20
        while client.get("/v1/users/u1/usage").json()["counters"][0]["reserved"] != 0:
            assert time.monotonic() < deadline, "the sweeper timer never ran"
            time.sleep(0.5)
    finally:
        server.close()
