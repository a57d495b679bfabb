"""Reserve, commit, release, expire; direct usage, refunds, credits; usage and can-use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from quotaflow.ledger.amounts import Line
from quotaflow.ledger.counters import Counter, Delta, Guard, Posting, open_period
from quotaflow.ledger.errors import InvalidRequest, NotFound, ReservationExpired, ReservationNotPending
from quotaflow.ledger.periods import NO_PERIOD, iso, period_at
from quotaflow.ledger.plans import EffectiveLimit
from quotaflow.ledger.reservations import Reservation, Settlement, release, settle
from quotaflow.services import credits, engine
from quotaflow.services.idempotency import IdempotencyClaim
from quotaflow.services.scope import Scope, UserLimits
from quotaflow.services.users import load_user
from quotaflow.services.views import (
    CanUseLinesView,
    CanUseView,
    CommitView,
    CounterView,
    EventView,
    MeterAllowance,
    RefundView,
    ReleaseView,
    ReservationView,
    UsageView,
)
from quotaflow.store import items, keys
from quotaflow.store.table import Transaction, TransactionCancelled

TTL_GRACE = timedelta(hours=1)  # DynamoDB TTL removes a reservation item this long after it expired
RESERVATION_TAG = "reservation"
RECLAIM_PER_WRITE_MAX = 10  # overdue reservations a refused reserve or event expires inline before retrying


def _limit(limits: UserLimits, meter: str, field: str, *, ending: bool = False) -> EffectiveLimit:
    """The meter's limit; a meter the plan lacks (or retired, unless a hold is ending) is an input error."""
    limit = limits.limits.get(meter)
    if limit is None or (limit.retired and not ending):
        raise InvalidRequest(f"the user's plan has no meter {meter!r}", field=field)
    return limit


def _postings(
    limits: UserLimits,
    kind: str,
    changes: Sequence[tuple[str, Delta, Guard]],
    scope: Scope,
    field: str = "lines",
    *,
    ending: bool = False,
) -> list[Posting]:
    postings = []
    for index, (meter, delta, guard) in enumerate(changes):
        limit = _limit(limits, meter, f"{field}[{index}].meter", ending=ending)
        postings.append(Posting(kind, meter, period_at(limit.period, scope.now, limits.anchoring).key, delta, guard))
    return postings


def reserve(
    scope: Scope, user_id: str, lines: list[Line], ttl_seconds: int, claim: IdempotencyClaim | None
) -> ReservationView:
    reservation = Reservation(
        reservation_id=scope.new_id("rsv"),
        user_id=user_id,
        lines=tuple(lines),
        status="pending",
        created_at=scope.now,
        expires_at=scope.now + timedelta(seconds=ttl_seconds),
    )
    view = reservation_view(reservation, scope)
    ttl_epoch_s = int((reservation.expires_at + TTL_GRACE).timestamp())

    def build(limits: UserLimits) -> engine.Change:
        changes = [(line.meter, Delta(reserved=line.amount), Guard.ROOM_IF_HARD) for line in lines]
        return engine.Change(
            _postings(limits, "reserve", changes, scope),
            reservation.reservation_id,
            extra=lambda tx: tx.put(
                RESERVATION_TAG,
                items.reservation_item(scope.tenant_id, reservation, ttl_epoch_s),
                condition="attribute_not_exists(pk)",
            ),
        )

    engine.write(
        scope,
        user_id,
        build,
        claim=claim,
        body=view.model_dump(mode="json"),
        reclaim=lambda: reclaim_overdue(scope, user_id),
    )
    scope.cache.reservations.put((scope.tenant_id, reservation.reservation_id), reservation)
    return view


def reservation_view(reservation: Reservation, scope: Scope) -> ReservationView:
    return ReservationView(
        reservation_id=reservation.reservation_id,
        status=reservation.status_at(scope.now),
        user_id=reservation.user_id,
        lines=list(reservation.lines),
        created_at=iso(reservation.created_at),
        expires_at=iso(reservation.expires_at),
    )


def get_reservation(scope: Scope, reservation_id: str) -> Reservation:
    item = scope.store.get(keys.reservation(scope.tenant_id, reservation_id))
    if item is None:
        raise NotFound(f"reservation {reservation_id!r} does not exist", reservation_id=reservation_id)
    return items.reservation_from(item)


def commit(
    scope: Scope,
    reservation_id: str,
    actual: list[Line],
    claim: IdempotencyClaim | None,
    properties: dict[str, Any] | None = None,
) -> CommitView:
    reservation = _pending(scope, reservation_id)
    settlement = settle(reservation.lines, actual)
    view = CommitView(
        reservation_id=reservation_id,
        status="committed",
        committed=list(settlement.committed),
        refunded=list(settlement.refunded),
        overage=list(settlement.overage),
    )
    _end(scope, reservation, settlement, "commit", "committed", claim, view.model_dump(mode="json"), properties)
    return view


def release_reservation(scope: Scope, reservation_id: str, claim: IdempotencyClaim | None) -> ReleaseView:
    reservation = _pending(scope, reservation_id)
    settlement = release(reservation.lines)
    view = ReleaseView(reservation_id=reservation_id, status="released", refunded=list(settlement.refunded))
    _end(scope, reservation, settlement, "release", "released", claim, view.model_dump(mode="json"))
    return view


