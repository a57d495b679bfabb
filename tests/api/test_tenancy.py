"""Isolation on every route family: another tenant's ids are simply not found, and nothing of theirs changes.
Browser tokens: the signing secret rotates without breaking tokens already handed out."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api
from tests.conftest import Clock

pytestmark = pytest.mark.unit
TOKENS = [{"meter": "tokens", "amount": 10}]


@pytest.fixture
def globex(admin: Api, qf: Api) -> Api:
    return Api(admin("POST", "/v1/admin/tenants", {"tenant_id": "globex"}).body["secret_key"])


def snapshot(qf: Api) -> Any:
    return (
        qf("GET", "/v1/users/u1/usage").body,
        qf("GET", "/v1/users/u1/ledger").body,
        qf("GET", "/v1/plans").body,
        qf("GET", "/v1/users/u1/subscription").body,
    )


def test_another_tenants_key_finds_nothing_and_changes_nothing(qf: Api, globex: Api) -> None:
    rid = qf("POST", "/v1/reservations", {"user_id": "u1", "lines": TOKENS}).body["reservation_id"]
    before = snapshot(qf)
    not_found = [
        globex("GET", "/v1/users/u1/usage"),
        globex("POST", "/v1/users/u1/can-use", {"meter": "tokens", "amount": 1}),
        globex("GET", "/v1/users/u1/subscription"),
        globex("GET", "/v1/plans/plan_paygo"),
        globex("GET", f"/v1/reservations/{rid}"),
        globex("POST", f"/v1/reservations/{rid}/commit", {"lines": TOKENS}),
        globex("POST", f"/v1/reservations/{rid}/release"),
        globex("POST", "/v1/reservations", {"user_id": "u1", "lines": TOKENS}),
        globex("POST", "/v1/events", {"user_id": "u1", "lines": TOKENS}),
        globex("POST", "/v1/refunds", {"user_id": "u1", "lines": TOKENS}),
        globex("POST", "/v1/users/u1/credits", {"meter": "tokens", "amount": 5}),
        globex("PUT", "/v1/users/u1/subscription", {"plan_id": "plan_paygo"}),
        globex("PUT", "/v1/settings", {"default_plan_id": "plan_paygo"}),
    ]
    assert [reply.status for reply in not_found] == [404] * len(not_found)
    assert globex("GET", "/v1/plans").body == {"plans": []}
    assert globex("GET", "/v1/users/u1/ledger").body == {"entries": [], "next_cursor": None}
    assert globex("POST", "/v1/verify", {}).body == {"ok": True, "checked": 0, "problems": []}
    assert snapshot(qf) == before


def test_the_same_ids_in_two_tenants_are_two_different_things(qf: Api, globex: Api) -> None:
    plan = {"name": "Other", "limits": {"tokens": {"quota": 7, "period": "none"}}}
    assert globex("PUT", "/v1/plans/plan_paygo", plan).status == 200
    assert globex("PUT", "/v1/users/u1/subscription", {"plan_id": "plan_paygo"}).status == 200
    assert globex("POST", "/v1/events", {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 7}]}).status == 201
    assert globex("GET", "/v1/users/u1/usage").body["counters"][0]["remaining"] == 0
    assert qf("GET", "/v1/users/u1/usage").body["counters"][1]["remaining"] == 100_000


def test_rotating_the_token_secret_keeps_issued_tokens_alive(
    qf: Api, tenant_keys: dict[str, str], clock: Clock
) -> None:
    pk = qf.as_key(tenant_keys["publishable_key"])
    old = qf("POST", "/v1/user-tokens", {"user_id": "u1", "ttl_seconds": 86_400}).body["token"]
    assert pk("GET", "/v1/users/u1/usage", headers={"X-Quotaflow-User-Token": old}).status == 200  # now cached
    assert qf("POST", "/v1/user-tokens/rotate-secret").status == 200
    new = qf("POST", "/v1/user-tokens", {"user_id": "u1", "ttl_seconds": 60}).body["token"]
    assert new.split(".")[1] != old.split(".")[1]
    for token in (old, new):
        assert pk("GET", "/v1/users/u1/usage", headers={"X-Quotaflow-User-Token": token}).status == 200
    clock.advance(hours=24, seconds=1)
    assert pk("GET", "/v1/users/u1/usage", headers={"X-Quotaflow-User-Token": old}).status == 401


def test_the_widget_routes_answer_cors_only_for_the_tenants_origins(qf: Api, tenant_keys: dict[str, str]) -> None:
    from quotaflow.handlers import api
    from quotaflow.local.events import LocalContext, http_event

    qf("PUT", "/v1/settings", {"allowed_origins": ["https://app.example.com"]})
    token = qf("POST", "/v1/user-tokens", {"user_id": "u1"}).body["token"]

    def browser(origin: str, method: str = "GET") -> dict[str, Any]:
        headers = {
            "Origin": origin,
            "Authorization": f"Bearer {tenant_keys['publishable_key']}",
            "X-Quotaflow-User-Token": token,
        }
        if method == "OPTIONS":
            headers = {"Origin": origin, "Access-Control-Request-Method": "GET"}
        return api.handler(http_event(method, "/v1/users/u1/usage", headers=headers), LocalContext())

    allowed = browser("https://app.example.com")
    assert allowed["statusCode"] == 200
    assert allowed["headers"]["Access-Control-Allow-Origin"] == "https://app.example.com"
    foreign = browser("https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in foreign["headers"], "the browser will not let that page read it"
    preflight = browser("https://app.example.com", "OPTIONS")
    assert preflight["statusCode"] == 204
    assert "X-Quotaflow-User-Token" in preflight["headers"]["Access-Control-Allow-Headers"]
    assert (
        "Access-Control-Allow-Origin"
        not in qf("GET", "/v1/plans", headers={"Origin": "https://app.example.com"}).headers
    )
