"""Anchored periods on moto and on DynamoDB Local: boundaries at the subscription's anchor, a hold that crosses
one, an anchor change that cuts the running period (the ledger and the closed counter show it), and plans that
anchor on the moment of subscribing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from quotaflow.ledger.plans import Plan
from quotaflow.services import audit, metering, plans
from quotaflow.store import keys
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import MONTHLY, Tenant, lines

ANCHOR = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)  # billing on the 31st: the last day of shorter months


@pytest.fixture
def acme(store: Store, clock: Clock) -> Tenant:
    clock.now = datetime(2027, 2, 27, 12, 0, tzinfo=UTC)
    tenant = Tenant(store, clock)
    plans.put_plan(tenant.scope, MONTHLY)
    plans.put_subscription(tenant.scope, "u1", MONTHLY.plan_id, {}, None, period_anchor=ANCHOR)
    return tenant


def bounds(tenant: Tenant) -> tuple[Any, Any]:
    counter = tenant.counter("u1", "tokens")
    return counter["period_start"], counter["period_end"]


def refs(tenant: Tenant) -> list[tuple[str, str, str | None]]:
    entries = audit.ledger(tenant.scope, "u1", 200, None).entries
    return [(e.kind, e.meter, e.ref) for e in reversed(entries) if e.meter == "tokens"]


def test_periods_start_at_the_anchor_and_clamp_to_short_months(acme: Tenant, clock: Clock) -> None:
    assert bounds(acme) == ("2027-01-31T09:30:00Z", "2027-02-28T09:30:00Z")
    metering.track(acme.scope, "u1", lines(tokens=600), None, None)
    clock.now = datetime(2027, 2, 28, 9, 29, 59, tzinfo=UTC)
    assert acme.counter("u1", "tokens")["used"] == 600, "still January's period"
    clock.now = datetime(2027, 2, 28, 9, 30, tzinfo=UTC)
    assert bounds(acme) == ("2027-02-28T09:30:00Z", "2027-03-31T09:30:00Z"), "back on the 31st after February"
    assert acme.counter("u1", "tokens")["used"] == 0
    metering.track(acme.scope, "u1", lines(tokens=5), None, None)
    closed = acme.store.get(keys.counter_closed("acme", "u1", "tokens", "2027-01-31T09:30:00Z"))
    assert closed is not None and (closed["used"], closed["period_end"]) == (600, "2027-02-28T09:30:00Z")
    acme.assert_verified("u1")


def test_a_hold_made_before_the_boundary_commits_into_the_next_period(acme: Tenant, clock: Clock) -> None:
    clock.now = datetime(2027, 2, 28, 9, 0, tzinfo=UTC)
    held = metering.reserve(acme.scope, "u1", lines(tokens=400), 3600, None)
    clock.now = datetime(2027, 2, 28, 9, 45, tzinfo=UTC)  # past the anchored boundary, before the hold expires
    result = metering.commit(acme.scope, held.reservation_id, lines(tokens=300), None)
    assert [(line.meter, line.amount) for line in result.refunded] == [("tokens", 100)]
    counter = acme.counter("u1", "tokens")
    assert (counter["period_start"], counter["used"], counter["reserved"]) == ("2027-02-28T09:30:00Z", 300, 0)
    closed = acme.store.get(keys.counter_closed("acme", "u1", "tokens", "2027-01-31T09:30:00Z"))
    assert closed is not None and (closed["used"], closed["reserved"]) == (0, 0), "the hold moved with the period"
    acme.assert_verified("u1")


def test_an_anchor_change_cuts_the_running_period_at_the_change(acme: Tenant, clock: Clock) -> None:
    metering.track(acme.scope, "u1", lines(tokens=250), None, None)
    held = metering.reserve(acme.scope, "u1", lines(tokens=100), 86_400, None)
    clock.now = datetime(2027, 2, 27, 18, 0, 0, tzinfo=UTC)
    moved = datetime(2027, 2, 15, tzinfo=UTC)
    plans.put_subscription(acme.scope, "u1", MONTHLY.plan_id, {}, None, period_anchor=moved)
    stored = acme.store.get(keys.counter_current("acme", "u1", "tokens"))
    assert stored is not None and stored["period_end"] == "2027-02-27T18:00:00Z", "the old period ends now"
    assert bounds(acme) == ("2027-02-27T18:00:00Z", "2027-03-15T00:00:00Z")
    clock.advance(minutes=5)
    metering.commit(acme.scope, held.reservation_id, lines(tokens=100), None)
    counter = acme.counter("u1", "tokens")
    assert (counter["used"], counter["quota"], counter["reserved"]) == (100, 1000, 0)
    closed = acme.store.get(keys.counter_closed("acme", "u1", "tokens", "2027-01-31T09:30:00Z"))
    assert closed is not None and (closed["used"], closed["period_end"]) == (250, "2027-02-27T18:00:00Z")
    assert ("quota_change", "tokens", "period_cut") in refs(acme), "the ledger shows the cut"
    clock.now = datetime(2027, 3, 15, tzinfo=UTC)
    assert bounds(acme) == ("2027-03-15T00:00:00Z", "2027-04-15T00:00:00Z"), "then whole periods of the new anchor"
    acme.assert_verified("u1")


def test_setting_the_same_anchor_again_cuts_nothing(acme: Tenant, clock: Clock) -> None:
    metering.track(acme.scope, "u1", lines(tokens=250), None, None)
    clock.advance(hours=1)
    plans.put_subscription(acme.scope, "u1", MONTHLY.plan_id, {}, None, period_anchor=ANCHOR)
    assert bounds(acme) == ("2027-01-31T09:30:00Z", "2027-02-28T09:30:00Z")
    assert acme.counter("u1", "tokens")["used"] == 250


def test_a_plan_may_anchor_periods_on_the_moment_of_subscribing(store: Store, clock: Clock) -> None:
    tenant = Tenant(store, clock)
    anchored = Plan.model_validate(
        {**MONTHLY.model_dump(), "plan_id": "plan_anchored", "period_anchoring": "subscription"}
    )
    plans.put_plan(tenant.scope, anchored)
    plans.put_subscription(tenant.scope, "u2", "plan_anchored", {}, None)  # at 2026-11-27T10:00:00Z
    metering.track(tenant.scope, "u2", lines(tokens=1), None, None)
    counter = tenant.counter("u2", "tokens")
    assert (counter["period_start"], counter["period_end"]) == ("2026-11-27T10:00:00Z", "2026-12-27T10:00:00Z")
    clock.advance(days=3)
    plans.put_subscription(tenant.scope, "u2", "plan_anchored", {}, None)  # a later change keeps the start
    assert tenant.counter("u2", "tokens")["period_start"] == "2026-11-27T10:00:00Z"
    tenant.assert_verified("u2")
