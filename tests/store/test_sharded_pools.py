"""Sharded pool counters on moto and DynamoDB Local: an account's counter split into shard items that refuse only
when the whole pool lacks room, every hold ending on the shard it was made on, limits, periods and verify exact
over the sum, and what a shard cannot keep exact refused up front."""

from __future__ import annotations

from datetime import timedelta

import pytest

from quotaflow.ledger.errors import Conflict, InsufficientQuota
from quotaflow.ledger.plans import Limit, LimitOverride, Plan
from quotaflow.services import accounts, audit, balances, credits, expiry, metering, plans, pools, runs
from quotaflow.services.scope import UserLimits
from quotaflow.services.views import EntryView
from quotaflow.store import keys
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import RACING_CONTAINERS, SHARDS, TEAM, Tenant, lines, race_one_token_reserves, shard_items
from tests.store.helpers import sharded_team as team


def pool(tenant: Tenant) -> tuple[int, int, int, int]:
    """(quota, used, reserved, remaining) of the team's tokens pool, as its usage shows it."""
    counter = next(c for c in balances.account_usage(tenant.scope, "team").counters if c.meter == "tokens")
    return counter.quota, counter.used, counter.reserved, counter.remaining


def test_one_shard_is_the_unsharded_layout(store: Store, clock: Clock) -> None:
    tenant = team(store, clock, shards=1)
    metering.track(tenant.scope, "m0", lines(tokens=5), None, None)
    partition = keys.user_partition("acme", "A#team")
    assert list(store.query_all(partition, keys.POOL_SHARD_PREFIX, pages_max=1)) == []
    subscription = store.get(keys.subscription("acme", "A#team"))
    assert subscription is not None and "pool_shards" not in subscription["subscription"]
    assert accounts.get_account(tenant.scope, "team").pool_shards == 1


def test_a_sharded_pool_admits_exactly_its_quota_and_refuses_naming_the_pool(store: Store, clock: Clock) -> None:
    tenant = team(store, clock, quota=40)
    for index in range(40):
        metering.reserve(tenant.scope, f"m{index % 4}", lines(tokens=1), 600, None)
    assert pool(tenant) == (40, 0, 40, 0)
    with pytest.raises(InsufficientQuota) as refused:
        metering.reserve(tenant.scope, "m1", lines(tokens=1), 600, None)
    assert refused.value.details == {
        "meter": "tokens",
        "requested": 1,
        "available": 0,
        "scope": "account",
        "account_id": "team",
    }
    held = shard_items(tenant)
    assert all(item is not None for item in held), "every shard took holds"
    assert sum(item["quota"] for item in held if item) == 40  # the slices sum to the plan's quota
    entries = ledger_pages(tenant)
    assert any(entry.kind == "rebalance" for entry in entries)
    assert sum(entry.delta_reserved for entry in entries) == 40  # every shard partition's entries, once each
    tenant.assert_verified()


def ledger_pages(tenant: Tenant) -> list[EntryView]:
    """The pool's whole ledger through the API's pages (7 at a time: pages cut across shard partitions)."""
    shown: list[EntryView] = []
    cursor: str | None = None
    while True:
        page = audit.ledger(tenant.scope, "A#team", 7, cursor)
        shown.extend(page.entries)
        cursor = page.next_cursor
        if cursor is None:
            break
    ids = [entry.entry_id for entry in shown]
    assert ids == sorted(set(ids), reverse=True), "newest first, none twice"
    return shown


def test_holds_end_on_their_shard_wherever_they_end(store: Store, clock: Clock) -> None:
    tenant = team(store, clock)
    held = [metering.reserve(tenant.scope, "m0", lines(tokens=10), 60, None) for _ in range(8)]
    elsewhere = Tenant(store, clock)  # another container: knows the holds only from their ids
    metering.commit(elsewhere.scope, held[0].reservation_id, lines(tokens=4), None)
    metering.release_reservation(elsewhere.scope, held[1].reservation_id, None)
    runs.draw(tenant.scope, held[2].reservation_id, lines(tokens=3), None)
    runs.increase(tenant.scope, held[3].reservation_id, lines(tokens=5), None)
    assert pool(tenant) == (100, 7, 62, 31)  # 80 held - 10 committed - 10 released - 3 drawn + 5 more
    clock.advance(seconds=61)
    assert expiry.sweep(store, clock(), tenant.cache).expired == 6
    assert pool(tenant) == (100, 7, 0, 93)
    assert all(item is None or item["reserved"] == 0 for item in shard_items(tenant))
    tenant.assert_verified()


