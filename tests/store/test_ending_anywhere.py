"""Ending a reservation on a container that never saw it, on moto and DynamoDB Local: one transaction built from
what the id says, conditioned on the stored item; a hold that changed elsewhere is rebuilt from the item the
refusal carries, and a forged or altered id is refused or rebuilt — never applied to a balance it does not hold."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from quotaflow.ledger import reservation_ids
from quotaflow.ledger.errors import NotFound, ReservationExpired, ReservationNotPending
from quotaflow.ledger.plans import Limit, Plan
from quotaflow.services import accounts, balances, metering, plans, runs
from quotaflow.services.idempotency import IdempotencyClaim, Replay
from quotaflow.store import items, keys, sizes
from quotaflow.store.table import Store
from tests.conftest import Clock, dynamodb_calls
from tests.store.helpers import PAYGO, Tenant, lines

TTL_SECONDS = 300


@pytest.fixture
def here(store: Store, clock: Clock) -> Tenant:
    """The container that makes the reservations."""
    tenant = Tenant(store, clock)
    for user in ("u1", "u2"):
        tenant.subscribe(user, PAYGO, tokens=100_000)
        metering.track(tenant.scope, user, lines(tokens=0, requests=0), None, None)  # periods opened
    return tenant


def elsewhere(tenant: Tenant) -> Tenant:
    """A warm container that knows the users' limits but never saw the reservation."""
    other = Tenant(tenant.store, tenant.clock)
    other.cache.limits = tenant.cache.limits
    return other


def balance(tenant: Tenant, user_id: str = "u1") -> tuple[int, int]:
    counter = tenant.counter(user_id, "tokens")
    return counter["used"], counter["reserved"]


def ledger_size(tenant: Tenant, user_id: str) -> int:
    return len(tenant.store.query(keys.user_partition(tenant.tenant_id, user_id), "L#", limit=1000).items)


def forged_id(user_id: str, held: int, created_at: datetime) -> str:
    rid = reservation_ids.with_hold("f" * 16, user_id, lines(tokens=held), created_at, TTL_SECONDS)
    assert rid is not None
    return rid


def test_commit_and_release_elsewhere_end_exactly_in_one_call_each(here: Tenant) -> None:
    committed = metering.reserve(here.scope, "u1", lines(tokens=100, requests=1), TTL_SECONDS, None)
    released = metering.reserve(here.scope, "u1", lines(tokens=40), TTL_SECONDS, None)
    calls = dynamodb_calls(here.store)
    ended = metering.commit(elsewhere(here).scope, committed.reservation_id, lines(tokens=130), None)
    assert (ended.committed, ended.refunded, ended.overage) == (
        lines(tokens=130, requests=0),
        lines(tokens=0, requests=1),
        lines(tokens=30),
    )
    back = metering.release_reservation(elsewhere(here).scope, released.reservation_id, None)
    assert back.refunded == lines(tokens=40)
    assert calls == ["TransactWriteItems", "TransactWriteItems"]
    assert balance(here) == (130, 0)
    assert here.counter("u1", "requests")["reserved"] == 0
    stored = metering.get_reservation(here.scope, committed.reservation_id)
    assert (stored.status, stored.held) == ("committed", ())
    here.assert_verified()


@pytest.mark.parametrize(("user_id_length", "carries"), [(62, True), (63, False), (100, False)])
def test_an_id_carries_the_hold_only_while_its_item_costs_no_more_write_units(
    here: Tenant, user_id_length: int, carries: bool
) -> None:
    """With two lines, a 63-character user id still fits in an id but would take the item past 1 KB."""
    user_id = "u" * user_id_length
    here.subscribe(user_id, PAYGO, tokens=100_000)
    held = metering.reserve(here.scope, user_id, lines(tokens=4000, requests=1), TTL_SECONDS, None)
    item = here.store.get(keys.reservation(here.tenant_id, held.reservation_id))
    assert item is not None and sizes.started_kilobytes(item) == 1
    assert (reservation_ids.as_created(held.reservation_id) is not None) is carries
    fits = reservation_ids.with_hold("0" * 16, user_id, lines(tokens=4000, requests=1), here.clock(), TTL_SECONDS)
    assert (fits is not None) is (user_id_length < 100)