def expire(scope: Scope, reservation: Reservation) -> bool:
    """The one refund path for overdue reservations: True if this call expired it, False if it had already
    ended (whoever came first won; the holds returned exactly once)."""
    try:
        _end(scope, reservation, release(reservation.lines), "expire", "expired", None, {})
    except (ReservationExpired, ReservationNotPending):
        return False
    return True


TOMBSTONE_KEEP = timedelta(days=7)
TOMBSTONE_TAG = "tombstone"


def reap_deleted(scope: Scope, reservation: Reservation) -> bool:
    """Refund a pending reservation that DynamoDB TTL deleted before anything expired it. The item is gone, so
    the guard is a tombstone in its place, written in the same transaction: a retried stream batch, the
    sweeper or a late commit find no pending reservation and do nothing. True if this call refunded it."""
    tombstone = {
        **keys.reservation(scope.tenant_id, reservation.reservation_id),
        "reservation_id": reservation.reservation_id,
        "user_id": reservation.user_id,
        "lines": items.lines_to(reservation.lines),
        "status": "expired",
        "created_at": iso(reservation.created_at),
        "expires_at": iso(reservation.expires_at),
        "ended_at": iso(scope.now),
        "ttl": int((scope.now + TOMBSTONE_KEEP).timestamp()),
    }
    settlement = release(reservation.lines)

    def build(limits: UserLimits) -> engine.Change:
        changes = [(c.meter, c.delta, c.guard) for c in settlement.changes]
        return engine.Change(
            _postings(limits, "expire", changes, scope, ending=True),
            reservation.reservation_id,
            extra=lambda tx: tx.put(TOMBSTONE_TAG, tombstone, condition="attribute_not_exists(pk)"),
        )

    def on_cancel(cancelled: TransactionCancelled) -> None:
        if cancelled.failed(TOMBSTONE_TAG):
            raise ReservationNotPending("the reservation was already ended", status="expired")

    try:
        engine.write(scope, reservation.user_id, build, claim=None, body={}, on_cancel=on_cancel)
    except ReservationNotPending:
        return False
    return True


def reclaim_overdue(scope: Scope, user_id: str) -> int:
    """Lazy expiry: expire up to RECLAIM_PER_WRITE_MAX of the user's overdue reservations; how many this did."""
    page = scope.store.query(
        keys.user_partition(scope.tenant_id, user_id),
        "",
        index=keys.GSI_USER_HOLDS,
        sk_below=f"{iso(scope.now)}#~",
        limit=RECLAIM_PER_WRITE_MAX,
    )
    return sum(expire(scope, items.reservation_from(item)) for item in page.items)


def _pending(scope: Scope, reservation_id: str) -> Reservation:
    """The reservation, if it may still end by commit or release. An overdue one is expired on the spot.

    A reservation made on this container is known without a read: its holds never change, and the ending
    transaction's condition decides whether it is still pending."""
    reservation = scope.cache.reservations.get((scope.tenant_id, reservation_id)) or get_reservation(
        scope, reservation_id
    )
    status = reservation.status_at(scope.now)
    if status == "expired":
        if reservation.status == "pending":
            expire(scope, reservation)
        raise ReservationExpired(f"reservation {reservation_id} expired at {iso(reservation.expires_at)}")
    if status != "pending":
        raise ReservationNotPending(f"reservation {reservation_id} is already {status}", status=status)
    return reservation


def _end(
    scope: Scope,
    reservation: Reservation,
    settlement: Settlement,
    kind: str,
    status: str,
    claim: IdempotencyClaim | None,
    body: dict[str, Any],
    properties: dict[str, Any] | None = None,
) -> None:
    """End a pending reservation exactly once: the status flip and the counter changes share one transaction
    guarded by `status = pending`, so a racing commit, release or expiry can win only once."""
    key = keys.reservation(scope.tenant_id, reservation.reservation_id)
    now_iso = iso(scope.now)
    expiring = status == "expired"
    # commit/release need the reservation unexpired; expiry needs it overdue
    time_guard = "expires_at <= :now" if expiring else "expires_at > :now"
    settled = {"committed": items.lines_to(settlement.committed)} if settlement.committed else {}

    def build(limits: UserLimits) -> engine.Change:
        changes = [(c.meter, c.delta, c.guard) for c in settlement.changes]

        def mark_ended(tx: Transaction) -> None:
            tx.update(
                RESERVATION_TAG,
                key,
                "SET #status = :status, ended_at = :now"
                + "".join(f", {k} = :{k}" for k in settled)
                + " REMOVE "
                + ", ".join(keys.RESERVATION_INDEX_ATTRIBUTES),
                condition=f"#status = :pending AND {time_guard}",
                names={"#status": "status"},
                values={
                    ":status": status,
                    ":now": now_iso,
                    ":pending": "pending",
                    **{f":{k}": v for k, v in settled.items()},
                },
            )

        return engine.Change(
            _postings(limits, kind, changes, scope, ending=True),
            reservation.reservation_id,
            properties,
            extra=mark_ended,
        )

    def on_cancel(cancelled: TransactionCancelled) -> None:
        for reason in cancelled.failed(RESERVATION_TAG):
            now_status = (reason.item or {}).get("status", "pending")
            if now_status == "expired" and not expiring:
                raise ReservationExpired(f"reservation {reservation.reservation_id} expired")
            if now_status != "pending":
                raise ReservationNotPending(
                    f"reservation {reservation.reservation_id} is already {now_status}", status=now_status
                )
            if expiring:
                raise ReservationNotPending("reservation is not overdue yet", status="pending")
            raise ReservationExpired(f"reservation {reservation.reservation_id} expired")

    try:
        engine.write(scope, reservation.user_id, build, claim=claim, body=body, on_cancel=on_cancel)
    finally:
        scope.cache.reservations.forget((scope.tenant_id, reservation.reservation_id))


