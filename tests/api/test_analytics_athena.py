"""The Athena path of POST /v1/analytics/usage: the real boto3 Athena client against moto's Athena, which keeps
what it was sent, moves a query from QUEUED through RUNNING to SUCCEEDED as it is polled, and answers with rows
the test queues (moto runs no SQL: the SQL itself is checked in tests/unit/test_analytics_sql.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from moto.moto_api import state_manager

from quotaflow.config import Settings
from quotaflow.handlers.runtime import Runtime, bind
from quotaflow.services import analytics
from quotaflow.store.lake_query import athena_dialect
from quotaflow.store.table import Store
from tests.api.conftest import ADMIN_KEY, Api
from tests.conftest import Clock

pytestmark = pytest.mark.unit

WORKGROUP = "quotaflow-dev-analytics"
DATABASE = "quotaflow_dev"
QUERY = {"meter": "tokens", "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "group_by": ["model"]}


@pytest.fixture
def athena(moto_store: Store, clock: Clock) -> Iterator[Any]:
    settings = Settings(
        admin_key=ADMIN_KEY, athena_workgroup=WORKGROUP, lake_database=DATABASE, lake_table="ledger_entries"
    )
    bind(Runtime(store=moto_store, settings=settings, clock=clock))
    client = boto3.client("athena", region_name="us-east-1")
    client.create_work_group(Name=WORKGROUP)
    yield client
    state_manager.unset_transition("athena::execution")


def queue_rows(*rows: tuple[str | None, ...]) -> None:
    """The next query's result set, as Athena gives it: a header row, then every value as text."""
    header = ("window_start", "g0", "used", "events")
    results = {
        "results": [
            {
                "rows": [
                    {"Data": [{"VarCharValue": v} if v is not None else {} for v in row]} for row in (header, *rows)
                ],
                "column_info": [{"Name": name, "Type": "varchar"} for name in header],
            }
        ]
    }
    answer = requests.post("http://motoapi.amazonaws.com/moto-api/static/athena/query-results", json=results, timeout=5)
    assert answer.status_code == 201


def tenant(admin: Api, tenant_id: str) -> Api:
    created = admin("POST", "/v1/admin/tenants", {"tenant_id": tenant_id})
    assert created.status == 201, created.body
    return Api(created.body["secret_key"])


def test_a_quick_query_answers_with_its_rows_and_sends_the_tenant_as_a_parameter(athena: Any) -> None:
    acme = tenant(Api(ADMIN_KEY), "acme")
    queue_rows(("2026-11-27T00:00:00Z", "gpt-4o", "150", "2"), ("2026-11-27T00:00:00Z", None, "-10", "1"))

    answer = acme("POST", "/v1/analytics/usage", QUERY)

    assert answer.status == 200, answer.body
    assert answer.body["rows"] == [
        {"window_start": "2026-11-27T00:00:00Z", "model": "gpt-4o", "used": 150, "events": 2},
        {"window_start": "2026-11-27T00:00:00Z", "model": None, "used": -10, "events": 1},
    ]
    sent = athena.get_query_execution(QueryExecutionId=answer.body["query_id"])["QueryExecution"]
    expected = analytics.build_sql(
        analytics.UsageQuery.model_validate(QUERY), "acme", athena_dialect(DATABASE, "ledger_entries")
    )
    assert sent["Query"] == expected.text
    assert sent["WorkGroup"] == WORKGROUP
    assert sent["QueryExecutionContext"]["Database"] == DATABASE
    assert sent["ExecutionParameters"][0] == "'acme'"  # tenant scoping: the first parameter, always
    assert "acme" not in sent["Query"]


def test_a_slow_query_answers_202_and_is_polled_by_its_tenant_only(
    athena: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = Api(ADMIN_KEY)
    acme, rival = tenant(admin, "acme"), tenant(admin, "rival")
    monkeypatch.setattr(analytics, "ATHENA_WAIT_S", 0.2)  # the request's bounded wait, shortened for the test
    # each state holds for 20 reads: the request's short wait ends before the query does
    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 20})
    queue_rows(("2026-11-01T00:00:00Z", "gpt-4o", "7", "1"))

    started = acme("POST", "/v1/analytics/usage", QUERY)

    assert started.status == 202, started.body
    assert started.body == {"query_id": started.body["query_id"], "status": "running"}
    path = f"/v1/analytics/queries/{started.body['query_id']}"
    assert rival("GET", path).status == 404  # another tenant's query id is nobody's
    polls = [acme("GET", path) for _ in range(60)]
    statuses = [poll.status for poll in polls]
    assert statuses[0] == 202 and 200 in statuses
    done = polls[statuses.index(200)]
    assert done.body["rows"] == [{"window_start": "2026-11-01T00:00:00Z", "model": "gpt-4o", "used": 7, "events": 1}]


def test_an_unknown_query_id_is_404_and_a_malformed_one_400(athena: Any) -> None:
    acme = tenant(Api(ADMIN_KEY), "acme")
    assert acme("GET", "/v1/analytics/queries/0b6c2d0e-1a2b-4c3d-8e9f-0a1b2c3d4e5f").status == 404
    malformed = acme("GET", "/v1/analytics/queries/a_b")
    assert malformed.status == 400
    assert malformed.body["error"]["details"]["field"] == "query_id"
