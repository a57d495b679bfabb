"""Reserve, commit, release, expire; direct usage, refunds, credits; usage and can-use."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from quotaflow.ledger import reservation_ids
from quotaflow.ledger.amounts import Line
from quotaflow.ledger.counters import Delta, Guard
from quotaflow.ledger.errors import InvalidRequest, NotFound, ReservationExpired, ReservationNotPending
from quotaflow.ledger.periods import iso
from quotaflow.ledger.reservations import Reservation, Settlement, release, settle
from quotaflow.services import credits, engine, levels, pools
from quotaflow.services.idempotency import IdempotencyClaim
from quotaflow.services.scope import Scope, UserLimits
from quotaflow.services.users import current_limits, load_user
from quotaflow.services.views import (
    CommitView,
    EventView,
    RefundView,
    ReleaseView,
    ReservationView,
)
from quotaflow.store import items, keys, sizes
from quotaflow.store.table import Item, Transaction, TransactionCancelled

TTL_GRACE = timedelta(hours=1)  # DynamoDB TTL removes a reservation item this long after it expired
RESERVATION_TAG = "reservation"
RECLAIM_PER_WRITE_MAX = 10  # overdue reservations a refused reserve or event expires inline before retrying
RESERVATION_WRITE_ATTEMPTS_MAX = 40  # writers racing on one reservation (parallel agent steps) each win in turn
RESERVATION_WRITE_PATIENCE_S = 8.0  # ... and for this long at least: inside the API function's 10 s timeout


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
        held=tuple(lines),
    )
    carrying = reservation_ids.with_hold(
        secrets.token_hex(reservation_ids.NONCE_BYTES), user_id, lines, scope.now, ttl_seconds
    )
    ttl_epoch_s = int((reservation.expires_at + TTL_GRACE).timestamp())
    made: list[Reservation] = []
    route = pools.Route(carrying or reservation.reservation_id)  # an id that carries its hold says its shards too

    def build(limits: UserLimits) -> engine.Change:
        changes = [(line.meter, Delta(reserved=line.amount), Guard.ROOM_IF_HARD) for line in lines]
        postings, chain = levels.post(scope, user_id, limits, "reserve", changes, route=route)
        held = replace(
            reservation,
            held_on=levels.holds_by_level(user_id, postings),
            held_shards=levels.held_shards(postings, chain),
        )
        placed, item = _placed(scope, held, carrying if route.at_seed else None, ttl_epoch_s)
        made.append(placed)
        return engine.Change(
            postings,
            placed.reservation_id,
            extra=lambda tx: tx.put(RESERVATION_TAG, item, condition="attribute_not_exists(pk)"),
            levels=chain,
            response=reservation_view(placed, scope).model_dump(mode="json"),
        )

    engine.write(
        scope, user_id, build, claim=claim, body={}, reclaim=lambda: reclaim_overdue(scope, user_id), route=route
    )
    scope.cache.reservations.put((scope.tenant_id, made[-1].reservation_id), made[-1])
    return reservation_view(made[-1], scope)


def _placed(scope: Scope, plain: Reservation, carrying: str | None, ttl_epoch_s: int) -> tuple[Reservation, Item]:
    """The reservation and its item under the id that carries its hold (any container can end it in one call),
    unless none fits or it would make the item cost more write units than a plain id does."""
    plain_item = items.reservation_item(scope.tenant_id, plain, ttl_epoch_s)
    if carrying is None:
        return plain, plain_item
    placed = replace(plain, reservation_id=carrying)
    item = items.reservation_item(scope.tenant_id, placed, ttl_epoch_s)
    if sizes.started_kilobytes(item) > sizes.started_kilobytes(plain_item):
        return plain, plain_item
    return placed, item


def reservation_view(reservation: Reservation, scope: Scope) -> ReservationView:
    return ReservationView(
        reservation_id=reservation.reservation_id,
        status=reservation.status_at(scope.now),
        user_id=reservation.user_id,
        lines=list(reservation.lines),
        drawn=list(reservation.drawn),
        held=list(reservation.held),
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
    """End the reservation with `actual` usage (what was not drawn yet); the rest of the hold comes back."""

    def view(reservation: Reservation, settlement: Settlement) -> CommitView:
        return CommitView(
            reservation_id=reservation_id,
            status="committed",
            committed=list(settlement.committed),
            refunded=list(settlement.refunded),
            overage=list(settlement.overage),
        )

    reservation, assumed = _to_end(scope, reservation_id, {line.meter for line in actual})
    settle(reservation.held, actual)  # a line for a meter the reservation does not hold is refused up front
    return _end(
        scope,
        reservation,
        lambda r: settle(r.held, actual),
        "commit",
        "committed",
        claim,
        view,
        properties,
        assumed=assumed,
    )


def release_reservation(scope: Scope, reservation_id: str, claim: IdempotencyClaim | None) -> ReleaseView:
    def view(reservation: Reservation, settlement: Settlement) -> ReleaseView:
        return ReleaseView(reservation_id=reservation_id, status="released", refunded=list(settlement.refunded))

    reservation, assumed = _to_end(scope, reservation_id, ())
    return _end(scope, reservation, lambda r: release(r.held), "release", "released", claim, view, assumed=assumed)


def expire(scope: Scope, reservation: Reservation) -> bool:
    """The one refund path for overdue reservations: True if this call expired it, False if it had already
    ended (whoever came first won; the holds returned exactly once)."""
    try:
        _end(scope, reservation, lambda r: release(r.held), "expire", "expired", None, lambda r, s: None)
    except (ReservationExpired, ReservationNotPending):
        return False
    return True


TOMBSTONE_KEEP = timedelta(days=7)
TOMBSTONE_TAG = "tombstone"


def reap_deleted(scope: Scope, reservation: Reservation) -> bool:
    """Refund a pending reservation that DynamoDB TTL deleted before anything expired it. The item is gone, so
    the guard is a tombstone in its place, written in the same transaction: a retried stream batch, the
    sweeper or a late commit find no pending reservation and do nothing. True if this call refunded it."""
    ttl_epoch_s = int((scope.now + TOMBSTONE_KEEP).timestamp())
    tombstone = {**items.reservation_item(scope.tenant_id, reservation, ttl_epoch_s), "status": "expired"}
    tombstone["ended_at"] = iso(scope.now)
    for index_attribute in keys.RESERVATION_INDEX_ATTRIBUTES:  # ended: in no index, like any ended reservation
        del tombstone[index_attribute]
    settlement = release(reservation.held)
    route = pools.Route(reservation.reservation_id, fixed=reservation.held_shards)

    def build(limits: UserLimits) -> engine.Change:
        changes = [(c.meter, c.delta, c.guard) for c in settlement.changes]
        postings, chain = levels.post(
            scope, reservation.user_id, limits, "expire", changes, held_on=reservation.held_on, route=route
        )
        return engine.Change(
            postings,
            reservation.reservation_id,
            extra=lambda tx: tx.put(TOMBSTONE_TAG, tombstone, condition="attribute_not_exists(pk)"),
            levels=chain,
        )

    def on_cancel(cancelled: TransactionCancelled) -> None:
        if cancelled.failed(TOMBSTONE_TAG):
            raise ReservationNotPending("the reservation was already ended", status="expired")

    try:
        engine.write(scope, reservation.user_id, build, claim=None, body={}, on_cancel=on_cancel, route=route)
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


def pending_reservation(scope: Scope, reservation_id: str) -> Reservation:
    """The reservation, if it may still end by commit or release. An overdue one is expired on the spot.

    A reservation this container made or last changed is known without a read: the ending transaction's
    conditions (status, deadline, version) decide whether that knowledge still holds. A cached one that looks
    overdue is read again first: another container may have extended it."""
    key = (scope.tenant_id, reservation_id)
    reservation = scope.cache.reservations.get(key)
    if reservation is None or reservation.status_at(scope.now) == "expired":
        reservation = get_reservation(scope, reservation_id)
    status = reservation.status_at(scope.now)
    if status == "expired":
        if reservation.status == "pending":
            expire(scope, reservation)
        raise ReservationExpired(f"reservation {reservation_id} expired at {iso(reservation.expires_at)}")
    if status != "pending":
        raise ReservationNotPending(f"reservation {reservation_id} is already {status}", status=status)
    return reservation


def _to_end(scope: Scope, reservation_id: str, meters: Collection[str]) -> tuple[Reservation, bool]:
    """The reservation a commit or release ends, and whether it is only assumed: one this container made or
    changed last; else, when its id carries its hold and that hold covers `meters`, the reservation as its id says
    it was made (assumed: every field the ending uses becomes a condition of the ending transaction); else read."""
    if scope.cache.reservations.get((scope.tenant_id, reservation_id)) is None:
        made = _as_made(scope, reservation_id)
        if made is not None and made.status_at(scope.now) == "pending" and set(meters) <= _meters(made.held):
            return made, True
    return pending_reservation(scope, reservation_id), False


def _as_made(scope: Scope, reservation_id: str) -> Reservation | None:
    """The reservation as its id says it was made, on the levels a reserve of its meters would hold on now; None
    when the id carries no hold, or its user cannot hold those meters now (the item is read instead)."""
    made = reservation_ids.as_created(reservation_id)
    if made is None:
        return None
    try:
        limits = current_limits(scope, made.user_id)
        meters = [line.meter for line in made.held]
        held_on, shards = levels.holding(scope, made.user_id, limits, meters, pools.Route(reservation_id))
        return replace(made, held_on=held_on, held_shards=shards)
    except (NotFound, InvalidRequest):  # an unknown user, a meter its plans no longer have: not a common case
        return None


def _meters(lines: tuple[Line, ...]) -> set[str]:
    return {line.meter for line in lines}


def version_guard(reservation: Reservation) -> tuple[str, dict[str, Any]]:
    """The condition that the reservation's holds are still those `reservation` shows (no draw or increase
    landed since); made-before-draws items carry no version, like a fresh one."""
    if reservation.version == 0:
        return "attribute_not_exists(version)", {}
    return "version = :version", {":version": reservation.version}


def hold_guard(reservation: Reservation, *, assumed: bool) -> tuple[str, dict[str, Any]]:
    """`version_guard`, and for a reservation only assumed from its id, that the stored one is what the change
    is built from: its user, what is left of the hold and the levels it holds on."""
    version, values = version_guard(reservation)
    if not assumed:
        return version, values
    held = f"{version} AND user_id = :user_id AND held = :held AND held_on = :held_on"
    values = {
        **values,
        ":user_id": reservation.user_id,
        ":held": items.lines_to(reservation.held),
        ":held_on": items.held_on_to(reservation.held_on),
    }
    if not reservation.held_shards:
        return f"{held} AND attribute_not_exists(held_shards)", values
    return f"{held} AND held_shards = :held_shards", {**values, ":held_shards": reservation.held_shards}


def refusal_of(
    scope: Scope, reservation_id: str, reason_item: Item | None, *, expiring: bool = False, assumed: bool = False
) -> Reservation:
    """Why a write on a pending reservation was refused, from the item as it stood: raise the domain error, or
    return the reservation as it is now when it may still take the write (it moved: build the change again).
    One found overdue but not expired yet is expired on the spot, as `pending_reservation` does."""
    if reason_item is None:
        if assumed:  # only its id was ever seen: no such reservation, as a read would have said
            raise NotFound(f"reservation {reservation_id!r} does not exist", reservation_id=reservation_id)
        raise ReservationNotPending(f"reservation {reservation_id} is gone", status="expired")
    moved = items.reservation_from(reason_item)
    now_status = moved.status_at(scope.now)
    if expiring and now_status == "pending":
        raise ReservationNotPending("reservation is not overdue yet", status="pending")
    if now_status == "expired" and not (expiring and moved.status == "pending"):
        if moved.status == "pending":
            expire(scope, moved)
        raise ReservationExpired(f"reservation {reservation_id} expired")
    if now_status not in ("pending", "expired"):
        raise ReservationNotPending(f"reservation {reservation_id} is already {now_status}", status=now_status)
    return moved


V = TypeVar("V")


class _HeldForAnother(Exception):
    """The item under an assumed reservation's id holds for another user than the id says."""

    def __init__(self, stored: Reservation) -> None:
        super().__init__(f"reservation {stored.reservation_id} holds for another user than its id says")
        self.stored = stored


