"""Keys, browser tokens, bad input and Idempotency-Key through the API: clear 4xx, nothing changed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.conftest import ADMIN_KEY, Api
from tests.conftest import Clock

pytestmark = pytest.mark.unit


def tokens(amount: Any) -> list[dict[str, Any]]:
    return [{"meter": "tokens", "amount": amount}]


def ledger_size(qf: Api) -> int:
    return len(qf("GET", "/v1/users/u1/ledger", query="limit=200").body["entries"])


def test_admin_routes_take_only_the_admin_key(admin: Api, tenant_keys: dict[str, str]) -> None:
    assert admin("POST", "/v1/admin/tenants", {"tenant_id": "acme"}).body["error"]["code"] == "conflict"
    assert admin("POST", "/v1/admin/tenants", {"tenant_id": "x"}, key="").status == 401
    assert admin("POST", "/v1/admin/tenants", {"tenant_id": "x"}, key="qf_admin_wrong").status == 401
    assert admin("POST", "/v1/admin/tenants", {"tenant_id": "x"}, key=tenant_keys["secret_key"]).status == 403
    assert admin("GET", "/v1/plans", key=ADMIN_KEY).status == 403
    assert admin("POST", "/v1/admin/tenants/nope/keys", {"kind": "secret"}).status == 404


def test_a_revoked_key_is_refused_at_once(admin: Api, qf: Api) -> None:
    created = admin("POST", "/v1/admin/tenants/acme/keys", {"kind": "secret"}).body
    assert created["key"].startswith("qf_sk_") and created["key_id"].startswith("key_")
    second = qf.as_key(created["key"])
    assert second("GET", "/v1/plans").status == 200
    assert admin("DELETE", f"/v1/admin/tenants/acme/keys/{created['key_id']}").status == 204
    assert second("GET", "/v1/plans").status == 401
    assert qf("GET", "/v1/plans").status == 200
    assert admin("DELETE", f"/v1/admin/tenants/acme/keys/{created['key_id']}").status == 204, "revoking twice"
    assert admin("DELETE", "/v1/admin/tenants/acme/keys/key_never").status == 404


def test_keys_are_stored_only_as_hashes_even_for_replays(runtime: Any, admin: Api) -> None:
    created = admin("POST", "/v1/admin/tenants", {"tenant_id": "acme"}, headers={"Idempotency-Key": "t-1"}).body
    replayed = admin("POST", "/v1/admin/tenants", {"tenant_id": "acme"}, headers={"Idempotency-Key": "t-1"}).body
    assert replayed == created
    dump = json.dumps(runtime.store.client.scan(TableName=runtime.store.table_name)["Items"])
    assert created["secret_key"] not in dump and created["publishable_key"] not in dump
    assert created["secret_key"][6:20] not in dump


def test_publishable_keys_need_a_token_for_that_user(qf: Api, tenant_keys: dict[str, str], clock: Clock) -> None:
    pk = qf.as_key(tenant_keys["publishable_key"])
    token = qf("POST", "/v1/user-tokens", {"user_id": "u1", "ttl_seconds": 60}).body["token"]
    with_token = {"X-Quotaflow-User-Token": token}
    assert pk("GET", "/v1/users/u1/usage", headers=with_token).status == 200
    assert pk("POST", "/v1/users/u1/can-use", {"meter": "tokens", "amount": 1}, headers=with_token).status == 200
    assert pk("GET", "/v1/users/u1/usage").status == 401
    assert pk("GET", "/v1/users/u2/usage", headers=with_token).status == 403
    assert pk("GET", "/v1/plans", headers=with_token).status == 403
    assert pk("POST", "/v1/reservations", {"user_id": "u1", "lines": tokens(1)}, headers=with_token).status == 403
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert pk("GET", "/v1/users/u1/usage", headers={"X-Quotaflow-User-Token": forged}).status == 401
    clock.advance(seconds=61)
    assert pk("GET", "/v1/users/u1/usage", headers=with_token).status == 401


def test_tokens_of_another_tenant_are_refused(admin: Api, qf: Api) -> None:
    globex = Api(admin("POST", "/v1/admin/tenants", {"tenant_id": "globex"}).body["secret_key"])
    foreign = globex("POST", "/v1/user-tokens", {"user_id": "u1"}).body["token"]
    pk = qf.as_key(admin("POST", "/v1/admin/tenants/acme/keys", {"kind": "publishable"}).body["key"])
    assert pk("GET", "/v1/users/u1/usage", headers={"X-Quotaflow-User-Token": foreign}).status == 401
    assert globex("GET", "/v1/users/u1/usage").status == 404


BAD_RESERVATIONS: list[tuple[Any, str]] = [
    ({"user_id": "u1", "lines": tokens(1.0)}, "lines[0].amount"),
    ({"user_id": "u1", "lines": tokens("5")}, "lines[0].amount"),
    ({"user_id": "u1", "lines": tokens(True)}, "lines[0].amount"),
    ({"user_id": "u1", "lines": tokens(-1)}, "lines[0].amount"),
    ({"user_id": "u1", "lines": tokens(2**53)}, "lines[0].amount"),
    ({"user_id": "u1", "lines": tokens(10**400)}, "lines[0].amount"),
    ({"user_id": "u1", "lines": []}, "lines"),
    ({"user_id": "u1", "lines": [{"meter": f"m{i}", "amount": 1} for i in range(21)]}, "lines"),
    ({"user_id": "u1", "lines": tokens(1) + tokens(2)}, "lines"),
    ({"user_id": "u1", "lines": [{"meter": "Tokens", "amount": 1}]}, "lines[0].meter"),
    ({"user_id": "u1", "lines": [{"meter": "tokens"}]}, "lines[0].amount"),
    ({"user_id": "u 1", "lines": tokens(1)}, "user_id"),
    ({"user_id": "u" * 129, "lines": tokens(1)}, "user_id"),
    ({"user_id": "u1", "lines": tokens(1), "ttl_seconds": 0}, "ttl_seconds"),
    ({"user_id": "u1", "lines": tokens(1), "ttl_seconds": 86401}, "ttl_seconds"),
    ({"user_id": "u1", "lines": tokens(1), "ttl_second": 5}, "ttl_second"),
    ({"user_id": "u1", "lines": [{"meter": "images", "amount": 1}]}, "lines[0].meter"),
    ([], "body"),
    ("just a string", "body"),
    (None, "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_RESERVATIONS)
def test_bad_reservations_are_400_naming_the_field_and_change_nothing(qf: Api, body: Any, field: str) -> None:
    before = ledger_size(qf)
    raw = json.dumps(body) if body is not None else ""
    refused = qf("POST", "/v1/reservations", raw=raw.replace("1" + "0" * 400, "1e400") if raw else "")
    assert refused.status == 400, refused.body
    assert refused.body["error"]["code"] == "invalid_request"
    assert refused.body["error"]["details"]["field"] == field
    assert ledger_size(qf) == before


def test_malformed_json_oversized_bodies_and_wrong_content_type(qf: Api) -> None:
    before = ledger_size(qf)
    broken = qf("POST", "/v1/events", raw='{"user_id": "u1", "lines": [')
    assert (broken.status, broken.body["error"]["details"]["field"]) == (400, "body")
    huge = qf("POST", "/v1/events", raw=json.dumps({"user_id": "u1", "lines": tokens(1), "pad": "x" * 70_000}))
    assert (huge.status, huge.body["error"]["code"]) == (413, "payload_too_large")
    form = qf(
        "POST",
        "/v1/events",
        {"user_id": "u1", "lines": tokens(1)},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (form.status, form.body["error"]["code"]) == (415, "unsupported_media_type")
    assert qf("GET", "/v1/users/u1/ledger", query="limit=0").status == 400
    assert qf("GET", "/v1/users/u1/ledger", query="cursor=bm90LWEtY3Vyc29y").body["error"]["details"] == {
        "field": "cursor"
    }
    assert qf("GET", "/v1/users/bad%20id/usage").body["error"]["details"] == {"field": "user_id"}
    assert ledger_size(qf) == before


def test_a_cursor_cannot_walk_into_another_users_ledger(qf: Api) -> None:
    qf("PUT", "/v1/users/u2/subscription", {"plan_id": "plan_paygo"})
    qf("POST", "/v1/events", {"user_id": "u1", "lines": tokens(1)})
    cursor = qf("GET", "/v1/users/u1/ledger", query="limit=1").body["next_cursor"]
    assert qf("GET", "/v1/users/u2/ledger", query=f"cursor={cursor}").status == 400


def test_idempotency_key_replays_the_first_response(qf: Api) -> None:
    body = {"user_id": "u1", "lines": tokens(4000)}
    first = qf("POST", "/v1/reservations", body, headers={"Idempotency-Key": "k-1"})
    again = qf("POST", "/v1/reservations", dict(reversed(body.items())), headers={"Idempotency-Key": "k-1"})
    assert (again.status, again.body) == (first.status, first.body)
    assert qf("GET", "/v1/users/u1/usage").body["counters"][1]["reserved"] == 4000
    reused = qf("POST", "/v1/reservations", {"user_id": "u1", "lines": tokens(1)}, headers={"Idempotency-Key": "k-1"})
    assert (reused.status, reused.body["error"]["code"]) == (409, "idempotency_key_reused")
    other_path = qf("POST", "/v1/events", body, headers={"Idempotency-Key": "k-1"})
    assert other_path.body["error"]["code"] == "idempotency_key_reused"


def test_final_errors_are_replayed_too(qf: Api) -> None:
    body = {"user_id": "u1", "lines": tokens(100_001)}
    first = qf("POST", "/v1/reservations", body, headers={"Idempotency-Key": "k-402"})
    assert first.status == 402
    qf("POST", "/v1/users/u1/credits", {"meter": "tokens", "amount": 10})  # now it would fit
    again = qf("POST", "/v1/reservations", body, headers={"Idempotency-Key": "k-402"})
    assert (again.status, again.body) == (402, first.body)
    invalid = qf(
        "POST", "/v1/reservations", {"user_id": "u1", "lines": tokens(-1)}, headers={"Idempotency-Key": "k-400"}
    )
    assert invalid.status == 400
    assert qf("POST", "/v1/reservations", body, headers={"Idempotency-Key": "k-400"}).status == 409


def test_commit_retried_with_its_key_replays(qf: Api) -> None:
    rid = qf("POST", "/v1/reservations", {"user_id": "u1", "lines": tokens(50)}).body["reservation_id"]
    first = qf("POST", f"/v1/reservations/{rid}/commit", {"lines": tokens(20)}, headers={"Idempotency-Key": "c"})
    again = qf("POST", f"/v1/reservations/{rid}/commit", {"lines": tokens(20)}, headers={"Idempotency-Key": "c"})
    assert (again.status, again.body) == (200, first.body)
    assert qf("GET", "/v1/users/u1/usage").body["counters"][1]["used"] == 20


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "ünïcode"])
def test_bad_idempotency_keys_are_400(qf: Api, key: str) -> None:
    refused = qf("POST", "/v1/events", {"user_id": "u1", "lines": tokens(1)}, headers={"Idempotency-Key": key})
    assert (refused.status, refused.body["error"]["details"]["field"]) == (400, "Idempotency-Key")


def test_a_body_that_is_not_utf8_is_400_not_a_crash(qf: Api) -> None:
    """Found by schemathesis: API Gateway base64-encodes such bodies and the resolver failed decoding them."""
    from quotaflow.handlers import api
    from quotaflow.local.events import LocalContext, http_event

    event = http_event(
        "POST",
        "/v1/events",
        headers={"Authorization": f"Bearer {qf.key}", "Content-Type": "application/json"},
        body=b"\xbe\xef{",
    )
    assert event["isBase64Encoded"] is True
    response = api.handler(event, LocalContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["details"] == {"field": "body"}
