"""The blocking client against a real `quotaflow serve`: every route, typed results, typed errors."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from quotaflow.local.server import LocalServer
from quotaflow.sdk import (
    Client,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    InsufficientQuota,
    InvalidRequest,
    NotFound,
    PageLimitReached,
    QuotaflowError,
    ReservationExpired,
    ReservationNotPending,
    TenantCreated,
    Unauthenticated,
)
from tests.sdk.support import FAST_RETRY

pytestmark = pytest.mark.unit


def tokens(qf: Client, user_id: str = "u1") -> tuple[int, int, int]:
    counter = qf.usage(user_id).counter("tokens")
    return counter.used, counter.reserved, counter.remaining


def test_the_seed_scenario_reads_as_typed_results(qf: Client) -> None:
    with qf.reserve("u1", {"tokens": 4000}, ttl_seconds=300) as held:
        assert held.info.status == "pending" and held.lines == {"tokens": 4000}
        assert isinstance(held.expires_at, datetime)
        result = held.commit({"tokens": 800})
    assert [(line.meter, line.amount) for line in result.refunded] == [("tokens", 3200)]
    usage = qf.usage("u1")
    counter = usage.counter("tokens")
    assert (usage.plan_id, counter.label, counter.quota, counter.used, counter.remaining) == (
        "plan_paygo",
        "Tokens",
        100_000,
        800,
        99_200,
    )
    refused = qf.can_use("u1", "tokens", 99_201)
    assert (refused.allowed, refused.remaining) == (False, 99_200)
    assert [entry.kind for entry in qf.ledger("u1").entries] == ["commit", "reserve", "quota_change"]
    assert qf.verify().ok and qf.verify("u1").checked == 1


def test_a_reserve_block_that_commits_keeps_only_the_committed_usage(qf: Client) -> None:
    with qf.reserve("u1", {"tokens": 4000}) as held:
        held.commit({"tokens": 800})
    assert qf.get_reservation(held.id).status == "committed"
    assert tokens(qf) == (800, 0, 99_200)


def failing_llm_call(qf: Client, held_ids: list[str]) -> None:
    with qf.reserve("u1", {"tokens": 4000}) as held:
        held_ids.append(held.id)
        assert tokens(qf) == (0, 4000, 96_000)
        raise RuntimeError("the LLM call failed")


def test_a_reserve_block_left_by_an_exception_releases_the_hold(qf: Client) -> None:
    held_ids: list[str] = []
    with pytest.raises(RuntimeError, match="the LLM call failed"):
        failing_llm_call(qf, held_ids)
    assert qf.get_reservation(held_ids[0]).status == "released"
    assert tokens(qf) == (0, 0, 100_000)
    assert qf.ledger("u1").entries[0].kind == "release"


def test_a_reserve_block_left_uncommitted_releases_the_hold(qf: Client) -> None:
    with qf.reserve("u1", {"tokens": 4000}) as held:
        pass
    assert held.outcome is not None and held.outcome.status == "released"
    assert tokens(qf) == (0, 0, 100_000)


def test_a_reserve_without_room_raises_insufficient_quota_and_holds_nothing(qf: Client) -> None:
    with pytest.raises(InsufficientQuota) as refused:
        qf.reserve("u1", {"tokens": 100_001})
    error = refused.value
    assert (error.meter, error.requested, error.available) == ("tokens", 100_001, 100_000)
    assert (error.code, error.status_code) == ("insufficient_quota", 402)
    assert isinstance(error, QuotaflowError)
    assert tokens(qf) == (0, 0, 100_000)


def test_reserving_again_under_the_same_key_returns_the_first_reservation(qf: Client) -> None:
    first = qf.reserve("u1", {"tokens": 4000}, idempotency_key="call-42")
    again = qf.reserve("u1", {"tokens": 4000}, idempotency_key="call-42")
    assert again.id == first.id
    assert tokens(qf) == (0, 4000, 96_000)


def test_rerunning_reserve_and_commit_under_one_key_charges_once(qf: Client) -> None:
    """Commit uses a key derived from the reservation's, so a replayed job replays its commit too."""
    for _ in range(2):
        with qf.reserve("u1", {"tokens": 4000}, idempotency_key="job-7") as held:
            held.commit({"tokens": 800})
    assert tokens(qf) == (800, 0, 99_200)


def test_track_refund_and_credits_move_the_balance(qf: Client) -> None:
    event = qf.track("u1", {"tokens": 1000}, properties={"model": "gpt-4o"})
    refund = qf.refund("u1", {"tokens": 400}, reason="generation failed")
    grant = qf.grant_credits("u1", "tokens", 5000)
    assert event.event_id.startswith("evt_") and refund.refund_id and grant.grant_id
    counter = qf.usage("u1").counter("tokens")
    assert (counter.used, counter.credits, counter.remaining) == (600, 5000, 104_400)
    assert qf.can_use_lines("u1", {"tokens": 104_400}).allowed


