"""The write loop every balance change goes through: build one transaction from the user's limits, commit
it, and read a refusal's CancellationReasons to tell "no room" from "stale counter, prepare and retry" from
"conflict, retry" and "this Idempotency-Key was used before"."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from quotaflow.ledger.counters import Guard, Posting
from quotaflow.ledger.errors import Conflict, InsufficientQuota, InvariantViolation, Unavailable
from quotaflow.services import pools
from quotaflow.services.idempotency import IdempotencyClaim, add_claim, replay_if_taken
from quotaflow.services.levels import Level
from quotaflow.services.scope import Scope, UserLimits, pause_before_retry
from quotaflow.services.users import current_limits, prepare
from quotaflow.services.writes import COUNTER_TAG, add_counter_change, add_entries, counter_tag
from quotaflow.store import keys
from quotaflow.store.table import Item, Transaction, TransactionCancelled

WRITE_ATTEMPTS_MAX = 10


@dataclass
class Change:
    """What one use case writes: counter postings (with their ledger entries) and any other items."""

    postings: list[Posting]
    ref: str | None
    properties: dict[str, Any] | None = None
    extra: Callable[[Transaction], None] = field(default=lambda tx: None)
    revs: dict[str, int] = field(default_factory=dict)  # meters whose change was computed from this counter rev
    levels: list[Level] = field(default_factory=list)  # the accounts the postings spread to (their limits)
    response: dict[str, Any] | None = None  # the response to store under the Idempotency-Key, when it depends on
    # what the change was built from (otherwise the body given to `write`)


Build = Callable[[UserLimits], Change]
OnCancel = Callable[[TransactionCancelled], bool | None]  # raises the refusal's domain error; True: build again


def write(
    scope: Scope,
    user_id: str,
    build: Build,
    *,
    claim: IdempotencyClaim | None,
    body: dict[str, Any],
    on_cancel: OnCancel | None = None,
    reclaim: Callable[[], int] | None = None,
    attempts_max: int = WRITE_ATTEMPTS_MAX,
    patience_s: float = 0.0,
    route: pools.Route | None = None,
) -> None:
    """Commit `build(limits)` as one transaction, retrying on stale counters and conflicts: at least
    `attempts_max` tries, and more while `patience_s` has not run out since the first (writers racing on one
    item each win in turn, so a loser's wait is bounded by the racers' number, not by a count of tries).

    `reclaim`, when given, is tried once when a hard meter lacks room: it expires the user's overdue
    reservations and says how many; if any came back, the write is tried again before answering 402.
    `on_cancel` reads a refusal first: it raises what the refusal means, or answers True when what the change
    was built from moved (a reservation drawn on meanwhile) and the change must be built again.
    `route`, given to the builder's postings too, says which shard of a sharded pool the write takes; a shard
    that lacked room moves it on to another shard or rebalances the pool (services/pools.py)."""
    reclaimable = reclaim is not None
    for attempt in _attempts(attempts_max, patience_s):
        limits = current_limits(scope, user_id)
        change = build(limits)
        tx = scope.store.transaction()
        versions = {None: limits.limits_version} | {
            level.holder: level.limits.limits_version for level in change.levels
        }
        for posting in change.postings:
            rev = change.revs.get(posting.meter) if posting.holder is None else None
            add_counter_change(tx, scope, user_id, posting, versions[posting.holder], rev)
        add_entries(tx, scope, user_id, change.postings, change.ref, change.properties)
        change.extra(tx)
        add_claim(tx, scope, claim, body if change.response is None else change.response)
        try:
            scope.store.transact(tx)
            return
        except TransactionCancelled as cancelled:
            replay_if_taken(claim, cancelled)
            if on_cancel is not None and on_cancel(cancelled):
                pause_before_retry(attempt + 1)
                continue
            try:
                if route is not None and pools.reroute(scope, cancelled, _by_tag(change), _pool_limits(change), route):
                    continue  # another shard of a sharded pool, or the same after a rebalance
                stale, moved = _refused_postings(cancelled, change, limits)
            except InsufficientQuota:
                if not reclaimable or reclaim is None or reclaim() == 0:
                    raise
                reclaimable = False
                continue
            if stale:
                for (holder, shard), meters in stale.items():
                    prepare(scope, holder or user_id, meters, shard=shard)
            elif moved or cancelled.conflicted or not cancelled.reasons:
                pause_before_retry(attempt + 1)
            else:
                raise Unavailable(f"write refused for an unknown reason: {cancelled}") from cancelled
    raise Unavailable("too much contention on this user's counters; retry shortly")


def _attempts(attempts_max: int, patience_s: float) -> Iterator[int]:
    started = time.monotonic()
    attempt = 0
    while attempt < attempts_max or time.monotonic() - started < patience_s:
        yield attempt
        attempt += 1


def _by_tag(change: Change) -> dict[str, Posting]:
    return {counter_tag(posting): posting for posting in change.postings}


def _pool_limits(change: Change) -> dict[str, UserLimits]:
    return {level.holder: level.limits for level in change.levels}


def _refused_postings(
    cancelled: TransactionCancelled, change: Change, limits: UserLimits
) -> tuple[dict[tuple[str | None, int], list[str]], bool]:
    """Meters whose counter was stale (missing, older period, older limits), per level (None: the user) and
    shard, and whether a counter the change was computed from moved meanwhile. A guard that failed on a current,
    unmoved counter is final: raise the domain error it stands for."""
    by_tag = _by_tag(change)
    versions = _versions(limits, change)
    stale: dict[tuple[str | None, int], list[str]] = {}
    moved = False
    for reason in cancelled.failed(COUNTER_TAG):
        posting = by_tag[reason.tag]
        meter = posting.meter
        if _is_stale(reason.item, posting, versions[posting.holder]):
            stale.setdefault((posting.holder, posting.shard), []).append(meter)
        elif posting.holder is None and meter in change.revs and (reason.item or {}).get("rev") != change.revs[meter]:
            moved = True
        else:
            _raise_guard(reason.item or {}, posting)
    return stale, moved


def _versions(limits: UserLimits, change: Change) -> dict[str | None, int]:
    """The limits version each level's counter must carry (None: the user's)."""
    return {None: limits.limits_version} | {level.holder: level.limits.limits_version for level in change.levels}


def _is_stale(item: Item | None, posting: Posting, limits_version: int) -> bool:
    return item is None or item["period_key"] != posting.period_key or item["limits_version"] != limits_version


def _raise_guard(item: Item, posting: Posting) -> None:
    if posting.guard is Guard.ROOM_IF_HARD:
        account_id = keys.account_of(posting.holder) if posting.holder else None
        raise InsufficientQuota(posting.meter, -posting.delta.available, item["available"], account_id)
    if posting.guard is Guard.USED_COVERS:
        raise Conflict(
            f"{posting.meter}: cannot refund {-posting.delta.used}, only {item['used']} used this period",
            field="lines",
            meter=posting.meter,
        )
    raise InvariantViolation(f"{posting.meter}: a hold of {-posting.delta.reserved} exceeds reserved {item}")
