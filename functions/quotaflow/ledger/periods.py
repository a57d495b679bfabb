"""Calendar periods in UTC. A counter belongs to exactly one period; `none` never resets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

PeriodKind = Literal["day", "week", "month", "none"]
NO_PERIOD = "none"  # the period_start key of a counter that never resets


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


def period_at(kind: PeriodKind, now: datetime) -> Period:
    """The period of `kind` that contains `now`."""
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "none":
        return Period(kind, None, None)
    if kind == "day":
        return Period(kind, midnight, midnight + timedelta(days=1))
    if kind == "week":  # ISO weeks start on Monday
        start = midnight - timedelta(days=midnight.weekday())
        return Period(kind, start, start + timedelta(days=7))
    start = midnight.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return Period(kind, start, end)
