"""Model-based test: random sequences of every balance operation against the store and a tiny reference model,
checking the invariants after every step. Periods are anchored (a random anchor, moved by a rule) and tokens
roll unspent allowance over; the model finds period starts with the day-by-day reference of the period tests.
Commits, releases, draws and extensions run on either of two containers, so a reservation is often ended or
changed where it was never seen (ended from what its id says, or from the stored item when it moved).
Runs on moto in the default suite and longer on DynamoDB Local."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

from quotaflow.ledger.errors import (
    Conflict,
    InsufficientQuota,
    InvalidRequest,
    ReservationExpired,
    ReservationNotPending,
)
from quotaflow.ledger.plans import Limit, LimitOverride, Plan, Rollover
from quotaflow.ledger.runs import LIFETIME_MAX
from quotaflow.services import credits, metering, plans, runs
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import Tenant, lines
from tests.unit.test_periods import reference_bounds

ROLLOVER_MAX = 40
PLAN = Plan(
    plan_id="hybrid",
    name="Hybrid",
    limits={
        "tokens": Limit(
            label="Tokens",
            quota=100,
            period="month",
            enforcement="hard",
            rollover=Rollover(max=ROLLOVER_MAX, expires_after_periods=12),  # the model runs no grant sweeper
        ),
        "requests": Limit(label="Requests", quota=5, period="day", enforcement="soft"),
    },
)
HARD = {"tokens"}
KINDS = {"tokens": "month", "requests": "day"}
anchors = st.sampled_from(
    [
        datetime(2026, 1, 31, 9, 30, tzinfo=UTC),
        datetime(2026, 3, 30, 23, 0, tzinfo=UTC),
        datetime(2024, 2, 29, 4, 15, tzinfo=UTC),
        datetime(2026, 11, 27, 11, 0, tzinfo=UTC),
    ]
)
TABLE_NUMBERS = itertools.count()
TTL_SECONDS = 3600
meters = st.sampled_from(["tokens", "requests"])
containers = st.sampled_from(["here", "elsewhere"])
amounts = st.integers(min_value=0, max_value=60)


@dataclass
class ModelCounter:
    quota: int
    credits: int = 0
    used: int = 0
    reserved: int = 0

    @property
    def available(self) -> int:
        return self.quota + self.credits - self.used - self.reserved

    def roll(self, quota: int, rollover_max: int) -> ModelCounter:
        """A new period: allowance renewed, unspent credits and pending holds carried, unspent allowance rolled."""
        spent = min(self.credits, max(0, self.used - self.quota))
        rolled = min(rollover_max, max(0, self.quota - self.used))
        return ModelCounter(quota=quota, credits=self.credits - spent + rolled, reserved=self.reserved)


@dataclass
class ModelReservation:
    rid: str
    meter: str
    held: int  # what is left of the hold: creation plus increases, less draws
    created_at: datetime
    expires_at: datetime


def period_key(meter: str, now: datetime, anchor: datetime, since: datetime | None) -> datetime:
    start, _ = reference_bounds(KINDS[meter], anchor, now)
    return since if since is not None and start < since <= now else start


class Metering(RuleBasedStateMachine):
    store: Store  # set by the test that runs the machine
    reservations = Bundle("reservations")

    @initialize(anchor=anchors)
    def setup(self, anchor: datetime) -> None:
        self.clock = Clock(datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
        table = Store(self.store.client, f"model-{next(TABLE_NUMBERS)}")  # moto's queries scan the whole table
        table.create_table()
        self.table = table
        self.tenant = Tenant(table, self.clock)
        self.containers = {"here": self.tenant, "elsewhere": Tenant(table, self.clock)}  # separate caches
        plans.put_plan(self.tenant.scope, PLAN)
        self.anchor, self.since = anchor, None
        plans.put_subscription(self.tenant.scope, "u1", "hybrid", {}, None, period_anchor=anchor)
        self.quota = {"tokens": 100, "requests": 5}
        self.model = {meter: ModelCounter(quota) for meter, quota in self.quota.items()}
        self.periods = {meter: self.period(meter) for meter in self.model}
        metering.track(self.tenant.scope, "u1", lines(tokens=0), None, None)  # the first period opened, as turns do
        self.pending: dict[str, ModelReservation] = {}
        self.expired: set[str] = set()  # ended by expiry: commit and release say "expired", not "not pending"
        self.meter_of: dict[str, str] = {}  # every reservation's meter, ended or not

    def counter(self, meter: str) -> ModelCounter:
        return self.model[meter]

    def period(self, meter: str) -> datetime:
        return period_key(meter, self.clock.now, self.anchor, self.since)

    def turn_periods(self) -> None:
        """Roll every meter whose period changed. A rolled-over period is opened at once (a zero write): the
        store rolls over from the period just before the one it opens, so none is skipped unopened."""
        for meter in self.model:
            key = self.period(meter)
            if key != self.periods[meter]:
                rollover_max = ROLLOVER_MAX if meter == "tokens" else 0
                self.model[meter] = self.model[meter].roll(self.quota[meter], rollover_max)
                self.periods[meter] = key
                if rollover_max:
                    metering.track(self.tenant.scope, "u1", lines(**{meter: 0}), None, None)

    def fits(self, meter: str, amount: int) -> bool:
        return meter not in HARD or amount == 0 or self.counter(meter).available >= amount

    def fits_after_reclaim(self, meter: str, amount: int) -> bool:
        """A refused write first expires the user's overdue reservations (oldest first, a bounded number)."""
        if self.fits(meter, amount):
            return True
        overdue = sorted(
            (r for r in self.pending.values() if self.clock.now >= r.expires_at), key=lambda r: (r.expires_at, r.rid)
        )[: metering.RECLAIM_PER_WRITE_MAX]
        for reservation in overdue:
            self.counter(reservation.meter).reserved -= reservation.held
            del self.pending[reservation.rid]
            self.expired.add(reservation.rid)
        return self.fits(meter, amount)

    @rule(target=reservations, meter=meters, amount=amounts)
    def reserve(self, meter: str, amount: int) -> Any:
        fits = self.fits_after_reclaim(meter, amount)
        try:
            held = metering.reserve(self.tenant.scope, "u1", lines(**{meter: amount}), TTL_SECONDS, None)
        except InsufficientQuota:
            assert not fits
            return None
        assert fits
        self.counter(meter).reserved += amount
        self.meter_of[held.reservation_id] = meter
        self.pending[held.reservation_id] = ModelReservation(
            held.reservation_id, meter, amount, self.clock.now, self.clock.now + timedelta(seconds=TTL_SECONDS)
        )
        return held.reservation_id

    def _end(self, rid: str | None, action: str, actual: int, on: str) -> None:
        if rid is None:
            return
        reservation = self.pending.get(rid)
        scope = self.containers[on].scope
        try:
            if action == "commit":
                metering.commit(scope, rid, lines(**{reservation.meter: actual}) if reservation else [], None)
            else:
                metering.release_reservation(scope, rid, None)
        except ReservationNotPending:
            assert reservation is None and rid not in self.expired
            return
        except ReservationExpired:
            if reservation is None:
                assert rid in self.expired
                return
            assert self.clock.now >= reservation.expires_at
            self.counter(reservation.meter).reserved -= reservation.held
            del self.pending[rid]
            self.expired.add(rid)
            return
        assert reservation is not None and self.clock.now < reservation.expires_at
        counter = self.counter(reservation.meter)
        counter.reserved -= reservation.held
        counter.used += actual if action == "commit" else 0
        del self.pending[rid]

    @rule(rid=consumes(reservations), actual=amounts, on=containers)
    def commit(self, rid: str | None, actual: int, on: str) -> None:
        self._end(rid, "commit", actual, on)

    @rule(rid=consumes(reservations), on=containers)
    def release(self, rid: str | None, on: str) -> None:
        self._end(rid, "release", 0, on)

    @rule(rid=reservations, on=containers)
    def end_again(self, rid: str | None, on: str) -> None:
        self._end(rid, "release", 0, on)

    def _on_run(self, rid: str | None, write: Callable[[], object]) -> ModelReservation | None:
        """Do a run's write on `rid`; the model reservation when the write should have landed."""
        if rid is None:
            return None
        reservation = self.pending.get(rid)
        try:
            write()
        except ReservationNotPending:
            assert reservation is None and rid not in self.expired
            return None
        except ReservationExpired:
            if reservation is not None:
                assert self.clock.now >= reservation.expires_at
                self.counter(reservation.meter).reserved -= reservation.held
                del self.pending[rid]
                self.expired.add(rid)
            else:
                assert rid in self.expired
            return None
        assert reservation is not None and self.clock.now < reservation.expires_at
        return reservation

    @rule(rid=reservations, actual=amounts, on=containers)
    def draw(self, rid: str | None, actual: int, on: str) -> None:
        meter = self.meter_of.get(rid or "", "tokens")  # a draw on an ended reservation names its own meter
        scope = self.containers[on].scope
        reservation = self._on_run(rid, lambda: runs.draw(scope, rid, lines(**{meter: actual}), None))
        if reservation is not None:
            from_hold = min(actual, reservation.held)
            reservation.held -= from_hold
            self.counter(meter).reserved -= from_hold
            self.counter(meter).used += actual

    @rule(rid=reservations, more=amounts)
    def increase(self, rid: str | None, more: int) -> None:
        reservation = self.pending.get(rid) if rid else None
        if reservation is None or self.clock.now >= reservation.expires_at:
            self._on_run(rid, lambda: runs.increase(self.tenant.scope, rid, lines(tokens=more), None))
            return
        fits = self.fits_after_reclaim(reservation.meter, more)
        try:
            runs.increase(self.tenant.scope, rid, lines(**{reservation.meter: more}), None)
        except InsufficientQuota:
            assert not fits
            return
        assert fits
        reservation.held += more
        self.counter(reservation.meter).reserved += more

    @rule(rid=reservations, ttl_seconds=st.sampled_from([60, 3600, 86_400]), on=containers)
    def extend(self, rid: str | None, ttl_seconds: int, on: str) -> None:
        reservation = self.pending.get(rid) if rid else None
        deadline = self.clock.now + timedelta(seconds=ttl_seconds)
        too_late = reservation is not None and deadline > reservation.created_at + LIFETIME_MAX
        try:
            landed = self._on_run(rid, lambda: runs.extend(self.containers[on].scope, rid, ttl_seconds, None))
        except InvalidRequest:
            assert too_late
            return
        assert not (landed and too_late)
        if landed is not None:
            landed.expires_at = deadline

    @rule(meter=meters, amount=amounts)
    def track(self, meter: str, amount: int) -> None:
        fits = self.fits_after_reclaim(meter, amount)
        try:
            metering.track(self.tenant.scope, "u1", lines(**{meter: amount}), None, None)
        except InsufficientQuota:
            assert not fits
            return
        assert fits
        self.counter(meter).used += amount

    @rule(meter=meters, amount=amounts)
    def refund(self, meter: str, amount: int) -> None:
        try:
            metering.refund(self.tenant.scope, "u1", lines(**{meter: amount}), None, None)
        except Conflict:
            assert self.counter(meter).used < amount
            return
        self.counter(meter).used -= amount

    @rule(meter=meters, amount=amounts)
    def grant(self, meter: str, amount: int) -> None:
        credits.grant(self.tenant.scope, "u1", meter, amount, None, None)
        self.counter(meter).credits += amount

    @rule(quota=st.integers(min_value=0, max_value=200))
    def change_quota(self, quota: int) -> None:
        overrides = {"tokens": LimitOverride(quota=quota)}
        plans.put_subscription(self.tenant.scope, "u1", "hybrid", overrides, None, period_anchor=self.anchor)
        self.counter("tokens").quota += quota - self.quota["tokens"]
        self.quota["tokens"] = quota

    @rule(anchor=anchors)
    def move_anchor(self, anchor: datetime) -> None:
        """A new anchor cuts the running periods at this moment; the same anchor again changes nothing."""
        overrides = {"tokens": LimitOverride(quota=self.quota["tokens"])}
        plans.put_subscription(self.tenant.scope, "u1", "hybrid", overrides, None, period_anchor=anchor)
        if anchor != self.anchor:
            self.anchor, self.since = anchor, self.clock.now
        self.turn_periods()

    @rule(hours=st.sampled_from([1, 7, 30, 24 * 6]))
    def advance(self, hours: int) -> None:
        self.clock.advance(hours=hours)
        self.turn_periods()

    @rule()
    def expire_overdue(self) -> None:
        for rid, reservation in list(self.pending.items()):
            if self.clock.now >= reservation.expires_at:
                stored = metering.get_reservation(self.tenant.scope, rid)
                assert metering.expire(self.tenant.scope, stored) is True
                assert metering.expire(self.tenant.scope, stored) is False
                self.counter(reservation.meter).reserved -= reservation.held
                del self.pending[rid]
                self.expired.add(rid)

    def teardown(self) -> None:
        if hasattr(self, "table"):
            self.store.client.delete_table(TableName=self.table.table_name)

    @invariant()
    def balances_match_the_model_and_the_ledger(self) -> None:
        if not hasattr(self, "tenant"):
            return
        for meter, expected in self.model.items():
            got = self.tenant.counter("u1", meter)
            assert (got["quota"], got["credits"], got["used"], got["reserved"]) == (
                expected.quota,
                expected.credits,
                expected.used,
                expected.reserved,
            ), meter
            assert got["remaining"] == max(0, expected.available)
        self.tenant.assert_verified("u1")


def run_machine(store: Store, examples: int, steps: int) -> None:
    Metering.store = store
    runner = Metering.TestCase
    runner.settings = settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, suppress_health_check=list(HealthCheck)
    )
    runner().runTest()


@pytest.mark.unit
def test_model_on_moto(moto_store: Store) -> None:
    run_machine(moto_store, examples=15, steps=30)


@pytest.mark.integration
def test_model_on_dynamodb_local(ddb_store: Store) -> None:
    run_machine(ddb_store, examples=20, steps=30)
