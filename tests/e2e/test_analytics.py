"""Usage analytics end to end under `quotaflow serve`: real writes over HTTP, the table's stream polled into the
local lake (NDJSON), and POST /v1/analytics/usage answered by DuckDB over it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from quotaflow.handlers.runtime import runtime
from quotaflow.local.server import LocalServer, build_server
from tests.conftest import Clock

pytestmark = pytest.mark.unit

ADMIN_KEY = "qf_admin_analytics_0123456789"
PLAN = {
    "name": "Metered",
    "limits": {
        "tokens": {"label": "Tokens", "quota": 1_000_000, "period": "none", "enforcement": "hard"},
        "cents": {"label": "Cents", "quota": 1_000_000, "period": "none", "enforcement": "hard"},
    },
}
PRICE = {"input_per_million_cents": 250, "output_per_million_cents": 1000, "markup_percent": 0}
WHOLE_RANGE = {"meter": "tokens", "from": "2026-11-01T00:00:00Z", "to": "2026-12-31T00:00:00Z"}


@dataclass
class Lake:
    server: LocalServer
    acme: httpx.Client
    rival: httpx.Client
    acme_publishable_key: str


def tenant(server: LocalServer, tenant_id: str) -> tuple[httpx.Client, str]:
    admin = httpx.post(
        f"{server.url}/v1/admin/tenants",
        json={"tenant_id": tenant_id},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert admin.status_code == 201, admin.text
    keys = admin.json()
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {keys['secret_key']}"}, timeout=30)
    assert client.put("/v1/plans/metered", json=PLAN).status_code == 200
    for user_id in ("u1", "u2", "u3"):
        assert client.put(f"/v1/users/{user_id}/subscription", json={"plan_id": "metered"}).status_code == 200
    return client, keys["publishable_key"]


def event(client: httpx.Client, user_id: str, amount: int, **properties: str) -> None:
    body = {"user_id": user_id, "lines": [{"meter": "tokens", "amount": amount}], "properties": properties}
    answer = client.post("/v1/events", json=body)
    assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    """Two tenants' usage over two months, written through serve at chosen moments and flushed into the lake."""
    server = build_server(port=0, admin_key=ADMIN_KEY, lake_dir=str(tmp_path_factory.mktemp("lake")))
    server.start_in_thread()
    clock = Clock(datetime(2026, 11, 27, 10, 5, tzinfo=UTC))
    runtime().clock = clock  # the API function's clock: entries land in the hours and days the test chooses
    (acme, acme_publishable_key), (rival, _) = tenant(server, "acme"), tenant(server, "rival")
    event(acme, "u1", 100, model="gpt-4o", feature="chat")
    event(rival, "u1", 999, model="gpt-4o", feature="chat")
    clock.advance(minutes=35)  # 10:40
    event(acme, "u1", 50, model="gpt-4o", feature="search")
    clock.advance(minutes=30)  # 11:10
    event(acme, "u2", 70, model="claude", feature="chat")
    clock.now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    held = acme.post("/v1/reservations", json={"user_id": "u2", "lines": [{"meter": "tokens", "amount": 500}]})
    assert held.status_code == 201, held.text
    committed = acme.post(
        f"/v1/reservations/{held.json()['reservation_id']}/commit", json={"lines": [{"meter": "tokens", "amount": 300}]}
    )
    assert committed.status_code == 200, committed.text
    clock.now = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    event(acme, "u1", 40, model="gpt-4o", feature="chat")
    refund = acme.post("/v1/refunds", json={"user_id": "u1", "lines": [{"meter": "tokens", "amount": 10}]})
    assert refund.status_code == 201, refund.text
    assert acme.put("/v1/prices/gpt-4o-mini", json=PRICE).status_code == 200
    priced = {"meter": "cents", "from_model": {"model": "gpt-4o-mini", "input_tokens": 400_000, "output_tokens": 0}}
    assert acme.post("/v1/events", json={"user_id": "u2", "lines": [priced]}).status_code == 201  # 100 cents
    run = acme.post("/v1/reservations", json={"user_id": "u3", "lines": [{"meter": "tokens", "amount": 1000}]})
    assert run.status_code == 201, run.text
    step = {"lines": [{"meter": "tokens", "amount": 200}], "properties": {"step": "search", "model": "o3"}}
    drawn = acme.post(f"/v1/reservations/{run.json()['reservation_id']}/draw", json=step)
    assert drawn.status_code == 200, drawn.text
    ended = acme.post(f"/v1/reservations/{run.json()['reservation_id']}/commit", json={"lines": []})
    assert ended.status_code == 200, ended.text
    flushed = httpx.post(f"{server.url}/_local/run/notifier", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert flushed.status_code == 200 and flushed.json()["stream_records"] > 0, flushed.text
    yield Lake(server, acme, rival, acme_publishable_key)
    acme.close()
    rival.close()
    server.close()


def usage(client: httpx.Client, **query: Any) -> list[dict[str, Any]]:
    answer = client.post("/v1/analytics/usage", json={**WHOLE_RANGE, **query})
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()["rows"]
    return rows


def refused(client: httpx.Client, body: dict[str, Any]) -> str:
    answer = client.post("/v1/analytics/usage", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    field: str = error["details"]["field"]
    return field


def test_the_lake_is_laid_out_by_tenant_and_day(lake: Lake) -> None:
    server = lake.server
    root = Path(str(server.lake_dir))
    partitions = {path.parent.relative_to(root).as_posix() for path in root.glob("tenant_id=*/day=*/*.ndjson")}
    assert partitions == {
        "tenant_id=acme/day=2026-11-27",
        "tenant_id=acme/day=2026-11-28",
        "tenant_id=acme/day=2026-12-02",
        "tenant_id=rival/day=2026-11-27",
    }


def test_usage_by_model_per_day(lake: Lake) -> None:
    acme = lake.acme
    rows = usage(acme, window="day", group_by=["model"])
    assert rows == [
        {"window_start": "2026-11-27T00:00:00Z", "model": "gpt-4o", "used": 150, "events": 2},
        {"window_start": "2026-11-27T00:00:00Z", "model": "claude", "used": 70, "events": 1},
        {"window_start": "2026-11-28T00:00:00Z", "model": None, "used": 300, "events": 1},  # the commit
        {"window_start": "2026-12-02T00:00:00Z", "model": "o3", "used": 200, "events": 1},  # a run's draw
        {"window_start": "2026-12-02T00:00:00Z", "model": "gpt-4o", "used": 40, "events": 1},
        {"window_start": "2026-12-02T00:00:00Z", "model": None, "used": -10, "events": 1},  # the refund
    ]


def test_hour_and_month_windows(lake: Lake) -> None:
    acme = lake.acme
    hours = usage(acme, window="hour", group_by=["user"], **{"to": "2026-11-28T00:00:00Z"})
    assert hours == [
        {"window_start": "2026-11-27T10:00:00Z", "user": "u1", "used": 150, "events": 2},
        {"window_start": "2026-11-27T11:00:00Z", "user": "u2", "used": 70, "events": 1},
    ]
    months = usage(acme, window="month")
    assert months == [
        {"window_start": "2026-11-01T00:00:00Z", "used": 520, "events": 4},
        {"window_start": "2026-12-01T00:00:00Z", "used": 230, "events": 3},
    ]


def test_filters_and_property_groups(lake: Lake) -> None:
    acme = lake.acme
    chat_by_user = usage(acme, window="month", group_by=["user"], filters={"property:feature": "chat"})
    assert chat_by_user == [
        {"window_start": "2026-11-01T00:00:00Z", "user": "u1", "used": 100, "events": 1},
        {"window_start": "2026-11-01T00:00:00Z", "user": "u2", "used": 70, "events": 1},
        {"window_start": "2026-12-01T00:00:00Z", "user": "u1", "used": 40, "events": 1},
    ]
    u2_by_kind = usage(acme, window="month", group_by=["kind", "property:feature"], filters={"user": "u2"})
    assert u2_by_kind == [
        {"window_start": "2026-11-01T00:00:00Z", "kind": "commit", "property:feature": None, "used": 300, "events": 1},
        {"window_start": "2026-11-01T00:00:00Z", "kind": "event", "property:feature": "chat", "used": 70, "events": 1},
    ]
    top_one = usage(acme, window="month", group_by=["model"], filters={"model": "gpt-4o"}, limit=1)
    assert top_one == [{"window_start": "2026-11-01T00:00:00Z", "model": "gpt-4o", "used": 150, "events": 2}]
    # a range narrower than the data: only entries at or after `from` and before `to`
    late = usage(acme, window="hour", **{"from": "2026-11-27T10:30:00Z", "to": "2026-11-27T11:00:00Z"})
    assert late == [{"window_start": "2026-11-27T10:00:00Z", "used": 50, "events": 1}]


def test_a_runs_draws_count_under_their_step(lake: Lake) -> None:
    rows = usage(lake.acme, window="month", group_by=["kind", "property:step"], filters={"user": "u3"})
    assert rows == [
        {"window_start": "2026-12-01T00:00:00Z", "kind": "draw", "property:step": "search", "used": 200, "events": 1}
    ]


def test_a_priced_lines_model_is_the_entrys_model(lake: Lake) -> None:
    rows = usage(lake.acme, meter="cents", window="month", group_by=["model", "user"])
    assert rows == [
        {"window_start": "2026-12-01T00:00:00Z", "model": "gpt-4o-mini", "user": "u2", "used": 100, "events": 1}
    ]


def test_an_exclusive_to_inside_an_entrys_second_still_counts_it(lake: Lake) -> None:
    # the first entry is stamped 10:05:00; one written in that second's last fraction is stamped the same
    at = {"from": "2026-11-27T10:00:00Z", "window": "hour"}
    assert usage(lake.acme, **at, to="2026-11-27T10:05:00Z") == []
    assert usage(lake.acme, **at, to="2026-11-27T10:05:00.001Z") == [
        {"window_start": "2026-11-27T10:00:00Z", "used": 100, "events": 1}
    ]


def test_entries_delivered_twice_count_once(lake: Lake, tmp_path: Path) -> None:
    server, acme = lake.server, lake.acme
    before = usage(acme, window="day", group_by=["model", "user"])
    root = Path(str(server.lake_dir))
    copies = []
    for path in list(root.glob("tenant_id=*/day=*/*.ndjson")):
        copy = path.with_name(f"redelivered-{path.name}")
        shutil.copyfile(path, copy)  # what a retried stream batch does: the same records again
        copies.append(copy)
    try:
        assert usage(acme, window="day", group_by=["model", "user"]) == before
    finally:
        for copy in copies:
            copy.unlink()


def test_another_tenants_rows_never_appear(lake: Lake) -> None:
    acme, rival = lake.acme, lake.rival
    assert usage(rival, window="month", group_by=["user", "model"]) == [
        {"window_start": "2026-11-01T00:00:00Z", "user": "u1", "model": "gpt-4o", "used": 999, "events": 1}
    ]
    assert usage(rival, window="day", filters={"user": "u2"}) == []
    assert 999 not in {row["used"] for row in usage(acme, window="month", group_by=["user"])}
    # a filter value is a parameter, never SQL: a quote in it matches nothing and breaks nothing
    assert usage(rival, window="day", filters={"user": "u1' OR tenant_id <> 'rival"}) == []


def test_bad_queries_are_refused_naming_the_field(lake: Lake) -> None:
    acme = lake.acme
    assert refused(acme, {**WHOLE_RANGE, "to": "2028-01-01T00:00:00Z"}) == "to"  # over 366 days
    assert refused(acme, {**WHOLE_RANGE, "from": "2026-12-31T00:00:00Z"}) == "from"  # from == to
    assert refused(acme, {**WHOLE_RANGE, "window": "week"}) == "window"
    assert refused(acme, {**WHOLE_RANGE, "group_by": ["model", "user", "kind", "account"]}) == "group_by"
    assert refused(acme, {**WHOLE_RANGE, "group_by": ["model", "model"]}) == "group_by"
    assert refused(acme, {**WHOLE_RANGE, "group_by": ["property:x) OR (1=1"]}) == "group_by[0]"
    assert refused(acme, {**WHOLE_RANGE, "group_by": ["tenant"]}) == "group_by[0]"
    assert refused(acme, {**WHOLE_RANGE, "limit": 0}) == "limit"
    assert refused(acme, {"from": WHOLE_RANGE["from"], "to": WHOLE_RANGE["to"]}) == "meter"
    assert refused(acme, {**WHOLE_RANGE, "from": "2026-11-01T00:00:00"}) == "from"  # no time zone


def test_only_a_secret_key_may_ask(lake: Lake) -> None:
    server, acme = lake.server, lake.acme
    anonymous = httpx.post(f"{server.url}/v1/analytics/usage", json=WHOLE_RANGE)
    assert anonymous.status_code == 401
    publishable = httpx.post(
        f"{server.url}/v1/analytics/usage",
        json=WHOLE_RANGE,
        headers={"Authorization": f"Bearer {lake.acme_publishable_key}"},
    )
    assert publishable.status_code == 403
    # there are no Athena queries to poll under serve
    assert acme.get("/v1/analytics/queries/0b6c2d0e-1a2b-4c3d-8e9f-0a1b2c3d4e5f").status_code == 404


def test_an_unreadable_lake_file_is_503_not_500(lake: Lake) -> None:
    broken = Path(str(lake.server.lake_dir)) / "tenant_id=acme" / "day=2026-11-29" / "broken.ndjson"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"entry_id": "half a record\n')
    try:
        answer = lake.acme.post("/v1/analytics/usage", json=WHOLE_RANGE)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "unavailable"
    finally:
        broken.unlink()
        broken.parent.rmdir()
