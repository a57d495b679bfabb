"""Counters: one user's balance on one meter for one period, and every change that may happen to it.

Every change is a `Delta` on (used, reserved, credits, quota); `available` moves by the same delta so that
`used + reserved + available == quota + credits` holds after every write (invariant 1). The store turns a
delta into one atomic `ADD` and a `Guard` into its condition expression.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum

from quotaflow.ledger.errors import InvariantViolation
from quotaflow.ledger.periods import CALENDAR, NO_PERIOD, Anchoring, Period, PeriodKind, periods_after
from quotaflow.ledger.plans import EffectiveLimit, Enforcement


@dataclass(frozen=True)
class Delta:
    used: int = 0
    reserved: int = 0
    credits: int = 0
    quota: int = 0

    @property
    def available(self) -> int:
        return self.quota + self.credits - self.used - self.reserved

    def __add__(self, other: Delta) -> Delta:
        return Delta(
            self.used + other.used,
            self.reserved + other.reserved,
            self.credits + other.credits,
            self.quota + other.quota,
        )

    @property
    def is_zero(self) -> bool:
        return not (self.used or self.reserved or self.credits or self.quota)


class Guard(Enum):
    """The condition a change needs besides "the counter is the current one"."""

    NONE = "none"
    ROOM_IF_HARD = "room_if_hard"  # hard enforcement: available >= the amount taken
    USED_COVERS = "used_covers"  # used >= the amount given back (refunds)
    RESERVED_COVERS = "reserved_covers"  # reserved >= the hold released (a broken hold is a bug)


@dataclass(frozen=True)
class Counter:
    meter: str
    period: PeriodKind
    period_key: str  # ISO start of the period, or "none"
    period_end: str | None
    label: str
    enforcement: Enforcement
    limits_version: int
    quota: int = 0
    credits: int = 0
    used: int = 0
    reserved: int = 0
    available: int = 0
    alerts: tuple[int, ...] = ()  # threshold percents of quota + credits; the notifier reads them off the stream

    @property
    def remaining(self) -> int:
        return max(0, self.available)

    def apply(self, delta: Delta) -> Counter:
        return replace(
            self,
            used=self.used + delta.used,
            reserved=self.reserved + delta.reserved,
            credits=self.credits + delta.credits,
            quota=self.quota + delta.quota,
            available=self.available + delta.available,
        )

    def admits(self, delta: Delta, guard: Guard) -> bool:
        """Whether the store's condition for this change would pass on this state."""
        if guard is Guard.ROOM_IF_HARD:
            taken = -delta.available
            return self.enforcement != "hard" or taken <= 0 or self.available >= taken
        if guard is Guard.USED_COVERS:
            return self.used >= -delta.used
        if guard is Guard.RESERVED_COVERS:
            return self.reserved >= -delta.reserved
        return True

    def check(self) -> None:
        """Raise InvariantViolation if this state breaks invariant 1 or a sign rule."""
        if self.used < 0:
            raise InvariantViolation(f"{self.meter}@{self.period_key}: used {self.used} < 0")
        if self.reserved < 0:
            raise InvariantViolation(f"{self.meter}@{self.period_key}: reserved {self.reserved} < 0")
        if self.credits < 0:
            raise InvariantViolation(f"{self.meter}@{self.period_key}: credits {self.credits} < 0")
        if self.used + self.reserved + self.available != self.quota + self.credits:
            raise InvariantViolation(
                f"{self.meter}@{self.period_key}: used {self.used} + reserved {self.reserved} + available "
                f"{self.available} != quota {self.quota} + credits {self.credits}"
            )


@dataclass(frozen=True)
class Posting:
    """One counter change and the ledger entry that records it."""

    kind: str
    meter: str
    period_key: str
    delta: Delta
    guard: Guard = Guard.NONE
    holder: str | None = None  # an account above the writing user that takes the same change; None: the user
    shard: int = 0  # which shard of a sharded pool's counter takes it (0: the counter itself)


@dataclass(frozen=True)
class PeriodOpening:
    """What opening a counter's period writes: the new current counter, the closed one kept as history."""

    current: Counter
    closed: Counter | None
    postings: tuple[Posting, ...]
    rollover: RolloverGrant | None = None


@dataclass(frozen=True)
class RolloverGrant:
    """What is left of the previous period's allowance, granted to the new period (its `rollover` posting)."""

    amount: int
    expires_at: str


