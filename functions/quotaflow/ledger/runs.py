"""Runs: one reservation drawn on step by step, topped up and kept alive — the pure rules.

A draw moves usage that happened from the hold to `used` and keeps the reservation open; what a draw asks
beyond what is left of the hold is recorded all the same (the usage happened) and comes from the balance, as a
commit's overage does. An increase is a bigger hold, guarded like a new reserve. An extension moves the deadline,
never past a reservation's lifetime."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from quotaflow.ledger.amounts import Line
from quotaflow.ledger.counters import Delta, Guard
from quotaflow.ledger.errors import InvalidRequest
from quotaflow.ledger.reservations import MeterChange, Reservation

LIFETIME_MAX = timedelta(days=7)  # a reservation lives at most this long from creation, however often extended


@dataclass(frozen=True)
class Draw:
    changes: tuple[MeterChange, ...]
    drawn: tuple[Line, ...]  # running totals after this draw
    held: tuple[Line, ...]  # what is left of the hold after it
    overage: tuple[Line, ...]  # what this draw took beyond the hold


def _amounts(lines: tuple[Line, ...]) -> dict[str, int]:
    return {line.meter: line.amount for line in lines}


def _lines(amounts: dict[str, int]) -> tuple[Line, ...]:
    return tuple(Line(meter=meter, amount=amount) for meter, amount in amounts.items())


def draw(reservation: Reservation, actual: list[Line]) -> Draw:
    held, drawn = _amounts(reservation.held), _amounts(reservation.drawn)
    changes, overage = [], []
    for index, line in enumerate(actual):
        if line.meter not in held:
            raise InvalidRequest(f"the reservation holds no {line.meter!r}", field=f"lines[{index}].meter")
        from_hold = min(line.amount, held[line.meter])
        changes.append(MeterChange(line.meter, Delta(used=line.amount, reserved=-from_hold), Guard.RESERVED_COVERS))
        held[line.meter] -= from_hold
        drawn[line.meter] = drawn.get(line.meter, 0) + line.amount
        if line.amount > from_hold:
            overage.append(Line(meter=line.meter, amount=line.amount - from_hold))
    return Draw(tuple(changes), _lines(drawn), _lines(held), tuple(overage))


def increase(reservation: Reservation, more: list[Line]) -> tuple[tuple[MeterChange, ...], Reservation]:
    """The counter changes of a bigger hold (a meter not held yet joins it), and the reservation after."""
    held, total = _amounts(reservation.held), _amounts(reservation.lines)
    changes = []
    for line in more:
        changes.append(MeterChange(line.meter, Delta(reserved=line.amount), Guard.ROOM_IF_HARD))
        held[line.meter] = held.get(line.meter, 0) + line.amount
        total[line.meter] = total.get(line.meter, 0) + line.amount
    after = replace(reservation, lines=_lines(total), held=_lines(held), version=reservation.version + 1)
    return tuple(changes), after


def extended_until(reservation: Reservation, now: datetime, ttl_seconds: int) -> datetime:
    """The new deadline, now + ttl; past the lifetime from creation it is an input error."""
    expires_at = now + timedelta(seconds=ttl_seconds)
    if expires_at > reservation.created_at + LIFETIME_MAX:
        latest = int((reservation.created_at + LIFETIME_MAX - now).total_seconds())
        raise InvalidRequest(
            f"a reservation lives at most {LIFETIME_MAX.days} days from creation: ttl_seconds may be at most "
            f"{max(0, latest)} now",
            field="ttl_seconds",
        )
    return expires_at
