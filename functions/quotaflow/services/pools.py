"""Sharded pool counters: an account's counter as N shard items, for pools that many members write at once.

Shard k of an account's counter for a meter is its own item in its own partition, with the ledger entries of its
changes (keys.pool_shard_partition; shard 0 is the counter itself, so one shard is the unsharded layout). Each
shard is a counter with every invariant of one: its `quota` is its slice of the pool's allowance, and the slices
sum to the plan's quota (a period opens with the whole allowance on shard 0 and the others empty; `pool_quota` on
shard 0 keeps the plan's figure once a slice has moved off it). Each shard's hard condition is today's counter's,
so no shard overshoots and neither does their sum.

A write that takes room (reserve, event) goes to the shard its id hashes to (`Route`); refused there, it tries up
to POOL_SHARD_TRIES_MAX other shards, then rebalances: one TransactGetItems reads every shard as of one moment,
and one conditional transaction moves room into the seed's shard and spreads the rest to fair shares (each donor
conditioned on having what it gives). It is refused only when the shards together lack room. A reservation
records the shard it holds on (`held_shards`), and everything that ends or changes it writes there.

What a shard cannot keep exact is refused rather than approximated: credits (spent in time order against the
allowance of one counter), rollover and alerts (computed from one counter's quota and usage) and the billing
export (one watermark per counter) stay on unsharded pools (ledger/pools.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quotaflow.ledger.counters import Counter, Delta, Guard, Posting, open_period, pooled, shard_limit
from quotaflow.ledger.errors import InsufficientQuota
from quotaflow.ledger.periods import period_at
from quotaflow.services.scope import Scope, UserLimits
from quotaflow.services.users import prepare
from quotaflow.services.writes import add_entries
from quotaflow.store import items, keys
from quotaflow.store.table import BATCH_GET_KEYS_MAX, Item, SnapshotConflict, TransactionCancelled

if TYPE_CHECKING:
    from quotaflow.services.levels import Level

POOL_SHARD_TRIES_MAX = 2  # other shards a refused write tries before it rebalances
REBALANCE_TAG = "rebalance:"


@dataclass
class Route:
    """Which shard of each sharded pool a write takes: the one its seed (the reservation's or event's id) hashes
    to, or the next ones after a refusal there; `fixed`: the shards a reservation holds on."""

    seed: str
    fixed: dict[str, int] | None = None
    moves: dict[str, int] = field(default_factory=dict)  # holder -> shards tried past the seed's

    def shard(self, holder: str, shards: int) -> int:
        if self.fixed is not None:
            return self.fixed.get(holder, 0)
        if shards == 1:
            return 0
        return (keys.shard_of(self.seed, shards) + self.moves.get(holder, 0)) % shards

    @property
    def at_seed(self) -> bool:
        """Every shard taken is the one the seed hashes to (what a reservation id that carries its hold says)."""
        return self.fixed is None and not any(self.moves.values())


def reroute(
    scope: Scope,
    cancelled: TransactionCancelled,
    by_tag: dict[str, Posting],
    limits_of: dict[str, UserLimits],
    route: Route,
) -> bool:
    """After a refusal: True when a sharded pool's current shard lacked room and the write should go again (on
    another shard, or on the seed's after a rebalance). Raises InsufficientQuota when the whole pool lacks it."""
    for reason in cancelled.reasons:
        posting = by_tag.get(reason.tag)
        if posting is None or posting.holder is None or reason.item is None or reason.code != "ConditionalCheckFailed":
            continue
        limits = limits_of[posting.holder]
        taken = -posting.delta.available
        if limits.pool_shards == 1 or posting.guard is not Guard.ROOM_IF_HARD or taken <= 0:
            continue
        item = reason.item
        if item["period_key"] != posting.period_key or item["limits_version"] != limits.limits_version:
            continue  # stale: the engine opens the shard
        if item["enforcement"] != "hard" or item["available"] >= taken:
            continue  # refused for another reason (moved since): the engine retries
        if route.fixed is None and route.moves.get(posting.holder, 0) < POOL_SHARD_TRIES_MAX:
            route.moves[posting.holder] = route.moves.get(posting.holder, 0) + 1
            return True
        route.moves.pop(posting.holder, None)
        target = route.shard(posting.holder, limits.pool_shards)
        rebalance(scope, posting.holder, limits, posting.meter, target, taken)
        return True
    return False


