"""The write loop every balance change goes through: build one transaction from the user's limits, commit
it, and read a refusal's CancellationReasons to tell "no room" from "stale counter, prepare and retry" from
"conflict, retry" and "this Idempotency-Key was used before"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quotaflow.ledger.counters import Guard, Posting
from quotaflow.ledger.errors import Conflict, InsufficientQuota, InvariantViolation, Unavailable
from quotaflow.services.idempotency import IdempotencyClaim, add_claim, replay_if_taken
from quotaflow.services.scope import Scope, UserLimits, pause_before_retry
from quotaflow.services.users import current_limits, prepare
from quotaflow.services.writes import COUNTER_TAG, add_counter_change, add_entries
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


Build = Callable[[UserLimits], Change]
OnCancel = Callable[[TransactionCancelled], None]


def write(
    scope: Scope,
    user_id: str,
    build: Build,
    *,
    claim: IdempotencyClaim | None,
    body: dict[str, Any],
    on_cancel: OnCancel | None = None,
    reclaim: Callable[[], int] | None = None,
) -> None:
    """Commit `build(limits)` as one transaction, retrying on stale counters and conflicts (bounded).

    `reclaim`, when given, is tried once when a hard meter lacks room: it expires the user's overdue
    reservations and says how many; if any came back, the write is tried again before answering 402."""
    reclaimable = reclaim is not None
    for attempt in range(WRITE_ATTEMPTS_MAX):
        limits = current_limits(scope, user_id)
        change = build(limits)
        tx = scope.store.transaction()
        for posting in change.postings:
            add_counter_change(tx, scope, user_id, posting, limits.limits_version, change.revs.get(posting.meter))
        add_entries(tx, scope, user_id, change.postings, change.ref, change.properties)
        change.extra(tx)
        add_claim(tx, scope, claim, body)
        try:
            scope.store.transact(tx)
            return
        except TransactionCancelled as cancelled:
            replay_if_taken(claim, cancelled)
            if on_cancel is not None:
                on_cancel(cancelled)
            try:
                stale, moved = _refused_postings(cancelled, change, limits)
            except InsufficientQuota:
                if not reclaimable or reclaim is None or reclaim() == 0:
                    raise
                reclaimable = False
                continue
            if stale:
                prepare(scope, user_id, stale)
            elif moved or cancelled.conflicted or not cancelled.reasons:
                pause_before_retry(attempt + 1)
            else:
                raise Unavailable(f"write refused for an unknown reason: {cancelled}") from cancelled
    raise Unavailable("too much contention on this user's counters; retry shortly")


def _refused_postings(cancelled: TransactionCancelled, change: Change, limits: UserLimits) -> tuple[list[str], bool]:
    """Meters whose counter was stale (missing, older period, older limits), and whether a counter the change
    was computed from moved meanwhile. A guard that failed on a current, unmoved counter is final: raise the
    domain error it stands for."""
    by_meter = {posting.meter: posting for posting in change.postings}
    stale: list[str] = []
    moved = False
    for reason in cancelled.failed(COUNTER_TAG):
        meter = reason.tag.removeprefix(COUNTER_TAG)
        posting = by_meter[meter]
        if _is_stale(reason.item, posting, limits):
            stale.append(meter)
        elif meter in change.revs and (reason.item or {}).get("rev") != change.revs[meter]:
            moved = True
        else:
            _raise_guard(reason.item or {}, posting)
    return stale, moved


def _is_stale(item: Item | None, posting: Posting, limits: UserLimits) -> bool:
    return item is None or item["period_key"] != posting.period_key or item["limits_version"] != limits.limits_version


def _raise_guard(item: Item, posting: Posting) -> None:
    if posting.guard is Guard.ROOM_IF_HARD:
        raise InsufficientQuota(posting.meter, -posting.delta.available, item["available"])
    if posting.guard is Guard.USED_COVERS:
        raise Conflict(
            f"{posting.meter}: cannot refund {-posting.delta.used}, only {item['used']} used this period",
            field="lines",
            meter=posting.meter,
        )
    raise InvariantViolation(f"{posting.meter}: a hold of {-posting.delta.reserved} exceeds reserved {item}")
