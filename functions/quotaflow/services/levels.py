"""The levels a write on a user posts to: the user and every account above it whose plan has the meter.

A write on a user is one transaction over all its levels, so no level is ever checked apart from the others:
there is no moment in which two members both see the last unit of a pool. Each level's counter obeys its own
limits (its period, its enforcement) and keeps every invariant of a user's counter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from quotaflow.ledger.counters import Delta, Guard, Posting
from quotaflow.ledger.errors import InvalidRequest, InvariantViolation
from quotaflow.ledger.periods import period_at
from quotaflow.services.pools import Route
from quotaflow.services.scope import Scope, UserLimits
from quotaflow.services.users import current_limits

ACCOUNT_LEVELS_MAX = 3  # org -> team -> sub-team


@dataclass(frozen=True)
class Level:
    holder: str  # the account's holder id
    limits: UserLimits


def above(scope: Scope, limits: UserLimits) -> list[Level]:
    """The accounts above a holder, nearest first, from the limits cache (no read in steady state)."""
    levels: list[Level] = []
    holder = limits.above
    while holder is not None:
        if len(levels) >= ACCOUNT_LEVELS_MAX:
            raise InvariantViolation(f"the account tree above {levels[0].holder} is deeper than {ACCOUNT_LEVELS_MAX}")
        level_limits = current_limits(scope, holder)
        levels.append(Level(holder, level_limits))
        holder = level_limits.above
    return levels


def recorded(scope: Scope, holders: Sequence[str]) -> list[Level]:
    """The levels a reservation was made on (a member who moved since still ends its holds where they are)."""
    return [Level(holder, current_limits(scope, holder)) for holder in holders]


def postings(
    user_id: str,
    limits: UserLimits,
    levels: Sequence[Level],
    kind: str,
    changes: Sequence[tuple[str, Delta, Guard]],
    now: datetime,
    *,
    field: str = "lines",
    held_on: Mapping[str, Sequence[str]] | None = None,
    route: Route | None = None,
) -> list[Posting]:
    """Each change posted on the user and on every level whose plan has the meter — or, for a reservation's
    holds (`held_on`: holder id -> meters), on exactly the levels and meters it was made on, retired meters
    included, so that it ends where it was made. A sharded pool takes it on the shard `route` says (shard 0
    without one). A meter that no level takes is an input error."""
    out: list[Posting] = []
    candidates = [(user_id, None, limits)] + [(level.holder, level.holder, level.limits) for level in levels]
    for index, (meter, delta, guard) in enumerate(changes):
        taken = False
        for key, holder, level_limits in candidates:
            limit = level_limits.limits.get(meter)
            if limit is None:
                continue
            if held_on is None and limit.retired:
                continue
            if held_on is not None and meter not in held_on.get(key, ()):
                continue
            period_key = period_at(limit.period, now, level_limits.anchoring).key
            shard = route.shard(holder, level_limits.pool_shards) if route is not None and holder else 0
            out.append(Posting(kind, meter, period_key, delta, guard, holder, shard))
            taken = True
        if not taken:
            raise InvalidRequest(f"the user's plan has no meter {meter!r}", field=f"{field}[{index}].meter")
    return out


def holds_by_level(user_id: str, posted: Sequence[Posting]) -> dict[str, tuple[str, ...]]:
    """Which meters each level took (holder id -> meters): what a reservation records to end its holds there."""
    taken: dict[str, tuple[str, ...]] = {}
    for posting in posted:
        holder = posting.holder or user_id
        taken[holder] = (*taken.get(holder, ()), posting.meter)
    return taken


def holding(
    scope: Scope, user_id: str, limits: UserLimits, meters: Sequence[str], route: Route
) -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    """Where a reserve of `meters` on `route` would hold now: holder id -> meters (the user and each account above
    it whose plan has the meter) and sharded pool -> shard, as a reservation made with these limits records them
    in `held_on` and `held_shards`."""
    changes = [(meter, Delta(), Guard.NONE) for meter in meters]
    posted, chain = post(scope, user_id, limits, "reserve", changes, route=route)
    return holds_by_level(user_id, posted), held_shards(posted, chain)


def held_shards(posted: Sequence[Posting], chain: Sequence[Level]) -> dict[str, int]:
    """The shard each sharded pool took (what a reservation records to end its holds there)."""
    shards_of = {level.holder: level.limits.pool_shards for level in chain}
    return {p.holder: p.shard for p in posted if p.holder is not None and shards_of.get(p.holder, 1) > 1}


def post(
    scope: Scope,
    user_id: str,
    limits: UserLimits,
    kind: str,
    changes: Sequence[tuple[str, Delta, Guard]],
    *,
    held_on: Mapping[str, Sequence[str]] | None = None,
    route: Route | None = None,
) -> tuple[list[Posting], list[Level]]:
    """`postings` over the user's current account chain, or over the levels a reservation was made on."""
    if held_on is None:
        chain = above(scope, limits)
    else:
        chain = recorded(scope, [holder for holder in held_on if holder != user_id])
    return postings(user_id, limits, chain, kind, changes, scope.now, held_on=held_on, route=route), chain
