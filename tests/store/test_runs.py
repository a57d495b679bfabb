"""Runs on the store, on moto and DynamoDB Local: draws, increases and extensions in every order with how a
reservation ends (commit, release, lazy expiry, sweeper, TTL reaper); call budgets; races on DynamoDB Local."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from quotaflow.ledger.errors import InsufficientQuota, ReservationExpired, ReservationNotPending
from quotaflow.services import expiry, metering, runs
from quotaflow.store import keys
from quotaflow.store.table import Store
from tests.conftest import Clock, dynamodb_calls
from tests.store.helpers import PAYGO, Tenant, lines


@pytest.fixture
def tenant(store: Store, clock: Clock) -> Tenant:
    tenant = Tenant(store, clock)
    tenant.subscribe("u1", PAYGO, tokens=100_000)
    return tenant


def balance(tenant: Tenant) -> tuple[int, int, int]:
    counter = tenant.counter("u1", "tokens")
    return counter["used"], counter["reserved"], counter["remaining"]


def test_draws_increase_and_commit_return_exactly_what_is_left(tenant: Tenant) -> None:
    held = metering.reserve(tenant.scope, "u1", lines(tokens=1000), 300, None)
    rid = held.reservation_id
    runs.draw(tenant.scope, rid, lines(tokens=400), None, {"step": "plan"})
    runs.increase(tenant.scope, rid, lines(tokens=500), None)
    runs.draw(tenant.scope, rid, lines(tokens=900), None, {"step": "act"})
    assert balance(tenant) == (1300, 200, 98_500)
    ended = metering.commit(tenant.scope, rid, lines(tokens=50), None)
    assert (ended.committed, ended.refunded) == (lines(tokens=50), lines(tokens=150))
    assert balance(tenant) == (1350, 0, 98_650)
    shown = metering.reservation_view(metering.get_reservation(tenant.scope, rid), tenant.scope)
    assert (shown.lines, shown.drawn, shown.held) == (lines(tokens=1500), lines(tokens=1300), [])
    tenant.assert_verified()


def test_another_container_sees_draws_made_elsewhere(tenant: Tenant, store: Store, clock: Clock) -> None:
    held = metering.reserve(tenant.scope, "u1", lines(tokens=1000), 300, None)
    elsewhere = Tenant(store, clock)
    runs.draw(elsewhere.scope, held.reservation_id, lines(tokens=600), None)
    # this container's cache still shows the whole hold: the commit lands on the drawn version, not the cached one
    ended = metering.commit(tenant.scope, held.reservation_id, lines(tokens=100), None)
    assert ended.refunded == lines(tokens=300)
    assert balance(tenant) == (700, 0, 99_300)
    tenant.assert_verified()


@pytest.mark.parametrize("layer", ["lazy", "sweeper", "reaper"])
def test_a_partly_drawn_hold_expires_with_what_is_left(tenant: Tenant, clock: Clock, layer: str) -> None:
    held = metering.reserve(tenant.scope, "u1", lines(tokens=1000), 60, None)
    runs.draw(tenant.scope, held.reservation_id, lines(tokens=700), None)
    clock.advance(seconds=61)
    if layer == "lazy":
        with pytest.raises(ReservationExpired):
            runs.draw(tenant.scope, held.reservation_id, lines(tokens=1), None)
    elif layer == "sweeper":
        assert expiry.sweep(tenant.store, clock(), tenant.cache).expired == 1
    else:
        old_image = tenant.store.get(keys.reservation("acme", held.reservation_id))
        assert old_image is not None
        tenant.store.delete(keys.reservation("acme", held.reservation_id))  # what DynamoDB TTL does
        outcome = expiry.reap(tenant.store, old_image, clock(), tenant.cache)
        assert outcome is not None and outcome.refunded
    assert balance(tenant) == (700, 0, 99_300)
    assert expiry.sweep(tenant.store, clock(), tenant.cache).expired == 0
    tenant.assert_verified()


def test_an_extended_hold_outlives_its_first_deadline_and_the_sweeper_finds_it_later(
    tenant: Tenant, clock: Clock
) -> None:
    held = metering.reserve(tenant.scope, "u1", lines(tokens=100), 60, None)
    clock.advance(seconds=30)
    runs.extend(tenant.scope, held.reservation_id, 600, None)
    clock.advance(seconds=60)
    assert expiry.sweep(tenant.store, clock(), tenant.cache).expired == 0
    runs.draw(tenant.scope, held.reservation_id, lines(tokens=10), None)
    clock.advance(seconds=600)
    assert expiry.sweep(tenant.store, clock(), tenant.cache).expired == 1
    assert balance(tenant) == (10, 0, 99_990)
    tenant.assert_verified()


def test_an_increase_that_does_not_fit_changes_nothing(tenant: Tenant) -> None:
    held = metering.reserve(tenant.scope, "u1", lines(tokens=99_000), 300, None)
    with pytest.raises(InsufficientQuota):
        runs.increase(tenant.scope, held.reservation_id, lines(tokens=1001), None)
    assert balance(tenant) == (0, 99_000, 1000)
    assert metering.get_reservation(tenant.scope, held.reservation_id).held == tuple(lines(tokens=99_000))


def test_steady_state_call_budget_of_a_run(tenant: Tenant) -> None:
    held = metering.reserve(tenant.scope, "u1", lines(tokens=1000), 300, None)
    runs.draw(tenant.scope, held.reservation_id, lines(tokens=1), None)  # warm
    calls = dynamodb_calls(tenant.store)
    runs.draw(tenant.scope, held.reservation_id, lines(tokens=100), None, {"step": "search"})
    assert calls == ["TransactWriteItems"], "draw"
    calls.clear()
    runs.increase(tenant.scope, held.reservation_id, lines(tokens=100), None)
    assert calls == ["TransactWriteItems"], "increase"
    calls.clear()
    runs.extend(tenant.scope, held.reservation_id, 600, None)
    assert calls == ["TransactWriteItems"], "extend"
    calls.clear()
    metering.commit(tenant.scope, held.reservation_id, [], None)
    assert calls == ["TransactWriteItems"], "commit after draws"


DRAWERS = 8


@pytest.mark.integration
def test_parallel_drawers_and_a_committer_add_up(ddb_store: Store, clock: Clock) -> None:
    """8 threads (each its own container) draw on one reservation while another commits it: every draw lands
    before the end or is refused as not pending, and the counter is exactly the sum of what landed. Draws on one
    reservation take its version in turn, so a loser waits about (writers x a transaction's latency); 8 writers
    stay inside the write loop's patience on a loaded DynamoDB Local, 20 did not always."""
    setup = Tenant(ddb_store, clock)
    setup.subscribe("u1", PAYGO, tokens=100_000)
    held = metering.reserve(setup.scope, "u1", lines(tokens=5000), 600, None)
    drawers = [Tenant(ddb_store, clock) for _ in range(DRAWERS)]
    landed: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def draw(index: int) -> None:
        for step in range(5):
            amount = 10 + index + step
            try:
                runs.draw(drawers[index].scope, held.reservation_id, lines(tokens=amount), None, {"step": str(step)})
            except ReservationNotPending:
                with lock:
                    refused.append(amount)
                return
            with lock:
                landed.append(amount)

    def commit() -> None:
        threading.Event().wait(0.1)
        metering.commit(Tenant(ddb_store, clock).scope, held.reservation_id, lines(tokens=7), None)

    with ThreadPoolExecutor(max_workers=DRAWERS + 1) as pool:
        futures = [pool.submit(draw, i) for i in range(DRAWERS)] + [pool.submit(commit)]
        for future in futures:
            future.result()
    used, reserved, _ = balance(setup)
    assert (used, reserved) == (sum(landed) + 7, 0)
    assert len(landed) + len(refused) >= DRAWERS and refused, "the commit ended the run while draws were still coming"
    steps = runs.steps(setup.scope, held.reservation_id, 100, None).steps
    assert sorted(s.lines[0].amount for s in steps) == sorted(landed)
    setup.assert_verified()


@pytest.mark.integration
def test_extend_racing_the_sweeper_has_one_winner(ddb_store: Store, clock: Clock) -> None:
    setup = Tenant(ddb_store, clock)
    setup.subscribe("u1", PAYGO, tokens=100_000)
    for _ in range(10):
        held = metering.reserve(setup.scope, "u1", lines(tokens=100), 60, None)
        runs.draw(setup.scope, held.reservation_id, lines(tokens=30), None)
        clock.advance(seconds=59)  # a second before the deadline for the heartbeat; a second past it for the sweeper
        sweeper_now = clock() + timedelta(seconds=2)

        def extend(reservation_id: str) -> str:
            try:
                runs.extend(Tenant(ddb_store, clock).scope, reservation_id, 600, None)
            except (ReservationExpired, ReservationNotPending):
                return "refused"
            return "extended"

        with ThreadPoolExecutor(max_workers=2) as pool:
            extension = pool.submit(extend, held.reservation_id)
            swept = pool.submit(expiry.sweep, ddb_store, sweeper_now, Tenant(ddb_store, clock).cache)
        outcome, expired = extension.result(), swept.result().expired
        assert (outcome, expired) in {("extended", 0), ("refused", 1)}
        reservation = metering.get_reservation(setup.scope, held.reservation_id)
        if outcome == "extended":
            assert reservation.status == "pending"
            metering.release_reservation(setup.scope, held.reservation_id, None)
        else:
            assert reservation.status == "expired"
        clock.advance(seconds=2)
    used, reserved, _ = balance(setup)
    assert (used, reserved) == (300, 0)
    setup.assert_verified()