def _end(
    scope: Scope,
    reservation: Reservation,
    settle_with: Callable[[Reservation], Settlement],
    kind: str,
    status: str,
    claim: IdempotencyClaim | None,
    view_of: Callable[[Reservation, Settlement], V],
    properties: dict[str, Any] | None = None,
    *,
    assumed: bool = False,
) -> V:
    """End a pending reservation exactly once: the status flip and the counter changes share one transaction
    guarded by `status = pending` and the hold's version, so a racing commit, release, expiry or draw can win
    only once, and what returns is exactly what is left of the hold. An `assumed` reservation (known only from
    its id) is guarded by everything the change is built from; a refusal rebuilds it from the stored item."""
    key = keys.reservation(scope.tenant_id, reservation.reservation_id)
    now_iso = iso(scope.now)
    expiring = status == "expired"
    # commit/release need the reservation unexpired; expiry needs it overdue
    time_guard = "expires_at <= :now" if expiring else "expires_at > :now"
    current = [reservation]  # after a refusal: the item as it stood, no longer an assumption
    outcome: list[V] = []
    route = pools.Route(reservation.reservation_id, fixed=reservation.held_shards)

    def build(limits: UserLimits) -> engine.Change:
        route.fixed = current[-1].held_shards
        settlement = settle_with(current[-1])
        settled = {"committed": items.lines_to(settlement.committed)} if settlement.committed else {}
        view = view_of(current[-1], settlement)
        outcome.append(view)
        changes = [(c.meter, c.delta, c.guard) for c in settlement.changes]
        hold, hold_values = hold_guard(current[-1], assumed=assumed and len(current) == 1)

        def mark_ended(tx: Transaction) -> None:
            tx.update(
                RESERVATION_TAG,
                key,
                "SET #status = :status, ended_at = :now, held = :none"
                + "".join(f", {k} = :{k}" for k in settled)
                + " REMOVE "
                + ", ".join(keys.RESERVATION_INDEX_ATTRIBUTES),
                condition=f"#status = :pending AND {time_guard} AND {hold}",
                names={"#status": "status"},
                values={
                    ":status": status,
                    ":now": now_iso,
                    ":pending": "pending",
                    ":none": [],
                    **hold_values,
                    **{f":{k}": v for k, v in settled.items()},
                },
            )

        user_id = current[-1].user_id
        postings, chain = levels.post(scope, user_id, limits, kind, changes, held_on=current[-1].held_on, route=route)
        return engine.Change(
            postings,
            reservation.reservation_id,
            properties,
            extra=mark_ended,
            response=view.model_dump(mode="json") if isinstance(view, BaseModel) else None,
            levels=chain,
        )

    def on_cancel(cancelled: TransactionCancelled) -> bool:
        for reason in cancelled.failed(RESERVATION_TAG):
            was_assumed = assumed and len(current) == 1
            stored = refusal_of(scope, reservation.reservation_id, reason.item, expiring=expiring, assumed=was_assumed)
            if stored.user_id != current[-1].user_id:
                raise _HeldForAnother(stored)
            current.append(stored)
            return True
        return False

    try:
        engine.write(
            scope,
            reservation.user_id,
            build,
            claim=claim,
            body={},
            on_cancel=on_cancel,
            attempts_max=RESERVATION_WRITE_ATTEMPTS_MAX,
            patience_s=RESERVATION_WRITE_PATIENCE_S,
            route=route,
        )
    except _HeldForAnother as held:  # an item's user never changes: the stored reservation ends on its own user
        return _end(scope, held.stored, settle_with, kind, status, claim, view_of, properties)
    finally:
        scope.cache.reservations.forget((scope.tenant_id, reservation.reservation_id))
    return outcome[-1]