def track(
    scope: Scope,
    user_id: str,
    lines: list[Line],
    properties: dict[str, Any] | None,
    claim: IdempotencyClaim | None,
) -> EventView:
    view = EventView(event_id=scope.new_id("evt"))

    def build(limits: UserLimits) -> engine.Change:
        changes = [(line.meter, Delta(used=line.amount), Guard.ROOM_IF_HARD) for line in lines]
        return engine.Change(_postings(limits, "event", changes, scope), view.event_id, properties)

    engine.write(
        scope,
        user_id,
        build,
        claim=claim,
        body=view.model_dump(mode="json"),
        reclaim=lambda: reclaim_overdue(scope, user_id),
    )
    return view


def refund(
    scope: Scope, user_id: str, lines: list[Line], reason: str | None, claim: IdempotencyClaim | None
) -> RefundView:
    view = RefundView(refund_id=scope.new_id("rfd"))

    def build(limits: UserLimits) -> engine.Change:
        changes = [(line.meter, Delta(used=-line.amount), Guard.USED_COVERS) for line in lines]
        postings = _postings(limits, "refund", changes, scope)
        books = credits.credit_events(scope, user_id, load_user(scope, user_id), postings)  # a refund un-spends
        return engine.Change(
            postings, view.refund_id, {"reason": reason} if reason else None, extra=books.write, revs=books.revs
        )

    engine.write(scope, user_id, build, claim=claim, body=view.model_dump(mode="json"))
    return view


def current_counters(scope: Scope, user_id: str) -> tuple[UserLimits, dict[str, Counter]]:
    """Each meter's counter as of now, from one Query. A counter whose period has ended is shown as the next
    period will open (allowance renewed, credits and holds carried), without writing anything."""
    state = load_user(scope, user_id)
    counters: dict[str, Counter] = {}
    for meter, limit in state.limits.limits.items():
        if limit.retired:
            continue
        stored = state.counters.get(meter)
        period = period_at(limit.period, scope.now, state.limits.anchoring)
        if stored is not None and stored.counter.period_key == period.key:
            counters[meter] = stored.counter
        else:
            previous = stored.counter if stored else None
            counters[meter] = open_period(
                previous, limit, period, state.limits.limits_version, state.limits.anchoring
            ).current
    return state.limits, counters


def usage(scope: Scope, user_id: str) -> UsageView:
    limits, counters = current_counters(scope, user_id)
    return UsageView(
        user_id=user_id,
        plan_id=limits.plan_id,
        counters=[counter_view(limits.limits[m], c) for m, c in counters.items()],
    )


def counter_view(limit: EffectiveLimit, counter: Counter) -> CounterView:
    return CounterView(
        meter=counter.meter,
        label=limit.label,
        period=limit.period,
        period_start=None if counter.period_key == NO_PERIOD else counter.period_key,
        period_end=counter.period_end,
        enforcement=counter.enforcement,
        quota=counter.quota,
        credits=counter.credits,
        used=counter.used,
        reserved=counter.reserved,
        remaining=counter.remaining,
    )


def can_use(scope: Scope, user_id: str, lines: list[Line], field: str) -> list[MeterAllowance]:
    """Whether each amount fits now: `amount <= remaining` on hard meters, always on soft and none. Consumes nothing."""
    limits, counters = current_counters(scope, user_id)
    allowances = []
    for index, line in enumerate(lines):
        _limit(limits, line.meter, field if field == "meter" else f"{field}[{index}].meter")
        counter = counters[line.meter]
        allowed = counter.enforcement != "hard" or line.amount <= counter.remaining
        allowances.append(MeterAllowance(meter=line.meter, allowed=allowed, remaining=counter.remaining))
    return allowances


def can_use_one(scope: Scope, user_id: str, line: Line) -> CanUseView:
    (allowance,) = can_use(scope, user_id, [line], "meter")
    return CanUseView(allowed=allowance.allowed, remaining=allowance.remaining)


def can_use_lines(scope: Scope, user_id: str, lines: list[Line]) -> CanUseLinesView:
    meters = can_use(scope, user_id, lines, "lines")
    return CanUseLinesView(allowed=all(m.allowed for m in meters), meters=meters)