def rebalance(scope: Scope, holder: str, limits: UserLimits, meter: str, target: int, taken: int) -> None:
    """Move room so that shard `target` can take `taken` and every shard holds about a fair share: read every
    shard as of one moment (one TransactGetItems, so that a move between shards never shows half done and the sum
    is exact), then one transaction moves room from the shards above a fair share (and, if the
    target needs more than one, from the richest below it), each donor conditioned on still having what it gives.
    Refuses when the shards together lack `taken`; a race with other writers leaves the shards as they were (the
    caller retries)."""
    limit = limits.limits[meter]
    period = period_at(limit.period, scope.now, limits.anchoring)
    shard_keys = [keys.counter_shard(scope.tenant_id, holder, meter, k) for k in range(limits.pool_shards)]
    try:
        shard_items = scope.store.get_snapshot(shard_keys)
    except SnapshotConflict:
        return  # a write was in flight on a shard: the write goes again
    stale = [k for k, item in enumerate(shard_items) if not _current(item, period.key, limits.limits_version)]
    if stale:  # open them (a new period, new limits, a shard never written), then read what they hold
        for shard in stale:
            prepare(scope, holder, [meter], shard=shard)
        try:
            shard_items = scope.store.get_snapshot(shard_keys)
        except SnapshotConflict:
            return
        if not all(_current(item, period.key, limits.limits_version) for item in shard_items):
            return  # the limits moved meanwhile: the write builds again on them
    available = [item["available"] for item in shard_items if item is not None]
    total = sum(available)
    if total < taken:
        raise InsufficientQuota(meter, taken, total, keys.account_of(holder))
    tx = scope.store.transaction()
    postings: list[Posting] = []
    for shard, moved in enumerate(spread(available, target, taken)):
        if moved == 0:
            continue
        values: dict[str, Any] = {":pk": period.key, ":v": limits.limits_version, ":d": moved, ":one": 1}
        condition = "period_key = :pk AND limits_version = :v"
        if moved < 0:
            condition += " AND available >= :give AND quota >= :give"
            values[":give"] = -moved
        first_slice = "SET pool_quota = if_not_exists(pool_quota, quota) " if shard == 0 else ""
        tx.update(
            f"{REBALANCE_TAG}{shard}",
            keys.counter_shard(scope.tenant_id, holder, meter, shard),
            f"{first_slice}ADD quota :d, available :d, rev :one",
            condition=condition,
            values=values,
        )
        postings.append(Posting("rebalance", meter, period.key, Delta(quota=moved), shard=shard))
    add_entries(tx, scope, holder, postings, ref=f"shard:{target}")
    try:
        scope.store.transact(tx)
    except TransactionCancelled:
        return  # another writer moved first: the write goes again on what the shards hold now


def spread(available: Sequence[int], target: int, taken: int) -> list[int]:
    """How much room each shard gains (+) or gives (-) so that `target` holds at least `taken` and the others
    move towards a fair share of the whole: first from what donors hold above a fair share, then (only if the
    target still lacks `taken`) from the richest donors' remaining room. The moves sum to 0; no donor gives more
    than it has. Assumes the shards together hold `taken`."""
    fair = max(0, sum(available)) // len(available)
    spare = [max(0, room - fair) if shard != target else 0 for shard, room in enumerate(available)]
    wants = [max(0, fair - room) for room in available]
    wants[target] = max(0, max(taken, fair) - available[target])
    moves = [0] * len(available)
    receivers = [target, *sorted((k for k in range(len(available)) if k != target), key=lambda k: -wants[k])]
    for receiver in receivers:
        for donor in sorted(range(len(available)), key=lambda k: -spare[k]):
            if wants[receiver] == 0:
                break
            amount = min(spare[donor], wants[receiver])
            spare[donor] -= amount
            wants[receiver] -= amount
            moves[donor] -= amount
            moves[receiver] += amount
    short = taken - available[target] - moves[target]
    for donor in sorted((k for k in range(len(available)) if k != target), key=lambda k: -(available[k] + moves[k])):
        amount = min(max(0, available[donor] + moves[donor]), max(0, short))
        moves[donor] -= amount
        moves[target] += amount
        short -= amount
    return moves