def pooled(shards: Sequence[Counter]) -> Counter:
    """A sharded pool's counter as one: the first shard's limits with every shard's balance summed (each shard
    keeps invariant 1, so the sum does)."""
    first = shards[0]
    return replace(
        first,
        quota=sum(shard.quota for shard in shards),
        credits=sum(shard.credits for shard in shards),
        used=sum(shard.used for shard in shards),
        reserved=sum(shard.reserved for shard in shards),
        available=sum(shard.available for shard in shards),
    )


def shard_limit(limit: EffectiveLimit) -> EffectiveLimit:
    """What shard k > 0 of a sharded pool opens a period with: no allowance of its own (rebalancing brings it a
    slice of shard 0's) and no rollover (sharded pools have none)."""
    return limit.model_copy(update={"quota": 0, "rollover": None})


def spent_credits(counter: Counter) -> int:
    """Credits are spent after the period allowance: what the period used beyond its quota came from them."""
    return min(counter.credits, max(0, counter.used - counter.quota))


def unspent_credits(counter: Counter) -> int:
    return counter.credits - spent_credits(counter)


def unspent_allowance(previous: Counter | None, period: Period) -> int:
    """The allowance the counter being closed left unused, if its period is the one right before `period`.
    Holds moving forward are not spent: they are settled in the new period. A period no write ever opened has
    no counter and rolls nothing over."""
    if previous is None or previous.period_key == NO_PERIOD or period.start_iso is None:
        return 0
    if previous.period_end != period.start_iso:
        return 0
    return max(0, previous.quota - previous.used)


def rollover_grant(
    previous: Counter | None, limit: EffectiveLimit, period: Period, anchoring: Anchoring
) -> RolloverGrant | None:
    if limit.rollover is None or limit.period == "none":
        return None
    amount = min(limit.rollover.max, unspent_allowance(previous, period))
    last = periods_after(limit.period, period, limit.rollover.expires_after_periods - 1, anchoring)
    if amount <= 0 or last.end_iso is None:
        return None
    return RolloverGrant(amount, last.end_iso)


def open_period(
    previous: Counter | None,
    limit: EffectiveLimit,
    period: Period,
    limits_version: int,
    anchoring: Anchoring = CALENDAR,
) -> PeriodOpening:
    """Open `period` for a meter: allowance from the limit; unspent credits and pending holds move forward;
    with a rollover rule, what the previous period left of its allowance comes as a grant."""
    fresh = Counter(
        meter=limit.meter,
        period=limit.period,
        period_key=period.key,
        period_end=period.end_iso,
        label=limit.label,
        enforcement=limit.enforcement,
        limits_version=limits_version,
        alerts=limit.alerts,
    )
    postings = [Posting("quota_change", limit.meter, period.key, Delta(quota=limit.quota))]
    rollover = rollover_grant(previous, limit, period, anchoring)
    if previous is None:
        return PeriodOpening(fresh.apply(postings[0].delta), None, tuple(postings))
    carried = Delta(credits=unspent_credits(previous), reserved=previous.reserved)
    cut_short = bool(previous.period_end and period.start_iso and period.start_iso < previous.period_end)
    # a period ends where the next one starts: its billing export stamps its usage before that moment
    closed = replace(previous, period_end=period.start_iso) if cut_short else previous
    if not carried.is_zero:
        postings.append(Posting("carryover", limit.meter, period.key, carried))
        out = Delta(credits=-carried.credits, reserved=-carried.reserved)
        postings.append(Posting("carryover", limit.meter, previous.period_key, out))
        closed = closed.apply(out)
    if rollover is not None:
        postings.append(Posting("rollover", limit.meter, period.key, Delta(credits=rollover.amount)))
    current = fresh
    for posting in postings:
        if posting.period_key == period.key:
            current = current.apply(posting.delta)
    return PeriodOpening(current, closed, tuple(postings), rollover)


def retune(
    counter: Counter, limit: EffectiveLimit, limits_version: int, granted: int | None = None
) -> tuple[Counter, Posting | None]:
    """Apply changed limits to the current counter: a quota change moves `available` by the difference from what
    the old limits granted (`granted`: a sharded pool's whole allowance, when shard 0 holds only a slice of it)."""
    posting = None
    granted = counter.quota if granted is None else granted
    updated = replace(
        counter,
        label=limit.label,
        enforcement=limit.enforcement,
        period=limit.period,
        limits_version=limits_version,
        alerts=limit.alerts,
    )
    if limit.quota != granted:
        posting = Posting("quota_change", counter.meter, counter.period_key, Delta(quota=limit.quota - granted))
        updated = updated.apply(posting.delta)
    return updated, posting
