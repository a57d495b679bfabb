"""Agent runs through the API function: draw, increase, extend, steps, and how they end."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.conftest import Clock

pytestmark = pytest.mark.unit


def tokens(amount: int) -> list[dict[str, object]]:
    return [{"meter": "tokens", "amount": amount}]


def hold(qf: Api, amount: int, ttl_seconds: int = 300) -> str:
    held = qf("POST", "/v1/reservations", {"user_id": "u1", "lines": tokens(amount), "ttl_seconds": ttl_seconds})
    assert held.status == 201, held.body
    return str(held.body["reservation_id"])


def tokens_counter(qf: Api) -> dict[str, int]:
    return next(c for c in qf("GET", "/v1/users/u1/usage").body["counters"] if c["meter"] == "tokens")


def test_a_run_draws_step_by_step_then_commits_the_rest_and_gets_back_what_is_left(qf: Api) -> None:
    rid = hold(qf, 10_000)
    first = qf("POST", f"/v1/reservations/{rid}/draw", {"lines": tokens(3000), "properties": {"step": "search"}})
    assert first.status == 200, first.body
    assert first.body == {
        "reservation_id": rid,
        "status": "pending",
        "drawn": tokens(3000),
        "held": tokens(7000),
        "overage": [],
    }
    second = qf("POST", f"/v1/reservations/{rid}/draw", {"lines": tokens(2000), "properties": {"step": "answer"}})
    assert (second.body["drawn"], second.body["held"]) == (tokens(5000), tokens(5000))
    counter = tokens_counter(qf)
    assert (counter["used"], counter["reserved"]) == (5000, 5000)  # live: the dashboard sees each step
    shown = qf("GET", f"/v1/reservations/{rid}").body
    assert (shown["lines"], shown["drawn"], shown["held"]) == (tokens(10_000), tokens(5000), tokens(5000))

    done = qf("POST", f"/v1/reservations/{rid}/commit", {"lines": tokens(1000)})
    assert done.status == 200
    assert (done.body["committed"], done.body["refunded"]) == (tokens(1000), tokens(4000))
    counter = tokens_counter(qf)
    assert (counter["used"], counter["reserved"], counter["remaining"]) == (6000, 0, 94_000)
    steps = qf("GET", f"/v1/reservations/{rid}/steps").body["steps"]
    assert [(s["properties"], s["lines"]) for s in steps] == [
        ({"step": "search"}, tokens(3000)),
        ({"step": "answer"}, tokens(2000)),
    ]
    kinds = [e["kind"] for e in qf("GET", "/v1/users/u1/ledger", query="limit=10").body["entries"]]
    assert kinds[:4] == ["commit", "draw", "draw", "reserve"]
    assert qf("POST", "/v1/verify", {"user_id": "u1"}).body["ok"]


def test_a_draw_beyond_the_hold_is_recorded_in_full_as_overage(qf: Api) -> None:
    rid = hold(qf, 1000)
    drawn = qf("POST", f"/v1/reservations/{rid}/draw", {"lines": tokens(1500)})
    assert (drawn.body["held"], drawn.body["overage"]) == (tokens(0), tokens(500))
    released = qf("POST", f"/v1/reservations/{rid}/release")
    assert released.body["refunded"] == tokens(0)
    assert tokens_counter(qf)["used"] == 1500


def test_an_increase_is_guarded_like_a_reserve(qf: Api) -> None:
    rid = hold(qf, 90_000)
    refused = qf("POST", f"/v1/reservations/{rid}/increase", {"lines": tokens(10_001)})
    assert refused.status == 402 and refused.body["error"]["details"]["meter"] == "tokens"
    assert tokens_counter(qf)["reserved"] == 90_000  # nothing changed
    grown = qf("POST", f"/v1/reservations/{rid}/increase", {"lines": tokens(10_000)})
    assert grown.status == 200 and (grown.body["lines"], grown.body["held"]) == (tokens(100_000), tokens(100_000))
    assert tokens_counter(qf)["remaining"] == 0


def test_extend_moves_the_deadline_within_the_lifetime(qf: Api, clock: Clock) -> None:
    rid = hold(qf, 100, ttl_seconds=60)
    clock.advance(seconds=50)
    extended = qf("POST", f"/v1/reservations/{rid}/extend", {"ttl_seconds": 600})
    assert extended.status == 200 and extended.body["expires_at"] == "2026-11-27T10:10:50Z"
    clock.advance(seconds=300)  # past the first deadline, inside the new one
    assert qf("POST", f"/v1/reservations/{rid}/draw", {"lines": tokens(10)}).status == 200
    heartbeats = []
    for _ in range(8):  # a day ahead every 23 hours: fine until a day ahead passes 7 days from creation
        heartbeats.append(qf("POST", f"/v1/reservations/{rid}/extend", {"ttl_seconds": 86_400}))
        clock.advance(hours=23)
    assert [reply.status for reply in heartbeats] == [200] * 7 + [400]
    assert heartbeats[-1].body["error"]["details"]["field"] == "ttl_seconds"


def test_ended_reservations_refuse_draws_increases_and_extensions(qf: Api, clock: Clock) -> None:
    committed = hold(qf, 100)
    qf("POST", f"/v1/reservations/{committed}/commit", {"lines": []})
    refused_writes = {"draw": {"lines": tokens(1)}, "increase": {"lines": tokens(1)}, "extend": {"ttl_seconds": 5}}
    for action, body in refused_writes.items():
        reply = qf("POST", f"/v1/reservations/{committed}/{action}", body)
        assert (reply.status, reply.body["error"]["code"]) == (409, "reservation_not_pending"), action
    overdue = hold(qf, 100, ttl_seconds=10)
    clock.advance(seconds=11)
    reply = qf("POST", f"/v1/reservations/{overdue}/draw", {"lines": tokens(1)})
    assert (reply.status, reply.body["error"]["code"]) == (409, "reservation_expired")
    assert tokens_counter(qf)["reserved"] == 0  # the overdue hold was expired on the spot


def test_a_retried_draw_with_the_same_key_is_applied_once(qf: Api) -> None:
    rid = hold(qf, 1000)
    key = {"Idempotency-Key": "step-7"}
    first = qf("POST", f"/v1/reservations/{rid}/draw", {"lines": tokens(300)}, headers=key)
    again = qf("POST", f"/v1/reservations/{rid}/draw", {"lines": tokens(300)}, headers=key)
    assert (again.status, again.body) == (first.status, first.body)
    assert tokens_counter(qf)["used"] == 300
    other = qf("POST", f"/v1/reservations/{rid}/draw", {"lines": tokens(301)}, headers=key)
    assert (other.status, other.body["error"]["code"]) == (409, "idempotency_key_reused")


def test_bad_draws_are_400_and_change_nothing(qf: Api) -> None:
    rid = hold(qf, 1000)
    for body in (
        {"lines": [{"meter": "images", "amount": 1}]},
        {"lines": tokens(-1)},
        {"lines": []},
        {"lines": tokens(1), "properties": {"bad key!": 1}},
        {"lines": tokens(1), "surprise": True},
    ):
        reply = qf("POST", f"/v1/reservations/{rid}/draw", body)
        assert reply.status == 400, (body, reply.body)
    assert qf("POST", f"/v1/reservations/{rid}/extend", {"ttl_seconds": 0}).status == 400
    assert qf("GET", f"/v1/reservations/{rid}").body["drawn"] == []
    assert qf("GET", "/v1/reservations/rsv_nope/steps").status == 404
