"""Accounts on the store, on moto and DynamoDB Local: pools above users, refused at the level that lacks room,
every level posted in one transaction, expiry returning to every level once, members moving, verify after each."""

from __future__ import annotations

from datetime import timedelta

import pytest

from quotaflow.ledger.errors import InsufficientQuota, InvalidRequest, NotFound
from quotaflow.ledger.plans import Limit, LimitOverride, Plan
from quotaflow.services import accounts, balances, credits, expiry, metering, plans, runs
from quotaflow.store.table import Store
from tests.conftest import Clock, dynamodb_calls
from tests.store.helpers import RACING_CONTAINERS, Tenant, lines, race_one_token_reserves

SEAT = Plan(plan_id="seat", name="Seat", limits={"tokens": Limit(label="Tokens", quota=500, period="month")})
TEAM = Plan(plan_id="team", name="Team", limits={"tokens": Limit(label="Tokens", quota=800, period="month")})
ORG = Plan(
    plan_id="org",
    name="Org",
    limits={
        "tokens": Limit(label="Tokens", quota=5000, period="month"),
        "images": Limit(label="Images", quota=10, period="month"),
    },
)


@pytest.fixture
def acme(store: Store, clock: Clock) -> Tenant:
    """Org `acme` (5,000 tokens, 10 images) > team `research` (800 tokens) > seats alice and bob (500 each)."""
    tenant = Tenant(store, clock)
    for plan in (SEAT, TEAM, ORG):
        plans.put_plan(tenant.scope, plan)
    accounts.put_account(tenant.scope, "acme", "Acme", "org", {}, None, None)
    accounts.put_account(tenant.scope, "research", "Research", "team", {}, "acme", None)
    for user in ("alice", "bob"):
        plans.put_subscription(tenant.scope, user, "seat", {}, None, "research")
    return tenant


def pool(tenant: Tenant, account_id: str, meter: str = "tokens") -> tuple[int, int, int]:
    counter = next(c for c in balances.account_usage(tenant.scope, account_id).counters if c.meter == meter)
    return counter.used, counter.reserved, counter.remaining


def test_a_write_posts_to_every_level_whose_plan_has_the_meter(acme: Tenant) -> None:
    metering.track(acme.scope, "alice", lines(tokens=300, images=2), None, None)
    assert pool(acme, "research") == (300, 0, 500)
    assert pool(acme, "acme") == (300, 0, 4700)
    assert pool(acme, "acme", "images") == (2, 0, 8)  # the team's plan has no images: only the org counts them
    usage = balances.usage(acme.scope, "alice")
    assert [a.account_id for a in usage.accounts] == ["research", "acme"]
    assert usage.effective["tokens"].model_dump() == {"remaining": 200, "limited_by": "user"}
    assert usage.effective["images"].model_dump() == {"remaining": 8, "limited_by": "account:acme"}
    acme.assert_verified()


def test_the_seat_refuses_and_nothing_changes_anywhere(acme: Tenant) -> None:
    with pytest.raises(InsufficientQuota) as refused:
        metering.reserve(acme.scope, "alice", lines(tokens=501), 60, None)
    assert refused.value.details["scope"] == "user"
    assert (pool(acme, "research"), pool(acme, "acme")) == ((0, 0, 800), (0, 0, 5000))


def test_the_pool_refuses_when_the_members_together_exhaust_it(acme: Tenant) -> None:
    metering.track(acme.scope, "alice", lines(tokens=500), None, None)
    metering.track(acme.scope, "bob", lines(tokens=200), None, None)
    with pytest.raises(InsufficientQuota) as refused:
        metering.reserve(acme.scope, "bob", lines(tokens=101), 60, None)  # bob's seat has 300 left, the team 100
    assert refused.value.details == {
        "meter": "tokens",
        "requested": 101,
        "available": 100,
        "scope": "account",
        "account_id": "research",
    }
    assert balances.can_use_one(acme.scope, "bob", lines(tokens=101)[0]).allowed is False
    assert balances.can_use_one(acme.scope, "bob", lines(tokens=100)[0]).allowed is True
    assert pool(acme, "acme") == (700, 0, 4300)
    acme.assert_verified()


def test_expiry_of_a_members_hold_returns_to_every_level_once(acme: Tenant, clock: Clock) -> None:
    held = metering.reserve(acme.scope, "alice", lines(tokens=400), 60, None)
    runs.draw(acme.scope, held.reservation_id, lines(tokens=150), None)
    assert pool(acme, "research") == (150, 250, 400)
    clock.advance(seconds=61)
    assert expiry.sweep(acme.store, clock(), acme.cache).expired == 1
    assert expiry.sweep(acme.store, clock(), acme.cache).expired == 0
    for account_id in ("research", "acme"):
        assert pool(acme, account_id)[:2] == (150, 0)
    acme.assert_verified()


