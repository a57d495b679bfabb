"""Every route of the contract through the API function: status codes, bodies, error codes."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.conftest import Clock

pytestmark = pytest.mark.unit


def tokens(amount: int) -> list[dict[str, object]]:
    return [{"meter": "tokens", "amount": amount}]


def test_health_and_openapi_need_no_key(admin: Api) -> None:
    assert admin("GET", "/v1/health", key="").body == {"ok": True}
    doc = admin("GET", "/v1/openapi.json", key="").body
    assert doc["openapi"].startswith("3.")
    for path in (
        "/v1/reservations",
        "/v1/reservations/{reservation_id}/commit",
        "/v1/users/{user_id}/usage",
        "/v1/plans/{plan_id}",
        "/v1/admin/tenants",
        "/v1/verify",
        "/v1/users/{user_id}/ledger",
        "/v1/stripe/webhook/{tenant_id}",
        "/v1/quote",
        "/v1/webhooks",
    ):
        assert path in doc["paths"], path


def test_seed_walkthrough(qf: Api) -> None:
    held = qf("POST", "/v1/reservations", {"user_id": "u1", "lines": tokens(4000), "ttl_seconds": 300})
    assert held.status == 201 and held.body["status"] == "pending"
    rid = held.body["reservation_id"]
    committed = qf("POST", f"/v1/reservations/{rid}/commit", {"lines": tokens(800)})
    assert committed.status == 200
    assert committed.body["committed"] == tokens(800) and committed.body["refunded"] == tokens(3200)
    usage = qf("GET", "/v1/users/u1/usage").body
    assert usage["plan_id"] == "plan_paygo"
    assert usage["counters"][1] == {
        "meter": "tokens",
        "label": "Tokens",
        "period": "none",
        "period_start": None,
        "period_end": None,
        "enforcement": "hard",
        "quota": 100000,
        "credits": 0,
        "used": 800,
        "reserved": 0,
        "remaining": 99200,
    }
    assert qf("POST", "/v1/users/u1/can-use", {"meter": "tokens", "amount": 99201}).body == {
        "allowed": False,
        "remaining": 99200,
    }
    both = qf("POST", "/v1/users/u1/can-use", {"lines": [*tokens(1), {"meter": "requests", "amount": 9999}]}).body
    assert both["allowed"] is True and [m["meter"] for m in both["meters"]] == ["tokens", "requests"]
    assert qf("GET", f"/v1/reservations/{rid}").body["status"] == "committed"
    assert qf("POST", "/v1/verify", {}).body == {"ok": True, "checked": 1, "problems": []}


def test_insufficient_quota_is_402_with_details(qf: Api) -> None:
    refused = qf("POST", "/v1/reservations", {"user_id": "u1", "lines": tokens(100001)})
    assert refused.status == 402
    assert refused.body["error"] == {
        "code": "insufficient_quota",
        "message": refused.body["error"]["message"],
        "details": {"meter": "tokens", "requested": 100001, "available": 100000, "scope": "user"},
    }


def test_reservation_lifecycle_conflicts(qf: Api, clock: Clock) -> None:
    rid = qf("POST", "/v1/reservations", {"user_id": "u1", "lines": tokens(10), "ttl_seconds": 60}).body[
        "reservation_id"
    ]
    released = qf("POST", f"/v1/reservations/{rid}/release")
    assert released.status == 200 and released.body["refunded"] == tokens(10)
    assert qf("POST", f"/v1/reservations/{rid}/commit", {}).body["error"]["code"] == "reservation_not_pending"
    late = qf("POST", "/v1/reservations", {"user_id": "u1", "lines": tokens(10), "ttl_seconds": 60}).body
    clock.advance(seconds=61)
    assert qf("GET", f"/v1/reservations/{late['reservation_id']}").body["status"] == "expired"
    expired = qf("POST", f"/v1/reservations/{late['reservation_id']}/commit", {"lines": tokens(1)})
    assert (expired.status, expired.body["error"]["code"]) == (409, "reservation_expired")
    assert qf("GET", "/v1/reservations/rsv_nope").status == 404


def test_events_refunds_credits_and_the_ledger(qf: Api) -> None:
    event = qf("POST", "/v1/events", {"user_id": "u1", "lines": tokens(300), "properties": {"model": "gpt-4o"}})
    assert event.status == 201 and event.body["event_id"].startswith("evt_")
    assert qf("POST", "/v1/refunds", {"user_id": "u1", "lines": tokens(100), "reason": "failed"}).status == 201
    assert qf("POST", "/v1/refunds", {"user_id": "u1", "lines": tokens(201)}).body["error"]["code"] == "conflict"
    grant = qf("POST", "/v1/users/u1/credits", {"meter": "tokens", "amount": 5000, "expires_at": None})
    assert grant.status == 201 and grant.body["grant_id"].startswith("grt_")
    counter = qf("GET", "/v1/users/u1/usage").body["counters"][1]
    assert (counter["used"], counter["credits"], counter["remaining"]) == (200, 5000, 104800)
    (listed,) = qf("GET", "/v1/users/u1/credits").body["grants"]
    assert (listed["grant_id"], listed["amount"], listed["remaining"], listed["expires_at"]) == (
        grant.body["grant_id"],
        5000,
        5000,
        None,
    )
    expiring = qf(
        "POST", "/v1/users/u1/credits", {"meter": "tokens", "amount": 1, "expires_at": "2026-12-01T00:00:00Z"}
    )
    assert expiring.status == 201
    past = qf("POST", "/v1/users/u1/credits", {"meter": "tokens", "amount": 1, "expires_at": "2026-01-01T00:00:00Z"})
    assert past.body["error"]["details"] == {"field": "expires_at"}
    page = qf("GET", "/v1/users/u1/ledger", query="limit=2")
    assert [e["kind"] for e in page.body["entries"]] == ["grant", "grant"]
    rest = qf("GET", "/v1/users/u1/ledger", query=f"limit=50&cursor={page.body['next_cursor']}").body
    assert [e["kind"] for e in rest["entries"]] == ["refund", "event", "quota_change"]
    assert rest["next_cursor"] is None


def test_plans_subscriptions_and_settings(qf: Api) -> None:
    assert qf("GET", "/v1/plans/plan_paygo").body["limits"]["tokens"]["quota"] == 0
    assert [p["plan_id"] for p in qf("GET", "/v1/plans").body["plans"]] == ["plan_paygo"]
    assert qf("GET", "/v1/plans/nope").status == 404
    assert qf("GET", "/v1/users/u1/subscription").body["custom_limits"] == {"tokens": {"quota": 100000}}
    assert qf("GET", "/v1/users/u2/subscription").status == 404
    assert qf("PUT", "/v1/users/u2/subscription", {"plan_id": "nope"}).status == 404
    assert qf("GET", "/v1/users/u2/usage").status == 404
    assert qf("PUT", "/v1/settings", {"default_plan_id": "plan_paygo"}).body == {
        "tenant_id": "acme",
        "default_plan_id": "plan_paygo",
        "allowed_origins": [],
    }
    origins = qf("PUT", "/v1/settings", {"allowed_origins": ["https://app.example.com", "http://localhost:3000"]})
    assert origins.body["default_plan_id"] == "plan_paygo", "fields left out keep their value"
    assert qf("GET", "/v1/settings").body["allowed_origins"] == ["https://app.example.com", "http://localhost:3000"]
    assert qf("PUT", "/v1/settings", {"allowed_origins": ["*"]}).status == 400
    assert qf("GET", "/v1/users/u2/usage").body["plan_id"] == "plan_paygo"
    assert qf("PUT", "/v1/settings", {"default_plan_id": "nope"}).status == 404


def test_unknown_routes_are_404_in_the_error_shape(qf: Api) -> None:
    missing = qf("GET", "/v1/nothing-here")
    assert missing.status == 404 and missing.body["error"]["code"] == "not_found"
