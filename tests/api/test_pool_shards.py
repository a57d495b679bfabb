"""`pool_shards` on `PUT /v1/accounts/{id}` through API Gateway events: bounded, kept when left out, only growing,
and refused with a 409 naming why where a shard could not keep a rule exactly. Nothing refused changes anything."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.unit

TEAM = {"name": "Team", "limits": {"tokens": {"label": "Tokens", "quota": 300, "period": "month"}}}


@pytest.fixture
def team(qf: Api) -> Api:
    assert qf("PUT", "/v1/plans/plan_team", TEAM).status == 200
    return qf


def put(qf: Api, **fields: object) -> tuple[int, dict[str, object]]:
    reply = qf("PUT", "/v1/accounts/acme", {"name": "Acme", "plan_id": "plan_team", **fields})
    return reply.status, reply.body


@pytest.mark.parametrize("shards", [0, 33, "4", 1.5, True])
def test_a_shard_count_outside_1_to_32_is_400_and_changes_nothing(team: Api, shards: object) -> None:
    status, body = put(team, pool_shards=shards)
    assert status == 400, body
    assert team("GET", "/v1/accounts/acme").status == 404


def test_shards_are_kept_when_left_out_and_only_grow(team: Api) -> None:
    assert put(team)[1]["pool_shards"] == 1
    assert put(team, pool_shards=8)[1]["pool_shards"] == 8
    assert put(team, name="Renamed")[1]["pool_shards"] == 8
    status, body = put(team, pool_shards=4)
    assert status == 409 and "only grows" in str(body), body
    assert team("GET", "/v1/accounts/acme").body["pool_shards"] == 8


def test_members_of_a_sharded_pool_are_refused_only_when_the_pool_is_full(team: Api) -> None:
    assert put(team, pool_shards=4)[0] == 200
    member = {"plan_id": "plan_paygo", "custom_limits": {"tokens": {"quota": 1000}}, "account_id": "acme"}
    assert team("PUT", "/v1/users/m1/subscription", member).status == 200
    for _ in range(3):
        assert (
            team("POST", "/v1/events", {"user_id": "m1", "lines": [{"meter": "tokens", "amount": 100}]}).status == 201
        )
    refused = team("POST", "/v1/reservations", {"user_id": "m1", "lines": [{"meter": "tokens", "amount": 1}]})
    assert refused.status == 402, refused.body
    assert refused.body["error"]["details"]["account_id"] == "acme"
    usage = team("GET", "/v1/accounts/acme/usage").body
    assert [(c["quota"], c["used"], c["remaining"]) for c in usage["counters"]] == [(300, 300, 0)]
    assert team("POST", "/v1/verify", {}).body["ok"] is True


def test_what_a_shard_cannot_keep_exact_is_409_naming_why(team: Api) -> None:
    status, body = put(team, pool_shards=2, stripe_customer_id="cus_1")
    assert status == 409 and "Stripe customer" in str(body), body
    assert put(team, pool_shards=2)[0] == 200
    granted = team("POST", "/v1/accounts/acme/credits", {"meter": "tokens", "amount": 10})
    assert granted.status == 409 and "no credits" in str(granted.body), granted.body