def test_a_member_who_moves_ends_old_holds_where_they_were_made(acme: Tenant) -> None:
    accounts.put_account(acme.scope, "design", "Design", "team", {}, "acme", None)
    held = metering.reserve(acme.scope, "alice", lines(tokens=200), 60, None)
    plans.put_subscription(acme.scope, "alice", "seat", {}, None, "design")
    metering.commit(acme.scope, held.reservation_id, lines(tokens=50), None)
    metering.track(acme.scope, "alice", lines(tokens=10), None, None)
    assert pool(acme, "research")[:2] == (50, 0)  # the hold made in research ended there
    assert pool(acme, "design")[:2] == (10, 0)  # new writes go to the new team
    assert pool(acme, "acme")[:2] == (60, 0)
    acme.assert_verified()


def test_pool_credits_are_spent_after_the_pools_allowance(acme: Tenant, clock: Clock) -> None:
    credits.grant(acme.scope, "A#research", "tokens", 300, clock() + timedelta(days=2), None)
    plans.put_subscription(acme.scope, "alice", "seat", {"tokens": LimitOverride(quota=2000)}, None, "research")
    metering.track(acme.scope, "alice", lines(tokens=1100), None, None)
    assert pool(acme, "research") == (1100, 0, 0)
    clock.advance(days=2)
    assert expiry.sweep(acme.store, clock(), acme.cache).credits_removed == 0  # the pool spent all 300
    acme.assert_verified()


def test_the_tree_is_at_most_three_levels_and_has_no_cycles(acme: Tenant) -> None:
    accounts.put_account(acme.scope, "ml", "ML", "team", {}, "research", None)  # acme > research > ml
    with pytest.raises(InvalidRequest, match="3 levels"):
        accounts.put_account(acme.scope, "deep", "Deep", "team", {}, "ml", None)
    with pytest.raises(InvalidRequest, match="below itself"):
        accounts.put_account(acme.scope, "acme", "Acme", "org", {}, "ml", None)
    with pytest.raises(InvalidRequest, match="does not exist"):
        accounts.put_account(acme.scope, "x", "X", "team", {}, "nowhere", None)
    accounts.put_account(acme.scope, "solo", "Solo", "team", {}, None, None)
    accounts.put_account(acme.scope, "solo-kid", "Kid", "team", {}, "solo", None)
    with pytest.raises(InvalidRequest, match="3 levels"):  # solo has a child: below research that is 4 deep
        accounts.put_account(acme.scope, "solo", "Solo", "team", {}, "research", None)
    accounts.put_account(acme.scope, "solo", "Solo", "team", {}, "acme", None)  # 3 deep: fine
    with pytest.raises(NotFound):
        accounts.put_account(acme.scope, "y", "Y", "no_such_plan", {}, None, None)
    with pytest.raises(NotFound):
        plans.put_subscription(acme.scope, "carol", "seat", {}, None, "no_such_account")


def test_a_members_reserve_is_one_call_in_steady_state(acme: Tenant) -> None:
    metering.track(acme.scope, "alice", lines(tokens=1), None, None)  # warm: every level's limits cached
    calls = dynamodb_calls(acme.store)
    held = metering.reserve(acme.scope, "alice", lines(tokens=10), 60, None)
    assert calls == ["TransactWriteItems"], "reserve"
    calls.clear()
    metering.commit(acme.scope, held.reservation_id, lines(tokens=5), None)
    assert calls == ["TransactWriteItems"], "commit"


@pytest.mark.integration
def test_members_racing_on_one_pool_get_exactly_the_pool(ddb_store: Store, clock: Clock) -> None:
    """20 members on 8 containers race 1-token reserves on a 300-token team pool: exactly 300 are admitted, and
    no reserve is refused while the pool has room."""
    setup = Tenant(ddb_store, clock)
    for plan in (SEAT, TEAM):
        plans.put_plan(setup.scope, plan)
    accounts.put_account(setup.scope, "pool", "Pool", "team", {"tokens": LimitOverride(quota=300)}, None, None)
    members = [f"m{index}" for index in range(20)]
    for member in members:
        plans.put_subscription(setup.scope, member, "seat", {}, None, "pool")
    race = race_one_token_reserves(ddb_store, clock, members, reserves=400)
    assert (race.admitted, race.refused) == (300, 100)
    assert pool(setup, "pool") == (0, 300, 0)
    # a refusal only once the pool was (nearly) full: at most one reserve in flight per container
    assert min(race.admitted_at_each_refusal) >= 300 - RACING_CONTAINERS
    setup.assert_verified()