def most_used(scope: Scope, chain: Sequence[Level], meters: Sequence[str]) -> dict[str, int]:
    """For each sharded pool in `chain`, the shard that used the most of `meters` this period (where a refund
    gives back; one BatchGetItem per pool). A refund larger than that shard's usage is refused as on any
    counter that used less, even when the pool's other shards used the rest: refund in parts."""
    out: dict[str, int] = {}
    for level in chain:
        limits = level.limits
        taken = [m for m in meters if m in limits.limits]
        if limits.pool_shards == 1 or not taken:
            continue
        found = read_shards(scope, level.holder, dict.fromkeys(taken, limits.pool_shards), start=0)
        used = [0] * limits.pool_shards
        for meter in taken:
            period_key = period_at(limits.limits[meter].period, scope.now, limits.anchoring).key
            for shard, item in enumerate(found[meter]):
                if _current(item, period_key, limits.limits_version) and item is not None:
                    used[shard] += item["used"]
        out[level.holder] = max(range(limits.pool_shards), key=lambda k: used[k])
    return out


def _current(item: Item | None, period_key: str, limits_version: int) -> bool:
    return item is not None and item["period_key"] == period_key and item["limits_version"] == limits_version


def read_shards(
    scope: Scope, holder: str, shards_of: dict[str, int], *, start: int = 1
) -> dict[str, list[Item | None]]:
    """Shards `start`.. of each meter's counter (meter -> its shard count), in as few BatchGetItems as fit
    (one for up to BATCH_GET_KEYS_MAX shard items)."""
    wanted = [(meter, shard) for meter, shards in shards_of.items() for shard in range(start, shards)]
    found: list[Item | None] = []
    for chunk in _chunks(wanted, BATCH_GET_KEYS_MAX):
        found.extend(
            scope.store.get_many([keys.counter_shard(scope.tenant_id, holder, meter, k) for meter, k in chunk])
        )
    out: dict[str, list[Item | None]] = {meter: [] for meter in shards_of}
    for (meter, _), item in zip(wanted, found, strict=True):
        out[meter].append(item)
    return out


def _chunks(pairs: list[tuple[str, int]], size: int) -> Iterator[list[tuple[str, int]]]:
    for index in range(0, len(pairs), size):
        yield pairs[index : index + size]


def whole_pool(scope: Scope, holder: str, limits: UserLimits, counters: dict[str, Counter]) -> dict[str, Counter]:
    """Each meter's pool as one counter: shard 0 (`counters`) plus the other shards, read in one BatchGetItem
    (a shard not opened in this period yet shown as it will open). Unsharded: `counters` itself, no read."""
    if limits.pool_shards == 1:
        return counters
    found = read_shards(scope, holder, dict.fromkeys(counters, limits.pool_shards))
    out: dict[str, Counter] = {}
    for meter, shard0 in counters.items():
        limit = shard_limit(limits.limits[meter])
        period = period_at(limit.period, scope.now, limits.anchoring)
        shards = [shard0]
        for item in found[meter]:
            stored = items.counter_from(item) if item is not None else None
            if stored is not None and stored.period_key == period.key:
                shards.append(stored)
            else:
                shards.append(open_period(stored, limit, period, limits.limits_version, limits.anchoring).current)
        out[meter] = pooled(shards)
    return out
