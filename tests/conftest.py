"""Shared fixtures. Every store-backed test runs twice: on moto (marker `unit`) and on DynamoDB Local, AWS's
own emulator (marker `integration`). Every test must carry one of the suite markers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
)

from quotaflow.services.scope import ContainerCache, Scope
from quotaflow.store import keys
from quotaflow.store.connect import CLIENT_CONFIG
from quotaflow.store.table import Store
from tests.support.ddb_local import DynamoDBLocal, boto3_client

SUITES = {"unit", "integration", "infra"}
FEW_SHARDS = 4  # per shared GSI2 bucket, in suites that are not about sharding


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items if not SUITES & {m.name for m in item.iter_markers()}]
    if unmarked:
        raise pytest.UsageError(f"tests without a suite marker ({', '.join(sorted(SUITES))}): {unmarked[:5]}")


@pytest.fixture(autouse=True)
def few_shards(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Suites that are not about sharding run the same code at 4 shards per shared bucket: a sweep is then 8 Queries
    on moto, not 256, which keeps the model-based suites (a sweep per step) fast. Tests marked `production_shards`
    (the sharding suite) keep the counts that ship; `make bench` measures those."""
    if request.node.get_closest_marker("production_shards"):
        return
    for family in ("EXPIRY", "GRANT_EXPIRY", "ALERTS_DUE"):
        monkeypatch.setattr(keys, f"{family}_SHARDS", FEW_SHARDS)
        monkeypatch.setattr(keys, f"{family}_SHARDS_READ", FEW_SHARDS)


@pytest.fixture(scope="session")
def ddb_local() -> Iterator[DynamoDBLocal]:
    with DynamoDBLocal() as emulator:
        yield emulator


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC))


def _moto_store() -> Iterator[Store]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        store = Store(boto3.client("dynamodb", region_name="us-east-1", config=CLIENT_CONFIG), "quotaflow")
        store.create_table()
        yield store


@pytest.fixture(
    params=[pytest.param("moto", marks=pytest.mark.unit), pytest.param("ddb_local", marks=pytest.mark.integration)]
)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A fresh, empty table on each backend."""
    if request.param == "moto":
        yield from _moto_store()
        return
    emulator: DynamoDBLocal = request.getfixturevalue("ddb_local")
    table = Store(boto3_client(emulator.endpoint), f"qf-{secrets.token_hex(6)}")
    table.create_table()
    yield table
    table.client.delete_table(TableName=table.table_name)


@pytest.fixture
def ddb_store(ddb_local: DynamoDBLocal) -> Iterator[Store]:
    """DynamoDB Local only: for concurrency, where moto is known to lose conditional updates."""
    table = Store(boto3_client(ddb_local.endpoint, max_pool_connections=32), f"qf-{secrets.token_hex(6)}")
    table.create_table()
    yield table
    table.client.delete_table(TableName=table.table_name)


@pytest.fixture
def moto_store() -> Iterator[Store]:
    """moto only: for tests that count calls or inject faults, where the backend does not matter."""
    yield from _moto_store()


def scope_for(store: Store, clock: Clock, tenant_id: str = "acme", cache: ContainerCache | None = None) -> Scope:
    return Scope(store, tenant_id, clock(), cache or ContainerCache())


def dynamodb_calls(store: Store) -> list[str]:
    """Record the name of every DynamoDB call the store's client makes from now on."""
    calls: list[str] = []

    def record(event_name: str, **_: Any) -> None:
        calls.append(event_name.rsplit(".", 1)[-1])

    store.client.meta.events.register("before-call.dynamodb.*", record)
    return calls
