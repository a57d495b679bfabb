"""Reserve, commit, release, expire, events, refunds, credits and periods, on moto and on DynamoDB Local."""

from __future__ import annotations

import pytest

from quotaflow.ledger.errors import (
    Conflict,
    InsufficientQuota,
    InvalidRequest,
    NotFound,
    ReservationExpired,
    ReservationNotPending,
)
from quotaflow.ledger.plans import LimitOverride
from quotaflow.services import audit, balances, credits, metering, plans
from quotaflow.store import keys
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import MONTHLY, PAYGO, Tenant, lines


@pytest.fixture
def acme(store: Store, clock: Clock) -> Tenant:
    tenant = Tenant(store, clock)
    tenant.subscribe("u1", PAYGO, tokens=100_000)
    return tenant


def test_seed_scenario_reserve_commit_refunds_the_rest(acme: Tenant) -> None:
    held = metering.reserve(acme.scope, "u1", lines(tokens=4000), 300, None)
    assert acme.counter("u1", "tokens")["reserved"] == 4000
    result = metering.commit(acme.scope, held.reservation_id, lines(tokens=800), None)
    assert [(x.meter, x.amount) for x in result.refunded] == [("tokens", 3200)]
    counter = acme.counter("u1", "tokens")
    assert (counter["used"], counter["reserved"], counter["remaining"]) == (800, 0, 99_200)
    assert balances.can_use_one(acme.scope, "u1", lines(tokens=99_201)[0]).allowed is False
    assert balances.can_use_one(acme.scope, "u1", lines(tokens=99_200)[0]).allowed is True
    acme.assert_verified("u1")


def test_reserve_beyond_quota_holds_nothing_on_any_line(acme: Tenant) -> None:
    with pytest.raises(InsufficientQuota) as refused:
        metering.reserve(acme.scope, "u1", lines(requests=1, tokens=100_001), 300, None)
    assert refused.value.details == {"meter": "tokens", "requested": 100_001, "available": 100_000, "scope": "user"}
    assert acme.counter("u1", "tokens")["reserved"] == 0
    assert acme.counter("u1", "requests")["reserved"] == 0
    acme.assert_verified()


def test_soft_meter_admits_overage_and_reports_zero_remaining(acme: Tenant) -> None:
    metering.track(acme.scope, "u1", lines(requests=7), None, None)
    counter = acme.counter("u1", "requests")
    assert (counter["used"], counter["remaining"]) == (7, 0)
    assert balances.can_use_one(acme.scope, "u1", lines(requests=100)[0]).allowed is True
    acme.assert_verified()


def test_hard_event_without_room_records_nothing(acme: Tenant) -> None:
    with pytest.raises(InsufficientQuota):
        metering.track(acme.scope, "u1", lines(tokens=100_001, requests=1), None, None)
    assert acme.counter("u1", "requests")["used"] == 0
    assert audit.ledger(acme.scope, "u1", 50, None).entries[0].kind == "quota_change"


def test_commit_above_the_hold_records_all_usage_as_overage(acme: Tenant) -> None:
    held = metering.reserve(acme.scope, "u1", lines(tokens=100), 300, None)
    result = metering.commit(acme.scope, held.reservation_id, lines(tokens=150), None)
    assert [(x.meter, x.amount) for x in result.overage] == [("tokens", 50)]
    assert acme.counter("u1", "tokens")["used"] == 150
    acme.assert_verified()


def test_a_reservation_ends_exactly_once(acme: Tenant) -> None:
    held = metering.reserve(acme.scope, "u1", lines(tokens=10), 300, None)
    metering.release_reservation(acme.scope, held.reservation_id, None)
    with pytest.raises(ReservationNotPending):
        metering.commit(acme.scope, held.reservation_id, lines(tokens=1), None)
    fresh = Tenant(acme.store, acme.clock)  # another container: no cached reservation
    with pytest.raises(ReservationNotPending):
        metering.release_reservation(fresh.scope, held.reservation_id, None)
    assert acme.counter("u1", "tokens")["reserved"] == 0
    acme.assert_verified()