def test_a_retried_commit_elsewhere_replays_the_first_answer(here: Tenant) -> None:
    held = metering.reserve(here.scope, "u1", lines(tokens=100), TTL_SECONDS, None)
    claim = IdempotencyClaim("commit-1", "fingerprint", 200)
    first = metering.commit(elsewhere(here).scope, held.reservation_id, lines(tokens=60), claim)
    with pytest.raises(Replay) as replay:
        metering.commit(elsewhere(here).scope, held.reservation_id, lines(tokens=60), claim)
    assert replay.value.body == first.model_dump(mode="json")
    assert balance(here) == (60, 0)
    here.assert_verified()


def test_a_hold_drawn_on_elsewhere_ends_with_exactly_what_is_left(here: Tenant) -> None:
    held = metering.reserve(here.scope, "u1", lines(tokens=100), TTL_SECONDS, None)
    runs.draw(elsewhere(here).scope, held.reservation_id, lines(tokens=30), None)
    calls = dynamodb_calls(here.store)
    ended = metering.commit(elsewhere(here).scope, held.reservation_id, lines(tokens=20), None)
    assert calls == ["TransactWriteItems", "TransactWriteItems"]  # the id's hold refused, rebuilt from the item
    assert (ended.committed, ended.refunded) == (lines(tokens=20), lines(tokens=50))
    assert balance(here) == (50, 0)
    here.assert_verified()


def test_a_hold_increased_elsewhere_is_released_whole(here: Tenant) -> None:
    held = metering.reserve(here.scope, "u1", lines(tokens=10), TTL_SECONDS, None)
    runs.increase(elsewhere(here).scope, held.reservation_id, lines(tokens=15, requests=2), None)
    back = metering.release_reservation(elsewhere(here).scope, held.reservation_id, None)
    assert back.refunded == lines(tokens=25, requests=2)
    assert balance(here) == (0, 0)
    assert here.counter("u1", "requests")["reserved"] == 0
    here.assert_verified()


def test_a_commit_naming_a_meter_added_elsewhere_reads_the_hold(here: Tenant) -> None:
    held = metering.reserve(here.scope, "u1", lines(tokens=10), TTL_SECONDS, None)
    runs.increase(elsewhere(here).scope, held.reservation_id, lines(requests=2), None)
    ended = metering.commit(elsewhere(here).scope, held.reservation_id, lines(requests=1), None)
    assert ended.committed == lines(tokens=0, requests=1)
    assert (balance(here), here.counter("u1", "requests")["used"]) == ((0, 0), 1)


def test_a_hold_ended_elsewhere_is_not_ended_again(here: Tenant) -> None:
    held = metering.reserve(here.scope, "u1", lines(tokens=100), TTL_SECONDS, None)
    metering.commit(elsewhere(here).scope, held.reservation_id, lines(tokens=70), None)
    with pytest.raises(ReservationNotPending):
        metering.release_reservation(elsewhere(here).scope, held.reservation_id, None)
    with pytest.raises(ReservationNotPending):
        metering.commit(here.scope, held.reservation_id, lines(tokens=1), None)
    assert balance(here) == (70, 0)
    here.assert_verified()


def test_a_hold_extended_elsewhere_outlives_the_deadline_its_id_shows(here: Tenant, clock: Clock) -> None:
    held = metering.reserve(here.scope, "u1", lines(tokens=100), 60, None)
    runs.extend(elsewhere(here).scope, held.reservation_id, 600, None)
    clock.advance(seconds=120)
    ended = metering.commit(elsewhere(here).scope, held.reservation_id, lines(tokens=5), None)
    assert ended.refunded == lines(tokens=95)
    assert balance(here) == (5, 0)


def test_a_hold_shortened_elsewhere_is_expired_on_the_spot(here: Tenant, clock: Clock) -> None:
    held = metering.reserve(here.scope, "u1", lines(tokens=100), 600, None)
    runs.extend(elsewhere(here).scope, held.reservation_id, 60, None)
    clock.advance(seconds=120)
    with pytest.raises(ReservationExpired):
        metering.commit(elsewhere(here).scope, held.reservation_id, lines(tokens=5), None)
    assert balance(here) == (0, 0)  # refunded now, not by the next sweep
    assert metering.get_reservation(here.scope, held.reservation_id).status == "expired"
    here.assert_verified()


