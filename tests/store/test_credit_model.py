"""Model-based test of credit attribution: random grants (expiring or not), spending, refunds, expiry and
period turns against a reference that burns grants in time order — at each use, the allowance first, then the
active grants in burn order (earliest expiry, then oldest); a refund undoes the newest credit spending first.
What each grant has left, and so what its expiry takes back, must match the reference after every step."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from quotaflow.ledger.errors import Conflict, InsufficientQuota
from quotaflow.ledger.periods import iso
from quotaflow.ledger.plans import Limit, Plan
from quotaflow.services import credits, expiry, metering, plans
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import Tenant, lines

QUOTA = 100
PLAN = Plan(plan_id="credits", name="Credits", limits={"tokens": Limit(label="Tokens", quota=QUOTA, period="month")})
TABLE_NUMBERS = itertools.count()
UNATTRIBUTED = "unattributed"


@dataclass
class ModelGrant:
    grant_id: str
    amount: int
    created_at: str
    expires_at: str | None
    left: int

    @property
    def burn_key(self) -> tuple[str, str, str]:
        return (self.expires_at or "9999", self.created_at, self.grant_id)  # the id breaks ties, as the store's


@dataclass
class Reference:
    """One meter's balance, each grant's remainder, and this period's credit spending, newest last."""

    used: int = 0
    credits: int = 0
    grants: dict[str, ModelGrant] = field(default_factory=dict)
    spending: list[tuple[str, int]] = field(default_factory=list)
    unattributed: int = 0  # refunded spending of grants that have ended since: no grant holds it, it never expires

    @property
    def spent(self) -> int:
        return min(self.credits, max(0, self.used - QUOTA))

    def change_used(self, delta: int) -> None:
        before = self.spent
        self.used += delta
        moved = self.spent - before
        if moved > 0:
            for grant in sorted(self.grants.values(), key=lambda g: g.burn_key):
                taken = min(grant.left, moved)
                grant.left -= taken
                moved -= taken
                if taken:
                    self.spending.append((grant.grant_id, taken))
            taken = min(self.unattributed, moved)
            self.unattributed -= taken
            moved -= taken
            if taken:
                self.spending.append((UNATTRIBUTED, taken))
            assert moved == 0, "spent credits the reference does not hold"
        while moved < 0 and self.spending:
            grant_id, amount = self.spending.pop()
            given = min(amount, -moved)
            if grant_id in self.grants:
                self.grants[grant_id].left += given
            else:
                self.unattributed += given
            if amount > given:
                self.spending.append((grant_id, amount - given))
            moved += given
        self.unattributed -= moved if moved < 0 else 0

    def turn_period(self) -> None:
        self.credits -= self.spent
        self.used = 0
        self.spending = []


class CreditAttribution(RuleBasedStateMachine):
    store: Store  # set by the test that runs the machine

    @initialize()
    def setup(self) -> None:
        self.clock = Clock(datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
        self.table = Store(self.store.client, f"credits-{next(TABLE_NUMBERS)}")
        self.table.create_table()
        self.tenant = Tenant(self.table, self.clock)
        plans.put_plan(self.tenant.scope, PLAN)
        plans.put_subscription(self.tenant.scope, "u1", PLAN.plan_id, {}, None)
        self.ref = Reference()
        self.month = self.clock.now.month

    @rule(amount=st.integers(1, 80), expires_in_hours=st.one_of(st.none(), st.integers(1, 120)))
    def grant(self, amount: int, expires_in_hours: int | None) -> None:
        expires_at = self.clock.now + timedelta(hours=expires_in_hours) if expires_in_hours else None
        view = credits.grant(self.tenant.scope, "u1", "tokens", amount, expires_at, None)
        created = iso(self.clock.now)
        self.ref.grants[view.grant_id] = ModelGrant(
            view.grant_id, amount, created, iso(expires_at) if expires_at else None, amount
        )
        self.ref.credits += amount
        self.ref.change_used(0)  # a grant settles overage first (none arises on a hard meter)

    @rule(amount=st.integers(0, 90))
    def spend(self, amount: int) -> None:
        fits = amount <= QUOTA + self.ref.credits - self.ref.used
        try:
            metering.track(self.tenant.scope, "u1", lines(tokens=amount), None, None)
        except InsufficientQuota:
            assert not fits
            return
        assert fits
        self.ref.change_used(amount)

    @rule(amount=st.integers(0, 90))
    def refund(self, amount: int) -> None:
        try:
            metering.refund(self.tenant.scope, "u1", lines(tokens=amount), None, None)
        except Conflict:
            assert self.ref.used < amount
            return
        self.ref.change_used(-amount)

    @rule(hours=st.sampled_from([1, 9, 30, 50]))
    def advance_and_sweep(self, hours: int) -> None:
        self.clock.advance(hours=hours)
        if self.clock.now.month != self.month:
            self.month = self.clock.now.month
            self.ref.turn_period()
        now = iso(self.clock.now)
        due = [g for g in self.ref.grants.values() if g.expires_at and g.expires_at <= now]
        report = expiry.sweep(self.table, self.clock(), self.tenant.cache)
        assert (report.grants_expired, report.credits_removed) == (len(due), sum(g.left for g in due))
        for grant in due:
            self.ref.credits -= grant.left
            del self.ref.grants[grant.grant_id]

    def teardown(self) -> None:
        if hasattr(self, "table"):
            self.store.client.delete_table(TableName=self.table.table_name)

    @invariant()
    def each_grant_holds_what_the_reference_says(self) -> None:
        if not hasattr(self, "tenant"):
            return
        got = {g.grant_id: g.remaining for g in credits.list_grants(self.tenant.scope, "u1") if g.status == "active"}
        assert got == {g.grant_id: g.left for g in self.ref.grants.values()}
        counter = self.tenant.counter("u1", "tokens")
        assert (counter["used"], counter["credits"]) == (self.ref.used, self.ref.credits)
        self.tenant.assert_verified("u1")


def run_machine(store: Store, examples: int, steps: int) -> None:
    CreditAttribution.store = store
    runner = CreditAttribution.TestCase
    runner.settings = settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, suppress_health_check=list(HealthCheck)
    )
    runner().runTest()


@pytest.mark.unit
def test_credit_attribution_on_moto(moto_store: Store) -> None:
    run_machine(moto_store, examples=10, steps=20)


@pytest.mark.integration
def test_credit_attribution_on_dynamodb_local(ddb_store: Store) -> None:
    run_machine(ddb_store, examples=6, steps=20)