def test_commit_after_expiry_is_refused_and_the_hold_comes_back(acme: Tenant, clock: Clock) -> None:
    held = metering.reserve(acme.scope, "u1", lines(tokens=4000), 60, None)
    clock.advance(seconds=60)
    assert (
        metering.reservation_view(metering.get_reservation(acme.scope, held.reservation_id), acme.scope).status
        == "expired"
    )
    with pytest.raises(ReservationExpired):
        metering.commit(acme.scope, held.reservation_id, lines(tokens=800), None)
    assert acme.counter("u1", "tokens")["reserved"] == 0
    assert [e.kind for e in audit.ledger(acme.scope, "u1", 1, None).entries] == ["expire"]
    with pytest.raises(ReservationExpired):
        metering.release_reservation(acme.scope, held.reservation_id, None)
    assert metering.expire(acme.scope, metering.get_reservation(acme.scope, held.reservation_id)) is False
    acme.assert_verified()


def test_expiry_never_touches_a_committed_reservation(acme: Tenant, clock: Clock) -> None:
    held = metering.reserve(acme.scope, "u1", lines(tokens=40), 60, None)
    metering.commit(acme.scope, held.reservation_id, lines(tokens=40), None)
    clock.advance(minutes=5)
    assert metering.expire(acme.scope, metering.get_reservation(acme.scope, held.reservation_id)) is False
    assert acme.counter("u1", "tokens")["used"] == 40
    acme.assert_verified()


def test_refund_lowers_used_but_never_below_zero(acme: Tenant) -> None:
    metering.track(acme.scope, "u1", lines(tokens=500), {"model": "gpt-4o"}, None)
    metering.refund(acme.scope, "u1", lines(tokens=200), "generation failed", None)
    assert acme.counter("u1", "tokens")["used"] == 300
    with pytest.raises(Conflict):
        metering.refund(acme.scope, "u1", lines(tokens=301), None, None)
    kinds = [e.kind for e in audit.ledger(acme.scope, "u1", 50, None).entries]
    assert kinds[:2] == ["refund", "event"]
    acme.assert_verified()


def test_credits_add_room_and_survive_the_period(store: Store, clock: Clock) -> None:
    pro = Tenant(store, clock)
    pro.subscribe("u2", MONTHLY)
    credits.grant(pro.scope, "u2", "tokens", 500, None, None)
    metering.track(pro.scope, "u2", lines(tokens=1200), None, None)  # 1000 allowance + 200 of the credits
    counter = pro.counter("u2", "tokens")
    assert (counter["credits"], counter["remaining"]) == (500, 300)
    clock.advance(days=5)  # into December: allowance renews, the 300 unspent credits carry over
    december = pro.counter("u2", "tokens")
    assert (december["period_start"], december["credits"], december["used"], december["remaining"]) == (
        "2026-12-01T00:00:00Z",
        300,
        0,
        1300,
    )
    metering.track(pro.scope, "u2", lines(tokens=1), None, None)  # opens December for real
    assert pro.counter("u2", "tokens")["remaining"] == 1299
    pro.assert_verified()


def test_a_hold_made_in_one_period_commits_in_the_next(store: Store, clock: Clock) -> None:
    clock.now = clock.now.replace(day=30, hour=23, minute=59)
    pro = Tenant(store, clock)
    pro.subscribe("u2", MONTHLY)
    held = metering.reserve(pro.scope, "u2", lines(tokens=600), 3600, None)
    clock.advance(minutes=2)
    metering.commit(pro.scope, held.reservation_id, lines(tokens=100), None)
    december = pro.counter("u2", "tokens")
    assert (december["period_start"], december["used"], december["reserved"], december["remaining"]) == (
        "2026-12-01T00:00:00Z",
        100,
        0,
        900,
    )
    pro.assert_verified()


def test_quota_changes_reach_current_counters_at_once(acme: Tenant) -> None:
    metering.track(acme.scope, "u1", lines(tokens=1000), None, None)
    plans.put_subscription(acme.scope, "u1", "plan_paygo", {"tokens": LimitOverride(quota=250_000)}, "cus_123")
    counter = acme.counter("u1", "tokens")
    assert (counter["quota"], counter["remaining"]) == (250_000, 249_000)
    metering.reserve(acme.scope, "u1", lines(tokens=249_000), 60, None)  # a stale cache would refuse this
    acme.assert_verified()


