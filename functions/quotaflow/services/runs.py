"""Agent runs and long calls: one reservation drawn on step by step, increased and extended before it ends.

Each operation is one transaction guarded like an ending: the reservation must still be pending and in time,
and a draw or an increase lands only on the version of the hold it was computed from (a racing draw, commit or
expiry makes it build again from the item as it now stands, or refuses it once the reservation has ended)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import BaseModel

from quotaflow.ledger.amounts import Line
from quotaflow.ledger.errors import Unavailable
from quotaflow.ledger.periods import iso
from quotaflow.ledger.reservations import MeterChange, Reservation
from quotaflow.ledger.runs import draw as draw_on
from quotaflow.ledger.runs import extended_until
from quotaflow.ledger.runs import increase as increased
from quotaflow.services import engine, levels, pools
from quotaflow.services.idempotency import IdempotencyClaim, add_claim, replay_if_taken
from quotaflow.services.metering import (
    RESERVATION_TAG,
    RESERVATION_WRITE_ATTEMPTS_MAX,
    RESERVATION_WRITE_PATIENCE_S,
    TTL_GRACE,
    get_reservation,
    pending_reservation,
    reclaim_overdue,
    refusal_of,
    reservation_view,
    version_guard,
)
from quotaflow.services.scope import Scope, UserLimits
from quotaflow.services.views import DrawView, ReservationView, StepsView, StepView
from quotaflow.store import items, keys
from quotaflow.store.table import Item, Transaction, TransactionCancelled

STEPS_PAGE_MAX = 100
EXTEND_ATTEMPTS_MAX = 3
V = TypeVar("V", bound=BaseModel)
Plan = Callable[[Reservation], tuple[tuple[MeterChange, ...], Reservation, V, Item | None]]


def draw(
    scope: Scope,
    reservation_id: str,
    actual: list[Line],
    claim: IdempotencyClaim | None,
    properties: dict[str, Any] | None = None,
) -> DrawView:
    """Record usage that happened against the hold and keep the reservation open."""
    reservation = pending_reservation(scope, reservation_id)
    draw_on(reservation, actual)  # a line for a meter the reservation does not hold is refused up front
    step_id = scope.entry_ids(1)[0]

    def plan(current: Reservation) -> tuple[tuple[MeterChange, ...], Reservation, DrawView, Item | None]:
        step = draw_on(current, actual)
        after = replace(current, held=step.held, drawn=step.drawn, version=current.version + 1)
        view = DrawView(
            reservation_id=reservation_id,
            status="pending",
            drawn=list(step.drawn),
            held=list(step.held),
            overage=list(step.overage),
        )
        record = {
            **keys.reservation_step(scope.tenant_id, reservation_id, step_id),
            "step_id": step_id,
            "at": iso(scope.now),
            "lines": items.lines_to(actual),
            "overage": items.lines_to(step.overage),
            "properties": properties or {},
        }
        return step.changes, after, view, record

    return _change_hold(scope, reservation, "draw", plan, claim, properties)


def increase(scope: Scope, reservation_id: str, more: list[Line], claim: IdempotencyClaim | None) -> ReservationView:
    """A bigger hold, guarded like a new reserve: a 402 changes nothing."""
    reservation = pending_reservation(scope, reservation_id)

    def plan(current: Reservation) -> tuple[tuple[MeterChange, ...], Reservation, ReservationView, Item | None]:
        changes, after = increased(current, more)
        return changes, after, reservation_view(after, scope), None

    return _change_hold(scope, reservation, "increase", plan, claim, None)


def _change_hold(
    scope: Scope,
    reservation: Reservation,
    kind: str,
    plan: Plan[V],
    claim: IdempotencyClaim | None,
    properties: dict[str, Any] | None,
) -> V:
    """Write what `plan(reservation)` says — counter changes, the hold after them, the response, an optional
    step record — in one transaction on the version of the hold it was planned from."""
    key = keys.reservation(scope.tenant_id, reservation.reservation_id)
    current = [reservation]
    outcome: list[tuple[Reservation, V]] = []
    route = pools.Route(reservation.reservation_id, fixed=reservation.held_shards)

    def build(limits: UserLimits) -> engine.Change:
        route.fixed = current[-1].held_shards
        changes, after, view, record = plan(current[-1])
        after = replace(after, held_on=_held_on_after(scope, current[-1], after, limits))
        outcome.append((after, view))
        version, version_values = version_guard(current[-1])
        postings, chain = levels.post(
            scope,
            reservation.user_id,
            limits,
            kind,
            [(c.meter, c.delta, c.guard) for c in changes],
            held_on=after.held_on,
            route=route,
        )

        def write(tx: Transaction) -> None:
            tx.update(
                RESERVATION_TAG,
                key,
                "SET held = :held, drawn = :drawn, #lines = :lines, held_on = :held_on ADD version :one",
                condition=f"#status = :pending AND expires_at > :now AND {version}",
                names={"#status": "status", "#lines": "lines"},
                values={
                    ":held": items.lines_to(after.held),
                    ":drawn": items.lines_to(after.drawn),
                    ":lines": items.lines_to(after.lines),
                    ":held_on": items.held_on_to(after.held_on),
                    ":one": 1,
                    ":pending": "pending",
                    ":now": iso(scope.now),
                    **version_values,
                },
            )
            if record is not None:
                tx.put("step", record)

        return engine.Change(
            postings,
            reservation.reservation_id,
            properties,
            extra=write,
            response=view.model_dump(mode="json"),
            levels=chain,
        )

    def on_cancel(cancelled: TransactionCancelled) -> bool:
        for reason in cancelled.failed(RESERVATION_TAG):
            current.append(refusal_of(scope, reservation.reservation_id, reason.item))
            return True
        return False

    cache_key = (scope.tenant_id, reservation.reservation_id)
    try:
        engine.write(
            scope,
            reservation.user_id,
            build,
            claim=claim,
            body={},
            on_cancel=on_cancel,
            reclaim=lambda: reclaim_overdue(scope, reservation.user_id),
            attempts_max=RESERVATION_WRITE_ATTEMPTS_MAX,
            patience_s=RESERVATION_WRITE_PATIENCE_S,
            route=route,
        )
    except Exception:
        scope.cache.reservations.forget(cache_key)
        raise
    after, view = outcome[-1]
    scope.cache.reservations.put(cache_key, after)
    return view


def _held_on_after(
    scope: Scope, before: Reservation, after: Reservation, limits: UserLimits
) -> dict[str, tuple[str, ...]]:
    """The levels and meters the hold is on after an increase: a meter it did not hold yet joins every level
    of the reservation (the user included) whose plan has it."""
    new_meters = [line.meter for line in after.lines if line.meter not in {held.meter for held in before.lines}]
    if not new_meters:
        return before.held_on
    accounts = [holder for holder in before.held_on if holder != before.user_id]
    limits_of = {before.user_id: limits} | {level.holder: level.limits for level in levels.recorded(scope, accounts)}
    grown: dict[str, tuple[str, ...]] = {}
    for holder, holder_limits in limits_of.items():
        taken = [m for m in new_meters if (limit := holder_limits.limits.get(m)) is not None and not limit.retired]
        grown[holder] = before.held_on.get(holder, ()) + tuple(taken)
    return grown


def extend(scope: Scope, reservation_id: str, ttl_seconds: int, claim: IdempotencyClaim | None) -> ReservationView:
    """Move the deadline to now + ttl (a heartbeat), at most a lifetime from creation; the expiry index entry
    and the TTL attribute move with it."""
    reservation = pending_reservation(scope, reservation_id)
    expires_at = extended_until(reservation, scope.now, ttl_seconds)
    after = replace(reservation, expires_at=expires_at)
    view = reservation_view(after, scope)
    expires = iso(expires_at)
    for _ in range(EXTEND_ATTEMPTS_MAX):
        tx = scope.store.transaction()
        tx.update(
            RESERVATION_TAG,
            keys.reservation(scope.tenant_id, reservation_id),
            "SET expires_at = :expires, #ttl = :ttl, gsi2pk = :bucket, gsi2sk = :by_expiry, gsi3sk = :by_user",
            condition="#status = :pending AND expires_at > :now",
            names={"#status": "status", "#ttl": "ttl"},
            values={
                ":expires": expires,
                ":ttl": int((expires_at + TTL_GRACE).timestamp()),
                ":bucket": keys.expiry_bucket(expires, reservation_id),
                ":by_expiry": f"{expires}#{scope.tenant_id}#{reservation_id}",
                ":by_user": f"{expires}#{reservation_id}",
                ":pending": "pending",
                ":now": iso(scope.now),
            },
        )
        add_claim(tx, scope, claim, view.model_dump(mode="json"))
        try:
            scope.store.transact(tx)
        except TransactionCancelled as cancelled:
            replay_if_taken(claim, cancelled)
            for reason in cancelled.failed(RESERVATION_TAG):
                refusal_of(scope, reservation_id, reason.item)  # raises: ended or overdue
            continue
        cached = scope.cache.reservations.get((scope.tenant_id, reservation_id))
        if cached is not None:
            scope.cache.reservations.put((scope.tenant_id, reservation_id), replace(cached, expires_at=expires_at))
        return view
    raise Unavailable("the reservation kept changing; retry the extension")


def steps(scope: Scope, reservation_id: str, limit: int, cursor: str | None) -> StepsView:
    """A reservation's draws, oldest first, with their lines, overage and step properties."""
    get_reservation(scope, reservation_id)  # 404 for an unknown reservation, not an empty list
    page = scope.store.query(
        keys.reservation_partition(scope.tenant_id, reservation_id),
        keys.STEP_PREFIX,
        limit=min(limit, STEPS_PAGE_MAX),
        cursor=cursor,
    )
    return StepsView(
        reservation_id=reservation_id,
        steps=[
            StepView(
                step_id=item["step_id"],
                at=item["at"],
                lines=list(items.lines_from(item["lines"])),
                overage=list(items.lines_from(item["overage"])),
                properties=item["properties"],
            )
            for item in page.items
        ],
        next_cursor=page.cursor,
    )
