"""Plan features and entitlements through the API: merged with overrides, checked by can-use, readable from
the browser with a publishable key and a user token, and bad feature values refused without a change."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.unit

PRO = {
    "name": "Pro",
    "limits": {"tokens": {"quota": 1000, "period": "month"}},
    "features": {"gpt-4o": True, "max_context_tokens": 128000, "support": "email", "sso": False},
}


@pytest.fixture
def pro(qf: Api) -> Api:
    assert qf("PUT", "/v1/plans/plan_pro", PRO).status == 200
    body = {"plan_id": "plan_pro", "custom_features": {"sso": True, "support": "priority", "beta": 0}}
    assert qf("PUT", "/v1/users/u2/subscription", body).status == 200
    return qf


def allowed(qf: Api, user_id: str, feature: str, headers: dict[str, str] | None = None) -> Any:
    reply = qf("POST", f"/v1/users/{user_id}/can-use", {"feature": feature}, headers=headers)
    assert reply.status == 200, reply.body
    return reply.body["allowed"]


def test_entitlements_are_the_plan_merged_with_the_overrides(pro: Api) -> None:
    assert pro("GET", "/v1/users/u2/entitlements").body == {
        "user_id": "u2",
        "features": {"beta": 0, "gpt-4o": True, "max_context_tokens": 128000, "sso": True, "support": "priority"},
    }
    assert pro("GET", "/v1/plans/plan_pro").body["features"] == PRO["features"]
    assert pro("GET", "/v1/users/u2/subscription").body["custom_features"]["sso"] is True


def test_can_use_a_feature_allows_only_what_is_on(pro: Api) -> None:
    assert allowed(pro, "u2", "gpt-4o") is True
    assert allowed(pro, "u2", "max_context_tokens") is True
    assert allowed(pro, "u2", "sso") is True, "the override turns it on"
    assert allowed(pro, "u2", "beta") is False, "zero is off"
    assert allowed(pro, "u2", "o3") is False, "missing is off"
    assert pro("POST", "/v1/users/u2/can-use", {"feature": "gpt-4o"}).body == {"allowed": True}


def test_a_plan_change_reaches_entitlements_at_once(pro: Api) -> None:
    assert pro("PUT", "/v1/plans/plan_pro", {**PRO, "features": {"gpt-4o": False}}).status == 200
    assert allowed(pro, "u2", "gpt-4o") is False
    assert pro("GET", "/v1/users/u2/entitlements").body["features"] == {
        "beta": 0,
        "gpt-4o": False,
        "sso": True,
        "support": "priority",
    }


def test_a_default_plan_user_gets_the_default_plans_features(pro: Api) -> None:
    assert pro("PUT", "/v1/settings", {"default_plan_id": "plan_pro"}).status == 200
    assert pro("GET", "/v1/users/fresh/entitlements").body["features"] == PRO["features"]
    assert allowed(pro, "fresh", "sso") is False


def test_the_browser_reads_entitlements_with_a_user_token(admin: Api, pro: Api) -> None:
    pk = pro.as_key(admin("POST", "/v1/admin/tenants/acme/keys", {"kind": "publishable"}).body["key"])
    token = pro("POST", "/v1/user-tokens", {"user_id": "u2", "ttl_seconds": 60}).body["token"]
    with_token = {"X-Quotaflow-User-Token": token}
    assert pk("GET", "/v1/users/u2/entitlements", headers=with_token).body["features"]["sso"] is True
    assert allowed(pk, "u2", "gpt-4o", headers=with_token) is True
    assert pk("GET", "/v1/users/u2/entitlements").status == 401, "no token"
    assert pk("GET", "/v1/users/u1/entitlements", headers=with_token).status == 403, "another user's token"
    assert pk("POST", "/v1/users/u1/can-use", {"feature": "gpt-4o"}, headers=with_token).status == 403


@pytest.mark.parametrize(
    "body",
    [
        {"feature": "gpt-4o", "meter": "tokens", "amount": 1},
        {"feature": "gpt-4o", "lines": [{"meter": "tokens", "amount": 1}]},
        {"feature": "bad feature"},
        {"feature": ""},
        {"feature": True},
    ],
)
def test_can_use_takes_exactly_one_form(pro: Api, body: dict[str, Any]) -> None:
    reply = pro("POST", "/v1/users/u2/can-use", body)
    assert reply.status == 400 and reply.body["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "features",
    [{"x": 1.5}, {"x": None}, {"x": [1]}, {"x": {"y": 1}}, {"x": 2**53}, {"bad key": True}, {"x": "s" * 257}],
)
def test_bad_feature_values_are_refused_and_change_nothing(pro: Api, features: dict[str, Any]) -> None:
    before = pro("GET", "/v1/plans/plan_pro").body
    reply = pro("PUT", "/v1/plans/plan_pro", {**PRO, "features": features})
    assert reply.status == 400 and reply.body["error"]["code"] == "invalid_request"
    sub = pro("PUT", "/v1/users/u2/subscription", {"plan_id": "plan_pro", "custom_features": features})
    assert sub.status == 400
    assert pro("GET", "/v1/plans/plan_pro").body == before
    assert pro("GET", "/v1/users/u2/entitlements").body["features"]["sso"] is True


def test_the_openapi_document_has_entitlements(admin: Api) -> None:
    doc = admin("GET", "/v1/openapi.json", key="").body
    assert "get" in doc["paths"]["/v1/users/{user_id}/entitlements"]
