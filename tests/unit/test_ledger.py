"""The domain core, pure: periods, limits, counters, settlement, period openings, verification."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from quotaflow.ledger.amounts import MAX_AMOUNT, Line, Lines, div_ceil
from quotaflow.ledger.counters import Counter, Delta, Guard, open_period, retune, unspent_credits
from quotaflow.ledger.entries import LedgerEntry
from quotaflow.ledger.errors import InvalidRequest, InvariantViolation
from quotaflow.ledger.periods import period_at
from quotaflow.ledger.plans import EffectiveLimit, Limit, LimitOverride, Plan, effective_limits
from quotaflow.ledger.reservations import Reservation, release, settle
from quotaflow.ledger.verify import check_user, sum_entries

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
TOKENS = EffectiveLimit(meter="tokens", label="Tokens", quota=1000, period="month", enforcement="hard")


def counter(**fields: int) -> Counter:
    base = Counter(
        meter="tokens",
        period="month",
        period_key="2026-11-01T00:00:00Z",
        period_end="2026-12-01T00:00:00Z",
        label="Tokens",
        enforcement="hard",
        limits_version=1,
    )
    state = base.apply(Delta(quota=fields.get("quota", 0), credits=fields.get("credits", 0)))
    return state.apply(Delta(used=fields.get("used", 0), reserved=fields.get("reserved", 0)))


@pytest.mark.parametrize(
    ("kind", "start", "end"),
    [
        ("day", "2026-11-27T00:00:00Z", "2026-11-28T00:00:00Z"),
        ("week", "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"),  # ISO week: Monday
        ("month", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
    ],
)
def test_periods_are_utc_calendar_boundaries(kind: str, start: str, end: str) -> None:
    period = period_at(kind, NOW)  # type: ignore[arg-type]
    assert (period.start_iso, period.end_iso) == (start, end)


def test_december_rolls_into_next_year_and_none_never_resets() -> None:
    assert period_at("month", datetime(2026, 12, 31, 23, 59, tzinfo=UTC)).end_iso == "2027-01-01T00:00:00Z"
    assert period_at("none", NOW).key == "none"


def test_amounts_are_strict_json_integers() -> None:
    for bad in (1.0, "5", True, -1, MAX_AMOUNT + 1):
        with pytest.raises(ValidationError):
            Line(meter="tokens", amount=bad)  # type: ignore[arg-type]
    assert Line(meter="llm.tokens", amount=MAX_AMOUNT).amount == MAX_AMOUNT


def test_lines_refuse_a_meter_twice_and_more_than_twenty() -> None:
    with pytest.raises(ValidationError, match="more than once"):
        Lines(lines=[Line(meter="tokens", amount=1), Line(meter="tokens", amount=2)])
    with pytest.raises(ValidationError):
        Lines(lines=[Line(meter=f"m{i}", amount=1) for i in range(21)])


def test_div_ceil_rounds_up_exactly() -> None:
    assert (div_ceil(0, 7), div_ceil(7, 7), div_ceil(8, 7)) == (0, 1, 2)


def test_custom_limits_override_and_add_meters() -> None:
    plan = Plan(plan_id="p", name="P", limits={"tokens": Limit(label="Tokens", quota=10, period="month")})
    merged = effective_limits(plan, {"tokens": LimitOverride(quota=100_000), "images": LimitOverride(quota=5)})
    assert merged["tokens"].quota == 100_000 and merged["tokens"].period == "month"
    assert merged["images"].label == "images" and merged["images"].enforcement == "hard"
    with pytest.raises(ValueError, match="needs a quota"):
        effective_limits(plan, {"images": LimitOverride(enforcement="soft")})


def test_every_change_keeps_invariant_one() -> None:
    state = counter(quota=1000)
    for delta in (
        Delta(reserved=400),
        Delta(used=300, reserved=-400),
        Delta(credits=50),
        Delta(quota=-100),
        Delta(used=-10),
    ):
        state = state.apply(delta)
        state.check()
    assert (state.used, state.reserved, state.credits, state.quota, state.available) == (290, 0, 50, 900, 660)


def test_check_names_the_broken_half() -> None:
    broken = Counter(
        meter="tokens",
        period="none",
        period_key="none",
        period_end=None,
        label="T",
        enforcement="hard",
        limits_version=0,
        quota=10,
        available=11,
    )
    with pytest.raises(InvariantViolation, match="available 11 != quota 10"):
        broken.check()
    with pytest.raises(InvariantViolation, match="used -1 < 0"):
        broken.apply(Delta(used=-1)).check()


def test_hard_guard_admits_only_what_fits_and_soft_admits_all() -> None:
    state = counter(quota=100, used=60)
    assert state.admits(Delta(reserved=40), Guard.ROOM_IF_HARD)
    assert not state.admits(Delta(reserved=41), Guard.ROOM_IF_HARD)
    soft = Counter(**{**state.__dict__, "enforcement": "soft"})
    assert soft.admits(Delta(reserved=10**6), Guard.ROOM_IF_HARD)
    assert not state.admits(Delta(used=-61), Guard.USED_COVERS)


def test_commit_refunds_the_rest_and_records_overage_in_full() -> None:
    held = (Line(meter="tokens", amount=4000), Line(meter="requests", amount=1))
    result = settle(held, [Line(meter="tokens", amount=800)])
    assert [(c.meter, c.delta) for c in result.changes] == [
        ("tokens", Delta(used=800, reserved=-4000)),
        ("requests", Delta(reserved=-1)),
    ]
    assert [line.amount for line in result.refunded] == [3200, 1]
    over = settle(held, [Line(meter="tokens", amount=5000), Line(meter="requests", amount=1)])
    assert over.overage == (Line(meter="tokens", amount=1000),)
    assert over.changes[0].delta == Delta(used=5000, reserved=-4000)


def test_commit_of_a_meter_not_held_names_the_line() -> None:
    with pytest.raises(InvalidRequest) as refused:
        settle((Line(meter="tokens", amount=1),), [Line(meter="tokens", amount=1), Line(meter="cents", amount=1)])
    assert refused.value.details["field"] == "lines[1].meter"


def test_release_returns_every_hold() -> None:
    held = (Line(meter="tokens", amount=7),)
    assert release(held).changes[0].delta == Delta(reserved=-7) and release(held).refunded == held


def test_overdue_pending_reservation_reads_as_expired() -> None:
    reservation = Reservation("rsv_1", "u1", (), "pending", NOW, NOW.replace(minute=35), held=())
    assert reservation.status_at(NOW) == "pending"
    assert reservation.status_at(NOW.replace(minute=35)) == "expired"
    assert Reservation("rsv_1", "u1", (), "committed", NOW, NOW, held=()).status_at(NOW.replace(hour=23)) == "committed"


def test_first_period_opens_with_the_quota() -> None:
    opening = open_period(None, TOKENS, period_at("month", NOW), limits_version=3)
    assert opening.closed is None
    assert (opening.current.quota, opening.current.available, opening.current.limits_version) == (1000, 1000, 3)


def test_new_period_renews_allowance_and_carries_unspent_credits_and_holds() -> None:
    old = counter(quota=1000, credits=500, used=1200, reserved=300)  # 200 of the credits were spent
    assert unspent_credits(old) == 300
    opening = open_period(old, TOKENS, period_at("month", datetime(2026, 12, 2, tzinfo=UTC)), limits_version=1)
    new = opening.current
    assert (new.quota, new.credits, new.reserved, new.used, new.available) == (1000, 300, 300, 0, 1000)
    closed = opening.closed
    assert closed is not None and (closed.credits, closed.reserved) == (200, 0)
    new.check()
    closed.check()
    sums = sum_entries(
        LedgerEntry(
            "e",
            "t",
            p.kind,
            p.meter,
            p.period_key,
            p.delta.used,
            p.delta.reserved,
            p.delta.credits,
            p.delta.quota,
            None,
        )
        for p in opening.postings
    )
    assert sums[("tokens", new.period_key)] == Delta(reserved=300, credits=300, quota=1000)
    assert sums[("tokens", old.period_key)] == Delta(reserved=-300, credits=-300)


def test_retune_moves_available_by_the_quota_difference() -> None:
    updated, posting = retune(counter(quota=1000, used=100), TOKENS.model_copy(update={"quota": 1500}), 2)
    assert posting is not None and posting.delta == Delta(quota=500)
    assert (updated.quota, updated.available, updated.limits_version) == (1500, 1400, 2)
    assert retune(counter(quota=1000), TOKENS, 2)[1] is None


def test_verify_reports_each_mismatch_precisely() -> None:
    state = counter(quota=1000, used=10)
    entries = [
        LedgerEntry("e1", "t", "quota_change", "tokens", state.period_key, 0, 0, 0, 1000, None),
        LedgerEntry("e2", "t", "event", "tokens", state.period_key, 7, 0, 0, 0, None),
        LedgerEntry("e3", "t", "event", "images", "none", 1, 0, 0, 0, None),
    ]
    problems = check_user("u1", [state], sum_entries(entries))
    assert [p.message for p in problems] == [
        "used is 10 but its ledger entries sum to 7",
        "ledger entries for a counter that does not exist",
    ]
    assert (
        check_user(
            "u1",
            [state],
            sum_entries(
                entries[:1] + [entries[1].__class__("e2", "t", "event", "tokens", state.period_key, 10, 0, 0, 0, None)]
            ),
        )
        == []
    )
