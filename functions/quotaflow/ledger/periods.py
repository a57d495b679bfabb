"""Periods in UTC: a counter belongs to exactly one period; `none` never resets.

A `day|week|month` period starts at an anchor plus a whole number of periods. The UTC calendar is one anchor
among others (a Monday the 1st at midnight); a subscription's anchor (its billing date) is another. A month
anchored on the 29th-31st starts on the last day of shorter months and returns to the anchor's day after.
When a holder's anchoring changes, the period running then is cut short there (`Anchoring.since`)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

PeriodKind = Literal["day", "week", "month", "none"]
NO_PERIOD = "none"  # the period_start key of a counter that never resets
CALENDAR_ANCHOR = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday, the 1st, midnight: periods on UTC calendar bounds
STEPS = {"day": timedelta(days=1), "week": timedelta(days=7)}


@dataclass(frozen=True)
class Period:
    kind: PeriodKind
    start: datetime | None
    end: datetime | None

    @property
    def key(self) -> str:
        """The period's identity in keys and ledger entries: its ISO start, or `none`."""
        return iso(self.start) if self.start else NO_PERIOD

    @property
    def start_iso(self) -> str | None:
        return iso(self.start) if self.start else None

    @property
    def end_iso(self) -> str | None:
        return iso(self.end) if self.end else None


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, to the second: the only timestamp format quotaflow writes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp needs a timezone")
    return moment.astimezone(UTC)


def whole_seconds(moment: datetime) -> datetime:
    """Period bounds are kept to the second, like every timestamp quotaflow writes."""
    return moment.astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Anchoring:
    """Where a budget holder's periods start: `anchor` plus whole periods. From `since` on (the moment the
    anchoring last changed), the period that was running then ends there and the new one starts there."""

    anchor: datetime = CALENDAR_ANCHOR
    since: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchor", whole_seconds(self.anchor))
        if self.since is not None:
            object.__setattr__(self, "since", whole_seconds(self.since))

    @property
    def is_calendar(self) -> bool:
        return self.anchor == CALENDAR_ANCHOR


CALENDAR = Anchoring()


def period_at(kind: PeriodKind, now: datetime, anchoring: Anchoring = CALENDAR) -> Period:
    """The period of `kind` that contains `now`."""
    if kind == "none":
        return Period(kind, None, None)
    now = now.astimezone(UTC)
    start, end = anchored_bounds(kind, anchoring.anchor, now)
    if anchoring.since is not None and start < anchoring.since <= now:
        start = anchoring.since  # the anchoring changed during this period: it starts at the change
    return Period(kind, start, end)


def anchored_bounds(kind: PeriodKind, anchor: datetime, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the `kind` period (`day`, `week` or `month`) anchored at `anchor` that contains `now`."""
    if kind in STEPS:
        step = STEPS[kind]
        start = anchor + ((now - anchor) // step) * step
        return start, start + step
    index = (now.year - anchor.year) * 12 + now.month - anchor.month
    if month_start(anchor, index) > now:
        index -= 1
    return month_start(anchor, index), month_start(anchor, index + 1)


def month_start(anchor: datetime, index: int) -> datetime:
    """The start of the month period `index` months after the anchor's, its day clamped to the month's length."""
    year, month0 = divmod(anchor.year * 12 + anchor.month - 1 + index, 12)
    day = min(anchor.day, calendar.monthrange(year, month0 + 1)[1])
    return anchor.replace(year=year, month=month0 + 1, day=day)


PERIODS_AHEAD_MAX = 24  # rollover expiry looks at most this far ahead


def periods_after(kind: PeriodKind, period: Period, count: int, anchoring: Anchoring) -> Period:
    """The period `count` periods after `period` (0: itself)."""
    if not 0 <= count <= PERIODS_AHEAD_MAX:
        raise ValueError(f"count must be 0..{PERIODS_AHEAD_MAX}, got {count}")
    for _ in range(count):
        if period.end is None:
            return period
        period = period_at(kind, period.end, anchoring)
    return period
