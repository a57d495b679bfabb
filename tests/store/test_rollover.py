"""Rollover on moto and on DynamoDB Local: unspent allowance becomes a capped, expiring grant of the next
period, exactly once per (holder, meter, period) even when the first writes of the new period race, and it is
spent in burn order like any other grant."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from quotaflow.ledger.plans import Limit, Plan, Rollover
from quotaflow.services import audit, credits, metering, plans
from quotaflow.store import keys
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import Tenant, lines

ANCHOR = datetime(2026, 1, 15, tzinfo=UTC)
ROLLING = Plan(
    plan_id="plan_rolling",
    name="Rolling",
    limits={"tokens": Limit(quota=1000, period="month", rollover=Rollover(max=300, expires_after_periods=2))},
)


def subscribe(tenant: Tenant, user_id: str = "u1") -> None:
    plans.put_plan(tenant.scope, ROLLING)
    plans.put_subscription(tenant.scope, user_id, ROLLING.plan_id, {}, None, period_anchor=ANCHOR)


@pytest.fixture
def acme(store: Store, clock: Clock) -> Tenant:
    clock.now = datetime(2026, 11, 20, tzinfo=UTC)  # in [11-15, 12-15)
    tenant = Tenant(store, clock)
    subscribe(tenant)
    return tenant


def rollovers(tenant: Tenant, user_id: str = "u1") -> list[tuple[str | None, int]]:
    entries = audit.ledger(tenant.scope, user_id, 200, None).entries
    return [(e.period_start, e.delta_credits) for e in reversed(entries) if e.kind == "rollover"]


def grants(tenant: Tenant) -> dict[str, tuple[int, str | None]]:
    return {g.grant_id: (g.remaining, g.expires_at) for g in credits.list_grants(tenant.scope, "u1")}


def test_unspent_allowance_rolls_into_the_next_period_capped(acme: Tenant, clock: Clock) -> None:
    metering.track(acme.scope, "u1", lines(tokens=850), None, None)  # 150 left: under the cap
    clock.now = datetime(2026, 12, 15, 0, 0, 1, tzinfo=UTC)
    metering.track(acme.scope, "u1", lines(tokens=10), None, None)
    counter = acme.counter("u1", "tokens")
    assert (counter["period_start"], counter["quota"], counter["credits"], counter["used"]) == (
        "2026-12-15T00:00:00Z",
        1000,
        150,
        10,
    )
    assert rollovers(acme) == [("2026-12-15T00:00:00Z", 150)]
    assert list(grants(acme).values()) == [(150, "2027-02-15T00:00:00Z")], "expires after 2 periods"
    acme.assert_verified("u1")


def test_the_cap_holds_and_credits_are_not_allowance(acme: Tenant, clock: Clock) -> None:
    credits.grant(acme.scope, "u1", "tokens", 500, None, None)  # bought credits carry over; they never roll over
    metering.track(acme.scope, "u1", lines(tokens=100), None, None)
    clock.now = datetime(2026, 12, 16, tzinfo=UTC)
    counter = acme.counter("u1", "tokens")  # read before any write: shown as the opening will write it
    assert (counter["credits"], counter["remaining"]) == (800, 1800), "500 carried + 300 rolled (capped from 900)"
    metering.track(acme.scope, "u1", lines(tokens=1), None, None)
    assert rollovers(acme) == [("2026-12-15T00:00:00Z", 300)]
    assert acme.counter("u1", "tokens")["credits"] == 800
    acme.assert_verified("u1")


def test_rollover_is_spent_before_credits_that_never_expire(acme: Tenant, clock: Clock) -> None:
    credits.grant(acme.scope, "u1", "tokens", 500, None, None)
    clock.now = datetime(2026, 12, 16, tzinfo=UTC)
    metering.track(acme.scope, "u1", lines(tokens=1100), None, None)  # allowance 1000, then 100 of credits
    left = {remaining for remaining, _ in grants(acme).values()}
    assert left == {200, 500}, "the expiring rollover (300) paid the 100, the pack is whole"
    acme.assert_verified("u1")


def test_what_is_left_of_a_rollover_expires_after_its_periods(acme: Tenant, clock: Clock) -> None:
    metering.track(acme.scope, "u1", lines(tokens=100), None, None)
    clock.now = datetime(2026, 12, 16, tzinfo=UTC)
    metering.track(acme.scope, "u1", lines(tokens=1000), None, None)  # rolled 300 in; nothing left this period
    clock.now = datetime(2027, 1, 16, tzinfo=UTC)
    metering.track(acme.scope, "u1", lines(tokens=1), None, None)  # nothing rolls from December
    assert acme.counter("u1", "tokens")["credits"] == 300
    clock.now = datetime(2027, 2, 15, 0, 1, tzinfo=UTC)
    expired, removed = credits.expire_due_grants(acme.store, clock(), acme.cache)
    assert (expired, removed) == (1, 300)
    counter = acme.counter("u1", "tokens")
    assert counter["credits"] == 300, "January's 999 unspent, capped at 300, rolled into February"
    assert rollovers(acme) == [("2026-12-15T00:00:00Z", 300), ("2027-02-15T00:00:00Z", 300)]
    acme.assert_verified("u1")


def test_only_a_period_that_was_opened_rolls_over_into_the_one_right_after(acme: Tenant, clock: Clock) -> None:
    metering.track(acme.scope, "u1", lines(tokens=100), None, None)
    clock.now = datetime(2027, 1, 20, tzinfo=UTC)  # December had no write at all: no counter, nothing to roll
    metering.track(acme.scope, "u1", lines(tokens=1), None, None)
    assert rollovers(acme) == []
    assert acme.counter("u1", "tokens")["credits"] == 0
    acme.assert_verified("u1")


@pytest.mark.integration
def test_racing_first_writes_of_a_period_roll_over_once(ddb_store: Store, clock: Clock) -> None:
    """On DynamoDB Local only: moto is not atomic under threads."""
    store = ddb_store
    clock.now = datetime(2026, 11, 20, tzinfo=UTC)
    setup = Tenant(store, clock)
    subscribe(setup)
    metering.track(setup.scope, "u1", lines(tokens=100), None, None)
    clock.now = datetime(2026, 12, 15, 0, 0, 0, tzinfo=UTC)  # the first instant of the next period
    writers = [Tenant(store, clock) for _ in range(8)]  # separate containers: nothing shared but the table
    for writer in writers:
        writer.counter("u1", "tokens")  # every container has read the old period: all of them will try to open

    def write(index: int) -> None:
        metering.track(writers[index].scope, "u1", lines(tokens=1), None, None)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(8)))
    assert rollovers(setup) == [("2026-12-15T00:00:00Z", 300)]
    counter = setup.counter("u1", "tokens")
    assert (counter["used"], counter["credits"]) == (8, 300)
    grant = store.get(keys.grant("acme", "u1", "tokens", next(iter(grants(setup)))))
    assert grant is not None and grant["amount"] == 300
    setup.assert_verified("u1")
