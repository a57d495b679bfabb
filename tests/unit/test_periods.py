"""Anchored periods, pure: against a reference that walks the calendar one day at a time, and on the dates
where month arithmetic goes wrong (anchors on the 29th-31st across leap years and short months); and the
rollover a period opening computes."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quotaflow.ledger.counters import Counter, Delta, open_period
from quotaflow.ledger.periods import CALENDAR, Anchoring, PeriodKind, period_at, periods_after
from quotaflow.ledger.plans import EffectiveLimit, Rollover

pytestmark = pytest.mark.unit

moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 12, 31)).map(
    lambda moment: moment.replace(microsecond=0, tzinfo=UTC)
)
kinds = st.sampled_from(["day", "week", "month"])


def starts_on(kind: str, anchor: datetime, day: datetime) -> bool:
    """Reference: does a period anchored at `anchor` start on `day` (a date at the anchor's time of day)?"""
    if kind == "day":
        return True
    if kind == "week":
        return day.weekday() == anchor.weekday()
    return day.day == min(anchor.day, calendar.monthrange(day.year, day.month)[1])


def reference_bounds(kind: str, anchor: datetime, now: datetime) -> tuple[datetime, datetime]:
    """The latest start at or before `now` and the earliest after it, found by walking day by day."""
    at_anchor_time = now.replace(hour=anchor.hour, minute=anchor.minute, second=anchor.second)
    candidates = [at_anchor_time + timedelta(days=offset) for offset in range(-40, 41)]
    starts = [day for day in candidates if starts_on(kind, anchor, day)]
    return max(s for s in starts if s <= now), min(s for s in starts if s > now)


@given(kind=kinds, anchor=moments, now=moments)
def test_anchored_periods_match_the_day_by_day_reference(kind: PeriodKind, anchor: datetime, now: datetime) -> None:
    period = period_at(kind, now, Anchoring(anchor))
    assert (period.start, period.end) == reference_bounds(kind, anchor, now)
    assert period.start is not None and period.start <= now < period.end  # type: ignore[operator]


@given(kind=kinds, anchor=moments, now=moments)
def test_consecutive_periods_tile_time(kind: PeriodKind, anchor: datetime, now: datetime) -> None:
    anchoring = Anchoring(anchor)
    period = period_at(kind, now, anchoring)
    following = periods_after(kind, period, 1, anchoring)
    assert following.start == period.end
    assert period_at(kind, period.end - timedelta(seconds=1), anchoring) == period  # type: ignore[operator]


@given(kind=kinds, now=moments)
def test_the_calendar_is_the_anchor_of_midnight_monday_the_first(kind: PeriodKind, now: datetime) -> None:
    period = period_at(kind, now, CALENDAR)
    assert period.start is not None
    assert (period.start.hour, period.start.minute, period.start.second) == (0, 0, 0)
    if kind == "week":
        assert period.start.weekday() == 0
    if kind == "month":
        assert period.start.day == 1


@pytest.mark.parametrize(
    ("anchor", "year", "starts"),
    [
        # the 31st: the last day of shorter months, then back on the 31st
        ("2026-01-31T09:30:00", 2027, ["01-31", "02-28", "03-31", "04-30", "05-31", "06-30", "07-31", "08-31"]),
        ("2026-01-31T09:30:00", 2028, ["01-31", "02-29", "03-31", "04-30"]),  # leap year
        ("2026-01-30T09:30:00", 2027, ["01-30", "02-28", "03-30", "04-30"]),
        ("2026-01-30T09:30:00", 2028, ["01-30", "02-29", "03-30"]),
        ("2026-01-29T09:30:00", 2027, ["01-29", "02-28", "03-29"]),
        ("2024-02-29T09:30:00", 2028, ["01-29", "02-29", "03-29"]),  # anchored on a leap day
        ("2024-02-29T09:30:00", 2027, ["01-29", "02-28", "03-29"]),
    ],
)
def test_month_ends_clamp_and_return_to_the_anchor_day(anchor: str, year: int, starts: list[str]) -> None:
    anchoring = Anchoring(datetime.fromisoformat(anchor).replace(tzinfo=UTC))
    period = period_at("month", datetime(year, 1, int(starts[0][3:]), 12, 0, tzinfo=UTC), anchoring)
    seen = []
    for _ in starts:
        assert period.start is not None
        seen.append(period.start.strftime("%m-%d"))
        assert period.start.strftime("%H:%M:%S") == "09:30:00"
        period = periods_after("month", period, 1, anchoring)
    assert seen == starts


def test_week_and_day_anchors_keep_the_anchor_weekday_and_time() -> None:
    anchoring = Anchoring(datetime(2026, 11, 19, 15, 45, tzinfo=UTC))  # a Thursday
    week = period_at("week", datetime(2026, 12, 1, 8, 0, tzinfo=UTC), anchoring)
    assert (week.start_iso, week.end_iso) == ("2026-11-26T15:45:00Z", "2026-12-03T15:45:00Z")
    day = period_at("day", datetime(2026, 12, 1, 8, 0, tzinfo=UTC), anchoring)
    assert (day.start_iso, day.end_iso) == ("2026-11-30T15:45:00Z", "2026-12-01T15:45:00Z")


def test_an_anchor_change_cuts_the_running_period_at_the_change() -> None:
    changed_at = datetime(2026, 11, 20, 12, 0, 7, 250, tzinfo=UTC)
    anchoring = Anchoring(datetime(2026, 10, 25, tzinfo=UTC), since=changed_at)
    cut = period_at("month", datetime(2026, 11, 21, tzinfo=UTC), anchoring)
    assert (cut.start_iso, cut.end_iso) == ("2026-11-20T12:00:07Z", "2026-11-25T00:00:00Z")
    after = periods_after("month", cut, 1, anchoring)
    assert (after.start_iso, after.end_iso) == ("2026-11-25T00:00:00Z", "2026-12-25T00:00:00Z")
    before = period_at("month", datetime(2026, 11, 1, tzinfo=UTC), anchoring)
    assert before.start_iso == "2026-10-25T00:00:00Z", "moments before the change keep the plain anchored period"


@given(kind=kinds, anchor=moments, since=moments, now=moments)
def test_a_cut_period_still_ends_where_the_anchor_says(
    kind: PeriodKind, anchor: datetime, since: datetime, now: datetime
) -> None:
    plain = period_at(kind, now, Anchoring(anchor))
    cut = period_at(kind, now, Anchoring(anchor, since=since))
    assert cut.end == plain.end
    assert cut.start == (since if plain.start < since <= now else plain.start)  # type: ignore[operator]


def test_none_never_resets_whatever_the_anchor() -> None:
    assert period_at("none", datetime(2026, 11, 27, tzinfo=UTC), Anchoring(datetime(2026, 1, 31, tzinfo=UTC))).key == (
        "none"
    )


def test_rollover_is_the_unspent_allowance_capped_and_expires_after_its_periods() -> None:
    limit = EffectiveLimit(
        meter="tokens",
        label="Tokens",
        quota=1000,
        period="month",
        enforcement="hard",
        rollover=Rollover(max=300, expires_after_periods=3),
    )
    anchoring = Anchoring(datetime(2026, 1, 31, tzinfo=UTC))
    december = period_at("month", datetime(2026, 12, 31, 1, tzinfo=UTC), anchoring)
    january = periods_after("month", december, 1, anchoring)
    previous = Counter(
        meter="tokens",
        period="month",
        period_key=december.key,
        period_end=december.end_iso,
        label="Tokens",
        enforcement="hard",
        limits_version=1,
    )
    held = previous.apply(Delta(quota=1000)).apply(Delta(used=800, reserved=150))
    opening = open_period(held, limit, january, 1, anchoring)
    assert opening.rollover is not None
    assert opening.rollover.amount == 200, "holds moving forward are not spent allowance"
    assert opening.rollover.expires_at == "2027-04-30T00:00:00Z", "end of the 3rd period: Jan 31, Feb 28, Mar 31"
    assert (opening.current.credits, opening.current.reserved, opening.current.quota) == (200, 150, 1000)
    barely_used = previous.apply(Delta(quota=1000)).apply(Delta(used=1))
    assert open_period(barely_used, limit, january, 1, anchoring).rollover.amount == 300  # type: ignore[union-attr]
    over = previous.apply(Delta(quota=1000)).apply(Delta(used=1200))
    assert open_period(over, limit, january, 1, anchoring).rollover is None
    february = periods_after("month", january, 1, anchoring)
    assert open_period(barely_used, limit, february, 1, anchoring).rollover is None, "January was never opened"