def test_plans_subscriptions_and_settings(qf: Client) -> None:
    plan = qf.get_plan("plan_paygo")
    assert (plan.name, plan.limits["tokens"].quota, plan.limits["tokens"].period) == ("Pay as you go", 0, "none")
    assert [p.plan_id for p in qf.list_plans()] == ["plan_paygo"]
    subscription = qf.get_subscription("u1")
    assert subscription.custom_limits == {"tokens": {"quota": 100_000}}
    with pytest.raises(NotFound):
        qf.get_subscription("nobody")
    qf.put_plan("plan_free", "Free", {"tokens": {"quota": 50, "period": "day"}})
    assert qf.put_settings(default_plan_id="plan_free").default_plan_id == "plan_free"
    assert qf.get_settings().default_plan_id == "plan_free"
    assert qf.usage("newcomer").counter("tokens").remaining == 50


def test_ledger_entries_walk_every_page(qf: Client) -> None:
    for amount in range(1, 6):
        qf.track("u1", {"tokens": amount})
    entries = list(qf.ledger_entries("u1", page_size=2))
    assert [e.kind for e in entries] == ["event"] * 5 + ["quota_change"]
    assert [e.delta_used for e in entries[:5]] == [5, 4, 3, 2, 1]
    with pytest.raises(PageLimitReached) as stopped:
        list(qf.ledger_entries("u1", page_size=2, pages_max=2))
    assert stopped.value.next_cursor
    rest = qf.ledger("u1", limit=200, cursor=stopped.value.next_cursor)
    assert [e.delta_used for e in rest.entries] == [1, 0]


def test_a_publishable_key_reads_usage_with_a_user_token(
    server: LocalServer, qf: Client, tenant: TenantCreated
) -> None:
    token = qf.user_token("u1", ttl_seconds=600)
    with Client(api_key=tenant.publishable_key, base_url=server.url) as browser:
        assert browser.usage("u1", user_token=token.token).counter("tokens").remaining == 100_000
        assert browser.can_use("u1", "tokens", 10, user_token=token.token).allowed
        with pytest.raises(Forbidden):
            browser.usage("u2", user_token=token.token)
        with pytest.raises(Unauthenticated):
            browser.usage("u1")
        with pytest.raises(Forbidden):
            browser.reserve("u1", {"tokens": 1})


def test_admin_creates_tenants_and_keys_and_revokes_them(server: LocalServer, tenant: TenantCreated) -> None:
    with Client(api_key=server.admin_key, base_url=server.url) as admin:
        with pytest.raises(Conflict):
            admin.create_tenant(tenant.tenant_id)
        created = admin.create_key(tenant.tenant_id, "secret")
        assert created.key.startswith("qf_sk_") and created.kind == "secret"
        with Client(api_key=created.key, base_url=server.url) as other:
            assert other.list_plans() == []
            admin.revoke_key(tenant.tenant_id, created.key_id)
            with pytest.raises(Unauthenticated):
                other.list_plans()
        with pytest.raises(Forbidden):
            admin.list_plans()
    with Client(api_key=tenant.secret_key, base_url=server.url) as qf, pytest.raises(Forbidden):
        qf.create_tenant("intruder")


def test_each_api_error_code_raises_its_own_class(qf: Client) -> None:
    with pytest.raises(InvalidRequest) as invalid:
        qf.reserve("u1", {"images": 1})
    assert invalid.value.field == "lines[0].meter"
    held = qf.reserve("u1", {"tokens": 10})
    held.commit({"tokens": 5})
    with pytest.raises(ReservationNotPending):
        qf.release(held.id)
    qf.track("u1", {"tokens": 1}, idempotency_key="evt-1")
    with pytest.raises(IdempotencyKeyReused) as reused:
        qf.track("u1", {"tokens": 2}, idempotency_key="evt-1")
    assert reused.value.code == "idempotency_key_reused" and reused.value.status_code == 409
    with pytest.raises(NotFound):
        qf.get_reservation("rsv_missing")
    with pytest.raises(Conflict):
        qf.refund("u1", {"tokens": 10_000})


def test_an_expired_reservation_refuses_commit_and_leaves_the_block_quietly(qf: Client) -> None:
    with qf.reserve("u1", {"tokens": 10}, ttl_seconds=1) as held:
        time.sleep(1.2)
        with pytest.raises(ReservationExpired):
            held.commit({"tokens": 10})
    assert qf.get_reservation(held.id).status == "expired"


def test_settings_come_from_the_environment(
    server: LocalServer, tenant: TenantCreated, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUOTAFLOW_URL", server.url + "/")
    monkeypatch.setenv("QUOTAFLOW_API_KEY", tenant.secret_key)
    with Client(retry=FAST_RETRY) as qf:
        assert qf.connection.base_url == server.url and qf.list_plans() == []
    assert tenant.secret_key not in repr(qf.connection) and tenant.secret_key not in repr(tenant)
    monkeypatch.delenv("QUOTAFLOW_API_KEY")
    with pytest.raises(ValueError, match="QUOTAFLOW_API_KEY"):
        Client()