def test_a_hold_ends_on_the_levels_it_was_made_on_after_its_user_moved(here: Tenant) -> None:
    team = Plan(plan_id="team", name="Team", limits={"tokens": Limit(label="Tokens", quota=800, period="month")})
    plans.put_plan(here.scope, team)
    accounts.put_account(here.scope, "research", "Research", "team", {}, None, None)
    held = metering.reserve(here.scope, "u1", lines(tokens=100), TTL_SECONDS, None)
    plans.put_subscription(here.scope, "u1", PAYGO.plan_id, {}, None, "research")  # a reserve would now hold there
    moved = elsewhere(here)
    moved.cache.limits.forget((here.tenant_id, "u1"))
    ended = metering.commit(moved.scope, held.reservation_id, lines(tokens=30), None)
    assert ended.refunded == lines(tokens=70)
    assert balance(here) == (30, 0)
    pool = next(c for c in balances.account_usage(here.scope, "research").counters if c.meter == "tokens")
    assert (pool.used, pool.reserved) == (0, 0)
    here.assert_verified()


def test_an_altered_id_names_no_reservation_and_changes_nothing(here: Tenant) -> None:
    held = metering.reserve(here.scope, "u1", lines(tokens=10), TTL_SECONDS, None)
    metering.reserve(here.scope, "u2", lines(tokens=500), TTL_SECONDS, None)
    made = reservation_ids.as_created(held.reservation_id)
    assert made is not None
    nonce = held.reservation_id[len(reservation_ids.PREFIX) :].split(".")[0]
    altered = [
        reservation_ids.with_hold(nonce, "u1", lines(tokens=500), made.created_at, TTL_SECONDS),  # more
        reservation_ids.with_hold(nonce, "u2", lines(tokens=10), made.created_at, TTL_SECONDS),  # another user
    ]
    before = (balance(here), balance(here, "u2"), ledger_size(here, "u1"), ledger_size(here, "u2"))
    for rid in altered:
        assert rid is not None
        with pytest.raises(NotFound):
            metering.commit(elsewhere(here).scope, rid, lines(tokens=1), None)
        with pytest.raises(NotFound):
            metering.release_reservation(elsewhere(here).scope, rid, None)
    assert (balance(here), balance(here, "u2"), ledger_size(here, "u1"), ledger_size(here, "u2")) == before
    assert before[:2] == ((0, 10), (0, 500))
    here.assert_verified()


def move_under(tenant: Tenant, reservation_id: str, lying_id: str) -> None:
    """Store a reservation under an id that lies about it (what a forged item would look like)."""
    item = tenant.store.get(keys.reservation(tenant.tenant_id, reservation_id))
    assert item is not None
    renamed = replace(items.reservation_from(item), reservation_id=lying_id)
    tenant.store.put(items.reservation_item(tenant.tenant_id, renamed, int(item["ttl"])))
    tenant.store.delete(keys.reservation(tenant.tenant_id, reservation_id))


def test_an_id_that_lies_about_the_amount_ends_what_the_item_holds(here: Tenant, clock: Clock) -> None:
    small = metering.reserve(here.scope, "u1", lines(tokens=10), TTL_SECONDS, None)
    metering.reserve(here.scope, "u1", lines(tokens=500), TTL_SECONDS, None)  # enough reserved to cover the lie
    lying = forged_id("u1", 300, clock())
    move_under(here, small.reservation_id, lying)
    back = metering.release_reservation(elsewhere(here).scope, lying, None)
    assert back.refunded == lines(tokens=10)
    assert balance(here) == (0, 500)
    here.assert_verified()


def test_an_id_that_lies_about_the_user_ends_on_the_user_the_item_holds_for(here: Tenant, clock: Clock) -> None:
    small = metering.reserve(here.scope, "u1", lines(tokens=10), TTL_SECONDS, None)
    metering.reserve(here.scope, "u2", lines(tokens=500), TTL_SECONDS, None)
    lying = forged_id("u2", 10, clock())  # u2's counter could take the claimed change: only the item refuses it
    move_under(here, small.reservation_id, lying)
    u2_entries = ledger_size(here, "u2")
    ended = metering.commit(elsewhere(here).scope, lying, lines(tokens=4), None)
    assert ended.refunded == lines(tokens=6)
    assert balance(here) == (4, 0)
    assert (balance(here, "u2"), ledger_size(here, "u2")) == ((0, 500), u2_entries)
    here.assert_verified()


def test_an_id_for_a_user_that_does_not_exist_is_not_found(here: Tenant, clock: Clock) -> None:
    with pytest.raises(NotFound):
        metering.commit(elsewhere(here).scope, forged_id("nobody", 10, clock()), lines(tokens=1), None)
    with pytest.raises(NotFound):
        metering.release_reservation(elsewhere(here).scope, forged_id("u1", 10, clock()), None)
    assert balance(here) == (0, 0)