def test_plan_edits_apply_to_every_subscriber(store: Store, clock: Clock) -> None:
    pro = Tenant(store, clock)
    pro.subscribe("u2", MONTHLY)
    pro.subscribe("u3", MONTHLY)
    metering.track(pro.scope, "u3", lines(tokens=10), None, None)
    bigger = MONTHLY.model_copy(
        update={"limits": {**MONTHLY.limits, "tokens": MONTHLY.limits["tokens"].model_copy(update={"quota": 5000})}}
    )
    plans.put_plan(pro.scope, bigger)
    assert pro.counter("u2", "tokens")["remaining"] == 5000
    assert pro.counter("u3", "tokens")["remaining"] == 4990
    pro.assert_verified()


def test_a_meter_dropped_from_the_plan_still_lets_its_holds_end(store: Store, clock: Clock) -> None:
    pro = Tenant(store, clock)
    pro.subscribe("u2", MONTHLY)
    held = metering.reserve(pro.scope, "u2", lines(images=2), 600, None)
    plans.put_plan(pro.scope, MONTHLY.model_copy(update={"limits": {"tokens": MONTHLY.limits["tokens"]}}))
    with pytest.raises(InvalidRequest) as refused:
        metering.reserve(pro.scope, "u2", lines(images=1), 600, None)
    assert refused.value.details["field"] == "lines[0].meter"
    metering.commit(pro.scope, held.reservation_id, lines(images=1), None)
    assert [c.meter for c in balances.usage(pro.scope, "u2").counters] == ["tokens"]
    pro.assert_verified()


def test_default_plan_users_need_no_subscription(store: Store, clock: Clock) -> None:
    pro = Tenant(store, clock)
    plans.put_plan(pro.scope, MONTHLY)
    with pytest.raises(NotFound):
        balances.usage(pro.scope, "newcomer")
    plans.put_settings(pro.scope, allowed_origins=None, change_default_plan=True, default_plan="plan_pro")
    assert balances.usage(pro.scope, "newcomer").plan_id == "plan_pro"
    metering.reserve(pro.scope, "newcomer", lines(tokens=10), 60, None)
    with pytest.raises(NotFound):
        plans.get_subscription(pro.scope, "newcomer")  # implicit: the app never subscribed them
    pro.assert_verified()


def test_unknown_meter_is_an_input_error_naming_the_line(acme: Tenant) -> None:
    with pytest.raises(InvalidRequest) as refused:
        metering.reserve(acme.scope, "u1", lines(tokens=1, images=1), 60, None)
    assert refused.value.details["field"] == "lines[1].meter"
    with pytest.raises(InvalidRequest) as refused:
        credits.grant(acme.scope, "u1", "images", 1, None, None)
    assert refused.value.details["field"] == "meter"


def test_tenants_never_see_each_other(store: Store, clock: Clock, acme: Tenant) -> None:
    other = Tenant(store, clock, tenant_id="globex")
    held = metering.reserve(acme.scope, "u1", lines(tokens=5), 60, None)
    with pytest.raises(NotFound):
        metering.get_reservation(other.scope, held.reservation_id)
    with pytest.raises(NotFound):
        metering.commit(other.scope, held.reservation_id, [], None)
    with pytest.raises(NotFound):
        balances.usage(other.scope, "u1")


def test_verify_finds_a_tampered_counter(acme: Tenant) -> None:
    metering.track(acme.scope, "u1", lines(tokens=10), None, None)
    acme.store.update(keys.counter_current("acme", "u1", "tokens"), "SET used = :u", values={":u": 11})
    verdict = audit.verify(acme.scope, None)
    assert not verdict.ok and verdict.checked == 1
    assert {p.message for p in verdict.problems} == {
        "used is 11 but its ledger entries sum to 10",
        "tokens@none: used 11 + reserved 0 + available 99990 != quota 100000 + credits 0",
    }