def test_events_and_refunds_on_a_sharded_pool(store: Store, clock: Clock) -> None:
    tenant = team(store, clock)
    for _ in range(20):
        metering.track(tenant.scope, "m1", lines(tokens=5), None, None)
    with pytest.raises(InsufficientQuota):
        metering.track(tenant.scope, "m1", lines(tokens=1), None, None)
    metering.refund(tenant.scope, "m1", lines(tokens=5), "bad answer", None)
    assert pool(tenant) == (100, 95, 0, 5)
    metering.track(tenant.scope, "m2", lines(tokens=5), None, None)
    assert pool(tenant) == (100, 100, 0, 0)
    tenant.assert_verified()


def test_a_limit_change_moves_the_whole_pools_allowance(store: Store, clock: Clock) -> None:
    tenant = team(store, clock, quota=40)
    for _ in range(10):
        metering.reserve(tenant.scope, "m0", lines(tokens=2), 600, None)  # slices moved off shard 0
    assert any(item and item["quota"] for item in shard_items(tenant)[1:])
    accounts.put_account(tenant.scope, "team", "Team", "team", {"tokens": LimitOverride(quota=60)}, None, None)
    assert pool(tenant) == (60, 0, 20, 40)
    for _ in range(20):
        metering.reserve(tenant.scope, "m1", lines(tokens=2), 600, None)
    with pytest.raises(InsufficientQuota):
        metering.reserve(tenant.scope, "m1", lines(tokens=1), 600, None)
    accounts.put_account(tenant.scope, "team", "Team", "team", {"tokens": LimitOverride(quota=10)}, None, None)
    assert pool(tenant)[:3] == (10, 0, 60)  # below what is held: nothing new fits until holds end
    tenant.assert_verified()


def test_a_new_period_opens_every_shard_with_holds_carried(store: Store, clock: Clock) -> None:
    clock.now = clock.now.replace(day=30, hour=23)
    tenant = team(store, clock)
    kept = [metering.reserve(tenant.scope, "m0", lines(tokens=5), 7200, None) for _ in range(4)]
    for _ in range(16):
        metering.track(tenant.scope, "m1", lines(tokens=5), None, None)
    assert pool(tenant) == (100, 80, 20, 0)
    clock.advance(hours=1, minutes=30)  # December
    assert pool(tenant) == (100, 0, 20, 80)  # the holds moved forward, the allowance is the plan's again
    for hold in kept:
        metering.commit(tenant.scope, hold.reservation_id, lines(tokens=5), None)
    for _ in range(16):
        metering.track(tenant.scope, "m1", lines(tokens=5), None, None)
    with pytest.raises(InsufficientQuota):
        metering.track(tenant.scope, "m1", lines(tokens=1), None, None)
    assert pool(tenant) == (100, 100, 0, 0)
    tenant.assert_verified()


def test_a_pool_grows_its_shards_and_never_shrinks(store: Store, clock: Clock) -> None:
    tenant = team(store, clock, shards=1)
    metering.track(tenant.scope, "m0", lines(tokens=30), None, None)
    accounts.put_account(tenant.scope, "team", "Team", "team", {}, None, None, pool_shards=SHARDS)
    for _ in range(70):
        metering.reserve(tenant.scope, "m1", lines(tokens=1), 600, None)
    with pytest.raises(InsufficientQuota):
        metering.reserve(tenant.scope, "m1", lines(tokens=1), 600, None)
    with pytest.raises(Conflict, match="only grows"):
        accounts.put_account(tenant.scope, "team", "Team", "team", {}, None, None, pool_shards=2)
    accounts.put_account(tenant.scope, "team", "Renamed", "team", {}, None, None)  # left out: kept
    assert accounts.get_account(tenant.scope, "team").pool_shards == SHARDS
    tenant.assert_verified()


