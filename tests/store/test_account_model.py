"""Model-based test of accounts: random reserves, commits, releases, events, refunds and expiry by three members of
a two-team organization, against a reference that posts each change on every level at once. After every step each
level's counter matches the reference and the whole tenant verifies — with unsharded pools and with every pool in
4 shards (services/pools.py), where a refusal must still mean the whole pool lacked room."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

from quotaflow.ledger.errors import Conflict, InsufficientQuota, ReservationExpired
from quotaflow.ledger.plans import Limit, Plan
from quotaflow.services import accounts, audit, balances, expiry, metering, plans, pools
from quotaflow.services.users import current_limits
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import Tenant, lines

QUOTAS = {"seat": 60, "team": 100, "org": 150}
CHAINS = {"u1": ["u1", "A#red", "A#org"], "u2": ["u2", "A#red", "A#org"], "u3": ["u3", "A#blue", "A#org"]}
TTL_SECONDS = 600
TABLE_NUMBERS = itertools.count()
members = st.sampled_from(sorted(CHAINS))
amounts = st.integers(min_value=0, max_value=45)


@dataclass
class Level:
    quota: int
    used: int = 0
    reserved: int = 0

    @property
    def available(self) -> int:
        return self.quota - self.used - self.reserved


@dataclass
class Hold:
    member: str
    amount: int
    expires_at: datetime


class Pools(RuleBasedStateMachine):
    store: Store
    holds = Bundle("holds")
    pool_shards = 1  # every account's

    @initialize()
    def setup(self) -> None:
        self.clock = Clock(datetime(2026, 11, 3, 10, 0, tzinfo=UTC))
        self.table = Store(self.store.client, f"pools-{next(TABLE_NUMBERS)}")
        self.table.create_table()
        self.tenant = Tenant(self.table, self.clock)
        scope = self.tenant.scope
        for name, quota in QUOTAS.items():
            plans.put_plan(scope, Plan(plan_id=name, name=name, limits={"tokens": Limit(quota=quota, period="month")}))
        accounts.put_account(scope, "org", "Org", "org", {}, None, None, pool_shards=self.pool_shards)
        for team in ("red", "blue"):
            accounts.put_account(scope, team, team, "team", {}, "org", None, pool_shards=self.pool_shards)
        for member, chain in CHAINS.items():
            plans.put_subscription(scope, member, "seat", {}, None, chain[1].removeprefix("A#"))
        self.levels = {member: Level(QUOTAS["seat"]) for member in CHAINS}
        self.levels |= {"A#red": Level(QUOTAS["team"]), "A#blue": Level(QUOTAS["team"]), "A#org": Level(QUOTAS["org"])}
        self.pending: dict[str, Hold] = {}

    def fits(self, member: str, amount: int) -> bool:
        return all(self.levels[holder].available >= amount for holder in CHAINS[member]) or amount == 0

    def post(self, member: str, used: int = 0, reserved: int = 0) -> None:
        for holder in CHAINS[member]:
            self.levels[holder].used += used
            self.levels[holder].reserved += reserved

    def reclaim(self, member: str) -> None:
        """A refused write first expires the member's own overdue holds (not other members')."""
        for rid, hold in list(self.pending.items()):
            if hold.member == member and self.clock.now >= hold.expires_at:
                self.post(member, reserved=-hold.amount)
                del self.pending[rid]

    @rule(target=holds, member=members, amount=amounts)
    def reserve(self, member: str, amount: int) -> str | None:
        if not self.fits(member, amount):
            self.reclaim(member)
        fits = self.fits(member, amount)
        try:
            held = metering.reserve(self.tenant.scope, member, lines(tokens=amount), TTL_SECONDS, None)
        except InsufficientQuota:
            assert not fits
            return None
        assert fits
        self.post(member, reserved=amount)
        self.pending[held.reservation_id] = Hold(member, amount, self.clock.now + timedelta(seconds=TTL_SECONDS))
        return held.reservation_id

    @rule(rid=consumes(holds), actual=amounts)
    def commit(self, rid: str | None, actual: int) -> None:
        hold = self.pending.pop(rid, None) if rid else None
        if hold is None:
            return
        try:
            metering.commit(self.tenant.scope, rid or "", lines(tokens=actual), None)
        except ReservationExpired:
            assert self.clock.now >= hold.expires_at
            self.post(hold.member, reserved=-hold.amount)
            return
        self.post(hold.member, used=actual, reserved=-hold.amount)

    @rule(rid=consumes(holds))
    def release(self, rid: str | None) -> None:
        hold = self.pending.pop(rid, None) if rid else None
        if hold is None:
            return
        try:
            metering.release_reservation(self.tenant.scope, rid or "", None)
        except ReservationExpired:
            assert self.clock.now >= hold.expires_at
        self.post(hold.member, reserved=-hold.amount)

    @rule(member=members, amount=amounts)
    def track(self, member: str, amount: int) -> None:
        if not self.fits(member, amount):
            self.reclaim(member)
        fits = self.fits(member, amount)
        try:
            metering.track(self.tenant.scope, member, lines(tokens=amount), None, None)
        except InsufficientQuota:
            assert not fits
            return
        assert fits
        self.post(member, used=amount)

    @rule(member=members, amount=amounts)
    def refund(self, member: str, amount: int) -> None:
        covered = all(self.levels[holder].used >= amount for holder in CHAINS[member])
        try:
            metering.refund(self.tenant.scope, member, lines(tokens=amount), None, None)
        except Conflict:
            assert not covered or self.refund_on_one_shard_short(member, amount)
            return
        assert covered
        self.post(member, used=-amount)

    def refund_on_one_shard_short(self, member: str, amount: int) -> bool:
        """Whether some sharded pool of the member's used less than `amount` on each of its shards (a refund gives
        back on one shard)."""
        for holder in CHAINS[member][1:]:
            limits = current_limits(self.tenant.scope, holder)
            if limits.pool_shards == 1:
                continue
            found = pools.read_shards(self.tenant.scope, holder, {"tokens": limits.pool_shards}, start=0)["tokens"]
            if max((item["used"] for item in found if item is not None), default=0) < amount:
                return True
        return False

    @rule(minutes=st.sampled_from([3, 11]))
    def advance_and_sweep(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)
        expiry.sweep(self.table, self.clock(), self.tenant.cache)
        for rid, hold in list(self.pending.items()):
            if self.clock.now >= hold.expires_at:
                self.post(hold.member, reserved=-hold.amount)
                del self.pending[rid]

    def teardown(self) -> None:
        if hasattr(self, "table"):
            self.store.client.delete_table(TableName=self.table.table_name)

    @invariant()
    def every_level_matches_the_reference(self) -> None:
        if not hasattr(self, "tenant"):
            return
        for holder, expected in self.levels.items():
            counter = balances.current_counters(self.tenant.scope, holder).counters["tokens"]
            assert (counter.used, counter.reserved) == (expected.used, expected.reserved), holder
        verdict = audit.verify(self.tenant.scope, None)
        assert verdict.ok and verdict.checked == 6, verdict.problems


class ShardedPools(Pools):
    """The same organization with every pool in 4 shards: the same reference, exact to the unit."""

    pool_shards = 4


def run_machine(store: Store, examples: int, steps: int, machine: type[Pools] = Pools) -> None:
    machine.store = store
    runner = machine.TestCase
    runner.settings = settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, suppress_health_check=list(HealthCheck)
    )
    runner().runTest()


@pytest.mark.unit
def test_pools_on_moto(moto_store: Store) -> None:
    run_machine(moto_store, examples=5, steps=20)


@pytest.mark.integration
def test_pools_on_dynamodb_local(ddb_store: Store) -> None:
    run_machine(ddb_store, examples=10, steps=20)


@pytest.mark.unit
def test_sharded_pools_on_moto(moto_store: Store) -> None:
    run_machine(moto_store, examples=3, steps=20, machine=ShardedPools)


@pytest.mark.integration
def test_sharded_pools_on_dynamodb_local(ddb_store: Store) -> None:
    run_machine(ddb_store, examples=8, steps=20, machine=ShardedPools)