def track(
    scope: Scope,
    user_id: str,
    lines: list[Line],
    properties: dict[str, Any] | None,
    claim: IdempotencyClaim | None,
) -> EventView:
    view = EventView(event_id=scope.new_id("evt"))
    route = pools.Route(view.event_id)

    def build(limits: UserLimits) -> engine.Change:
        changes = [(line.meter, Delta(used=line.amount), Guard.ROOM_IF_HARD) for line in lines]
        postings, chain = levels.post(scope, user_id, limits, "event", changes, route=route)
        return engine.Change(postings, view.event_id, properties, levels=chain)

    engine.write(
        scope,
        user_id,
        build,
        claim=claim,
        body=view.model_dump(mode="json"),
        reclaim=lambda: reclaim_overdue(scope, user_id),
        route=route,
    )
    return view


def refund(
    scope: Scope, user_id: str, lines: list[Line], reason: str | None, claim: IdempotencyClaim | None
) -> RefundView:
    view = RefundView(refund_id=scope.new_id("rfd"))
    route = pools.Route(view.refund_id, fixed={})

    def build(limits: UserLimits) -> engine.Change:
        changes = [(line.meter, Delta(used=-line.amount), Guard.USED_COVERS) for line in lines]
        route.fixed = {}
        postings, chain = levels.post(scope, user_id, limits, "refund", changes, route=route)
        route.fixed = pools.most_used(scope, chain, [line.meter for line in lines])
        if route.fixed:  # a sharded pool gives back from the shard that used the most
            postings, chain = levels.post(scope, user_id, limits, "refund", changes, route=route)
        books = credits.credit_events(scope, user_id, load_user(scope, user_id), postings)  # a refund un-spends
        return engine.Change(
            postings,
            view.refund_id,
            {"reason": reason} if reason else None,
            extra=books.write,
            revs=books.revs,
            levels=chain,
        )

    engine.write(scope, user_id, build, claim=claim, body=view.model_dump(mode="json"))
    return view