def test_what_a_shard_cannot_keep_exact_is_refused(store: Store, clock: Clock) -> None:
    tenant = team(store, clock, shards=1)
    with pytest.raises(Conflict, match="Stripe customer"):
        accounts.put_account(tenant.scope, "team", "Team", "team", {}, None, "cus_1", pool_shards=2)
    credits.grant(tenant.scope, "A#team", "tokens", 10, None, None)
    with pytest.raises(Conflict, match="credit grants"):
        accounts.put_account(tenant.scope, "team", "Team", "team", {}, None, None, pool_shards=2)
    alerting = Plan(
        plan_id="alerting",
        name="Alerting",
        limits={"tokens": Limit(label="Tokens", quota=100, period="month", alerts=[80])},
    )
    plans.put_plan(tenant.scope, alerting)
    with pytest.raises(Conflict, match="alerts"):
        accounts.put_account(tenant.scope, "other", "Other", "alerting", {}, None, None, pool_shards=2)
    sharded = team(store, clock, tenant_id="beta")
    with pytest.raises(Conflict, match="takes no credits"):
        credits.grant(sharded.scope, "A#team", "tokens", 10, None, None)
    with pytest.raises(Conflict, match="alerts"):  # a plan change must not bring a sharded pool what it cannot keep
        plans.put_plan(sharded.scope, TEAM.model_copy(update={"limits": alerting.limits}))
    assert pool(sharded) == (100, 0, 0, 100)


@pytest.mark.unit
def test_shards_are_routed_by_the_reservation_id() -> None:
    route = pools.Route("rsv_x")
    limits = UserLimits("team", {}, 1, stored=True, pool_shards=SHARDS)
    assert route.shard("A#team", limits.pool_shards) == keys.shard_of("rsv_x", SHARDS)
    route.moves["A#team"] = 1
    assert route.shard("A#team", SHARDS) == (keys.shard_of("rsv_x", SHARDS) + 1) % SHARDS
    assert not route.at_seed
    assert pools.spread([100, 0, 0, 0], 1, 3) == [-75, 25, 25, 25]  # one rebalance spreads the pool evenly
    assert pools.spread([90, 0, 5, 5], 1, 3) == [-65, 25, 20, 20]
    assert pools.spread([2, 0, 2, 2], 1, 5) == [-2, 5, -2, -1]  # fragments: whatever it takes
    assert pools.spread([10, -4, 0, 2], 1, 1) == [-8, 6, 2, 0]  # a shard below zero (a quota cut) is filled too


@pytest.mark.integration
def test_members_racing_on_a_sharded_pool_get_exactly_the_pool(ddb_store: Store, clock: Clock) -> None:
    """8 containers race 1-token reserves of 20 members on a 4-shard, 300-token pool: exactly 300 are admitted;
    refusals while the pool still had room (in flight or not) are counted and bounded."""
    setup = team(ddb_store, clock, quota=300, members=20)
    race = race_one_token_reserves(ddb_store, clock, [f"m{index}" for index in range(20)], reserves=400)
    assert (race.admitted, race.refused) == (300, 100)
    assert pool(setup) == (300, 0, 300, 0)
    refused_with_room = [300 - admitted for admitted in race.admitted_at_each_refusal if admitted < 300]
    assert all(room <= RACING_CONTAINERS for room in refused_with_room), refused_with_room  # the last units in flight
    print(f"refusals while the pool had room: {len(refused_with_room)} of {race.refused}")
    assert sum(item["reserved"] for item in shard_items(setup) if item) == 300
    assert any(entry.kind == "rebalance" for entry in ledger_pages(setup)), "rebalancing was exercised"
    setup.assert_verified()


def test_a_pool_with_an_expired_credit_is_still_refused_shards(store: Store, clock: Clock) -> None:
    tenant = team(store, clock, shards=1)
    credits.grant(tenant.scope, "A#team", "tokens", 10, clock() + timedelta(hours=1), None)
    clock.advance(hours=2)
    with pytest.raises(Conflict, match="credit grants"):  # its book stays: what was granted is history
        accounts.put_account(tenant.scope, "team", "Team", "team", {}, None, None, pool_shards=2)


def test_a_refused_reserve_first_reclaims_the_members_overdue_holds(store: Store, clock: Clock) -> None:
    tenant = team(store, clock, quota=40)
    metering.reserve(tenant.scope, "m0", lines(tokens=40), 60, None)
    clock.advance(seconds=61)
    metering.reserve(tenant.scope, "m0", lines(tokens=40), 60, None)  # the pool lacks room until the hold expires
    assert pool(tenant) == (40, 0, 40, 0)
    tenant.assert_verified()
