"""Credit grants: spent after the allowance, earliest expiry first; expiry takes back exactly what is left."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from quotaflow.ledger.errors import InsufficientQuota, InvalidRequest
from quotaflow.services import credits, expiry, metering
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import MONTHLY, Tenant, lines


@pytest.fixture
def hybrid(store: Store, clock: Clock) -> Tenant:
    """A monthly allowance of 1,000 tokens, plus two packs: 500 expiring in 3 days, 300 never expiring."""
    tenant = Tenant(store, clock)
    tenant.subscribe("u1", MONTHLY)
    credits.grant(tenant.scope, "u1", "tokens", 300, None, None)
    credits.grant(tenant.scope, "u1", "tokens", 500, clock() + timedelta(days=3), None)
    return tenant


def left(tenant: Tenant) -> dict[int, int]:
    """Remaining per grant, keyed by grant size."""
    return {g.amount: g.remaining for g in credits.list_grants(tenant.scope, "u1") if g.status == "active"}


def test_the_allowance_burns_first_then_the_earliest_expiring_pack(hybrid: Tenant) -> None:
    metering.track(hybrid.scope, "u1", lines(tokens=900), None, None)
    assert left(hybrid) == {500: 500, 300: 300}
    metering.track(hybrid.scope, "u1", lines(tokens=400), None, None)  # 100 allowance + 300 of the expiring pack
    assert left(hybrid) == {500: 200, 300: 300}
    assert hybrid.counter("u1", "tokens")["remaining"] == 500
    hybrid.assert_verified()


def test_expiry_takes_back_what_is_left_of_the_pack_once(hybrid: Tenant, clock: Clock) -> None:
    metering.track(hybrid.scope, "u1", lines(tokens=1300), None, None)
    clock.advance(days=3)
    report = expiry.sweep(hybrid.store, clock(), hybrid.cache)
    assert (report.grants_expired, report.credits_removed) == (1, 200)
    counter = hybrid.counter("u1", "tokens")
    assert (counter["credits"], counter["remaining"]) == (600, 300)  # 300 spent from the pack stay spent
    assert left(hybrid) == {300: 300}
    assert expiry.sweep(hybrid.store, clock(), hybrid.cache).grants_expired == 0
    hybrid.assert_verified()


def test_a_pack_expiring_next_month_carries_over_then_expires(hybrid: Tenant, clock: Clock) -> None:
    credits.grant(hybrid.scope, "u1", "tokens", 1000, clock() + timedelta(days=10), None)
    metering.track(hybrid.scope, "u1", lines(tokens=1100), None, None)  # 100 from the 3-day pack
    clock.advance(days=4)  # the 3-day pack expires (400 left), still November
    expiry.sweep(hybrid.store, clock(), hybrid.cache)
    clock.advance(days=6)  # December: the 1000-pack carried over, then expires whole
    report = expiry.sweep(hybrid.store, clock(), hybrid.cache)
    assert (report.grants_expired, report.credits_removed) == (1, 1000)
    december = hybrid.counter("u1", "tokens")
    assert (december["period_start"], december["credits"], december["remaining"]) == ("2026-12-01T00:00:00Z", 300, 1300)
    hybrid.assert_verified()


def test_a_grant_must_expire_in_the_future_and_on_a_plan_meter(hybrid: Tenant, clock: Clock) -> None:
    with pytest.raises(InvalidRequest) as refused:
        credits.grant(hybrid.scope, "u1", "tokens", 1, clock(), None)
    assert refused.value.details["field"] == "expires_at"
    with pytest.raises(InvalidRequest):
        credits.grant(hybrid.scope, "u1", "cents", 1, None, None)


@pytest.mark.integration
def test_burn_order_holds_under_concurrent_spending(ddb_store: Store, clock: Clock) -> None:
    tenant = Tenant(ddb_store, clock)
    tenant.subscribe("u1", MONTHLY)
    credits.grant(tenant.scope, "u1", "tokens", 300, None, None)
    credits.grant(tenant.scope, "u1", "tokens", 500, clock() + timedelta(days=3), None)
    containers = [Tenant(ddb_store, clock) for _ in range(8)]

    def spend(index: int) -> bool:
        try:
            metering.track(containers[index % 8].scope, "u1", lines(tokens=7), None, None)
        except InsufficientQuota:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        admitted = sum(pool.map(spend, range(300)))
    assert admitted == 1800 // 7  # 1,000 allowance + 800 credits, 7 at a time: 257 fit, 43 refused
    spent = admitted * 7
    assert left(tenant) == {500: 0, 300: 1800 - spent}  # the expiring pack went first
    clock.advance(days=3)
    assert expiry.sweep(ddb_store, clock(), tenant.cache).credits_removed == 0
    tenant.assert_verified()


def test_a_grant_pays_only_for_usage_after_it_was_granted(store: Store, clock: Clock) -> None:
    """Given 50 credits and 120 spent on a 100 allowance (20 from the 50), a 40-credit pack granted afterwards
    paid for nothing: when it expires, all 40 go."""
    tenant = Tenant(store, clock)
    tenant.subscribe("u1", MONTHLY, tokens=100)
    credits.grant(tenant.scope, "u1", "tokens", 50, None, None)
    metering.track(tenant.scope, "u1", lines(tokens=120), None, None)
    credits.grant(tenant.scope, "u1", "tokens", 40, clock() + timedelta(days=1), None)
    assert left(tenant) == {50: 30, 40: 40}
    clock.advance(days=1)
    report = expiry.sweep(tenant.store, clock(), tenant.cache)
    assert (report.grants_expired, report.credits_removed) == (1, 40)
    assert tenant.counter("u1", "tokens")["remaining"] == 30
    tenant.assert_verified()


def test_usage_after_a_grant_burns_it_first_when_it_expires_first(store: Store, clock: Clock) -> None:
    tenant = Tenant(store, clock)
    tenant.subscribe("u1", MONTHLY, tokens=100)
    credits.grant(tenant.scope, "u1", "tokens", 50, None, None)
    metering.track(tenant.scope, "u1", lines(tokens=120), None, None)  # 20 of the 50
    credits.grant(tenant.scope, "u1", "tokens", 40, clock() + timedelta(days=1), None)
    metering.track(tenant.scope, "u1", lines(tokens=10), None, None)  # from the 40: it expires first
    assert left(tenant) == {50: 30, 40: 30}


def test_a_refund_of_usage_before_a_grant_returns_to_the_grant_that_paid(store: Store, clock: Clock) -> None:
    """A refund gives credits back to spent grants, latest in burn order first, never above what each granted:
    the pack granted after the refunded usage stays as it was."""
    tenant = Tenant(store, clock)
    tenant.subscribe("u1", MONTHLY, tokens=100)
    credits.grant(tenant.scope, "u1", "tokens", 50, None, None)
    metering.track(tenant.scope, "u1", lines(tokens=120), None, None)
    credits.grant(tenant.scope, "u1", "tokens", 40, clock() + timedelta(days=1), None)
    metering.refund(tenant.scope, "u1", lines(tokens=20), None, None)
    assert left(tenant) == {50: 50, 40: 40}
    clock.advance(days=1)
    assert expiry.sweep(tenant.store, clock(), tenant.cache).credits_removed == 40
    tenant.assert_verified()
