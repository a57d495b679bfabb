"""Reservation expiry: lazy reclaim, the sweeper and the TTL reaper, each alone and racing (moto and DynamoDB
Local); the holds come back exactly once whichever layer gets there first."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from quotaflow.ledger.errors import InsufficientQuota, ReservationExpired
from quotaflow.services import audit, credits, expiry, metering
from quotaflow.services.scope import Scope
from quotaflow.store import keys
from quotaflow.store.table import Store
from tests.conftest import Clock, dynamodb_calls
from tests.store.helpers import PAYGO, Tenant, lines


@pytest.fixture
def acme(store: Store, clock: Clock) -> Tenant:
    tenant = Tenant(store, clock)
    tenant.subscribe("u1", PAYGO, tokens=10_000)
    return tenant


def expire_entries(tenant: Tenant) -> int:
    return sum(e.kind == "expire" for e in audit.ledger(tenant.scope, "u1", 200, None).entries)


def test_a_refused_reserve_first_reclaims_overdue_holds(acme: Tenant, clock: Clock) -> None:
    metering.reserve(acme.scope, "u1", lines(tokens=6000), 60, None)
    metering.reserve(acme.scope, "u1", lines(tokens=4000), 3600, None)
    with pytest.raises(InsufficientQuota):
        metering.reserve(acme.scope, "u1", lines(tokens=5000), 60, None)
    clock.advance(seconds=61)
    metering.reserve(acme.scope, "u1", lines(tokens=5000), 60, None)  # the 6,000 overdue came back first
    assert acme.counter("u1", "tokens")["reserved"] == 9000
    assert expire_entries(acme) == 1
    acme.assert_verified()


def test_lazy_reclaim_is_bounded_and_a_reserve_that_still_does_not_fit_is_refused(acme: Tenant, clock: Clock) -> None:
    for _ in range(metering.RECLAIM_PER_WRITE_MAX + 2):
        metering.reserve(acme.scope, "u1", lines(tokens=100), 60, None)
    metering.reserve(acme.scope, "u1", lines(tokens=8800), 3600, None)
    clock.advance(seconds=61)
    with pytest.raises(InsufficientQuota):
        metering.track(acme.scope, "u1", lines(tokens=2000), None, None)  # 1,000 reclaimable at most inline
    assert expire_entries(acme) == metering.RECLAIM_PER_WRITE_MAX
    acme.assert_verified()


def test_the_sweeper_expires_what_is_overdue_and_only_that(acme: Tenant, clock: Clock) -> None:
    due = [metering.reserve(acme.scope, "u1", lines(tokens=10), ttl, None) for ttl in (30, 60, 90)]
    later = metering.reserve(acme.scope, "u1", lines(tokens=10), 3600, None)
    clock.advance(seconds=75)
    report = expiry.sweep(acme.store, clock(), acme.cache)
    assert (report.expired, report.already_ended, report.oldest_overdue_age_seconds, report.more) == (2, 0, 45, False)
    statuses = [metering.get_reservation(acme.scope, r.reservation_id).status for r in [*due, later]]
    assert statuses == ["expired", "expired", "pending", "pending"]
    assert expiry.sweep(acme.store, clock(), acme.cache).expired == 0, "a second run finds nothing"
    assert acme.counter("u1", "tokens")["reserved"] == 20
    acme.assert_verified()


def test_a_sweep_a_minute_after_the_last_reads_two_minutes_of_shards_and_moves_its_watermark(
    acme: Tenant, clock: Clock
) -> None:
    held = metering.reserve(acme.scope, "u1", lines(tokens=10), 30, None)
    expiry.sweep(acme.store, clock(), acme.cache)
    clock.advance(seconds=60)
    calls = dynamodb_calls(acme.store)
    assert expiry.sweep(acme.store, clock(), acme.cache).expired == 1
    grant_days = (credits.EXPIRY_LOOKBACK_DAYS + 1) * keys.GRANT_EXPIRY_SHARDS_READ
    assert Counter(calls) == {
        "GetItem": 1,  # the watermark
        "Query": grant_days + 2 * keys.EXPIRY_SHARDS_READ,  # the previous and the current minute, every shard
        "TransactWriteItems": 1,  # the one overdue reservation, refunded
        "PutItem": 1,  # the watermark moved on
    }
    assert metering.get_reservation(acme.scope, held.reservation_id).status == "expired"


def test_the_sweeper_never_touches_ended_reservations(acme: Tenant, clock: Clock) -> None:
    held = metering.reserve(acme.scope, "u1", lines(tokens=10), 30, None)
    metering.commit(acme.scope, held.reservation_id, lines(tokens=7), None)
    clock.advance(minutes=5)
    assert expiry.sweep(acme.store, clock(), acme.cache).expired == 0
    assert acme.counter("u1", "tokens")["used"] == 7
    acme.assert_verified()


def test_the_reaper_refunds_a_pending_reservation_that_ttl_deleted_once(acme: Tenant, clock: Clock) -> None:
    held = metering.reserve(acme.scope, "u1", lines(tokens=4000), 60, None)
    key = keys.reservation("acme", held.reservation_id)
    old_image = acme.store.get(key)
    assert old_image is not None
    acme.store.delete(key)  # what DynamoDB TTL does, an hour after expiry
    clock.advance(hours=1, minutes=2)
    outcome = expiry.reap(acme.store, old_image, clock(), acme.cache)
    assert outcome is not None and outcome.refunded
    again = expiry.reap(acme.store, old_image, clock(), acme.cache)  # the stream batch is retried
    assert again is not None and not again.refunded
    assert expiry.sweep(acme.store, clock(), acme.cache).expired == 0
    with pytest.raises(ReservationExpired):
        metering.commit(Tenant(acme.store, clock).scope, held.reservation_id, lines(tokens=1), None)
    assert acme.counter("u1", "tokens")["reserved"] == 0
    assert expire_entries(acme) == 1
    acme.assert_verified()


def test_the_reaper_ignores_what_was_already_ended(acme: Tenant, clock: Clock) -> None:
    held = metering.reserve(acme.scope, "u1", lines(tokens=4000), 60, None)
    clock.advance(seconds=61)
    expiry.sweep(acme.store, clock(), acme.cache)
    expired_image = acme.store.get(keys.reservation("acme", held.reservation_id))
    assert expired_image is not None and expired_image["status"] == "expired"
    assert expiry.reap(acme.store, expired_image, clock(), acme.cache) is None
    pending_image = {**expired_image, "status": "pending"}  # a stale image: the item still exists, expired
    outcome = expiry.reap(acme.store, pending_image, clock(), acme.cache)
    assert outcome is not None and not outcome.refunded
    assert expire_entries(acme) == 1
    acme.assert_verified()


def race_every_layer(store: Store, clock: Clock, tenant_id: str) -> Tenant:
    """One overdue reservation; the sweeper, a lazy reclaim, a late commit and a direct expiry all at once."""
    tenant = Tenant(store, clock, tenant_id=tenant_id)
    tenant.subscribe("u1", PAYGO, tokens=10_000)
    held = metering.reserve(tenant.scope, "u1", lines(tokens=4000), 60, None)
    clock.advance(seconds=60)
    reservation = metering.get_reservation(tenant.scope, held.reservation_id)

    def elsewhere() -> Scope:  # each contender is its own container
        return Tenant(store, clock, tenant_id).scope

    def late_commit() -> None:
        with pytest.raises(ReservationExpired):
            metering.commit(elsewhere(), held.reservation_id, lines(tokens=800), None)

    contenders = [
        lambda: expiry.sweep(store, clock(), tenant.cache),
        lambda: metering.reclaim_overdue(elsewhere(), "u1"),
        late_commit,
        lambda: metering.expire(elsewhere(), reservation),
    ]
    with ThreadPoolExecutor(max_workers=len(contenders)) as pool:
        for future in [pool.submit(contend) for contend in contenders]:
            future.result()
    return tenant


@pytest.mark.integration
def test_all_layers_and_a_commit_racing_on_one_reservation_refund_once(ddb_store: Store, clock: Clock) -> None:
    for round_number in range(12):
        tenant = race_every_layer(ddb_store, clock, f"race{round_number}")
        counter = tenant.counter("u1", "tokens")
        assert (counter["reserved"], counter["used"]) == (0, 0)
        assert expire_entries(tenant) == 1
        tenant.assert_verified()


def race_commit_with_expiry(store: Store, clock: Clock, tenant_id: str) -> tuple[Tenant, bool, bool]:
    """A commit just before the deadline against an expiry just after it: which one ends the reservation?"""
    tenant = Tenant(store, clock, tenant_id=tenant_id)
    tenant.subscribe("u1", PAYGO, tokens=10_000)
    held = metering.reserve(tenant.scope, "u1", lines(tokens=500), 60, None)
    reservation = metering.get_reservation(tenant.scope, held.reservation_id)
    after_deadline = Scope(store, tenant_id, clock.now + timedelta(seconds=60), Tenant(store, clock).cache)

    def commit() -> bool:
        try:
            metering.commit(Tenant(store, clock, tenant_id).scope, held.reservation_id, lines(tokens=100), None)
        except ReservationExpired:
            return False
        return True

    with ThreadPoolExecutor(max_workers=2) as pool:
        committing, expiring = pool.submit(commit), pool.submit(metering.expire, after_deadline, reservation)
        return tenant, committing.result(), expiring.result()


@pytest.mark.integration
def test_a_commit_racing_its_expiry_has_exactly_one_winner(ddb_store: Store, clock: Clock) -> None:
    for round_number in range(20):
        tenant, committed, expired = race_commit_with_expiry(ddb_store, clock, f"edge{round_number}")
        assert committed != expired, "exactly one of them ends the reservation"
        counter = tenant.counter("u1", "tokens")
        assert (counter["reserved"], counter["used"]) == (0, 100 if committed else 0)
        tenant.assert_verified()
