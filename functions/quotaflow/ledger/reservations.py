"""Reservations: pending holds on one or more meters that end exactly once.

A hold may be drawn on many times before it ends (agent steps, long streams), increased and extended; `held`
is what is left of it, `drawn` the running total of what was drawn, and `version` counts those changes so that
an ending (or a draw) computed from one state of the hold lands only on that state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from quotaflow.ledger.amounts import Line
from quotaflow.ledger.counters import Delta, Guard
from quotaflow.ledger.errors import InvalidRequest

ReservationStatus = Literal["pending", "committed", "released", "expired"]
TTL_SECONDS_DEFAULT = 900
TTL_SECONDS_MAX = 86_400


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    user_id: str
    lines: tuple[Line, ...]  # held at creation plus increases
    status: ReservationStatus
    created_at: datetime
    expires_at: datetime
    held: tuple[Line, ...]  # what is left of the hold
    drawn: tuple[Line, ...] = ()  # running totals of draws, per meter
    version: int = 0  # draws and increases so far
    held_on: dict[str, tuple[str, ...]] = field(default_factory=dict)  # holder id -> meters: the levels it holds on
    held_shards: dict[str, int] = field(default_factory=dict)  # sharded pool holder id -> the shard it holds on

    def status_at(self, now: datetime) -> ReservationStatus:
        """A pending reservation past its expiry is expired, whether or not anything has reclaimed it yet."""
        if self.status == "pending" and now >= self.expires_at:
            return "expired"
        return self.status


@dataclass(frozen=True)
class MeterChange:
    meter: str
    delta: Delta
    guard: Guard


@dataclass(frozen=True)
class Settlement:
    """The outcome of ending a reservation: per-meter counter changes and what the caller is told."""

    changes: tuple[MeterChange, ...]
    committed: tuple[Line, ...]
    refunded: tuple[Line, ...]
    overage: tuple[Line, ...]


def settle(held: tuple[Line, ...], actual: list[Line]) -> Settlement:
    """Commit `actual` against the holds: a meter left out commits 0; usage above the hold is recorded in full.

    The hold returns exactly once (reserved -= held) and the real usage is added (used += actual): an amount
    above the hold is overage, never dropped, so `available` may go below zero even on a hard meter.
    """
    held_by_meter = {line.meter: line.amount for line in held}
    actual_by_meter: dict[str, int] = {}
    for index, line in enumerate(actual):
        if line.meter not in held_by_meter:
            raise InvalidRequest(f"the reservation holds no {line.meter!r}", field=f"lines[{index}].meter")
        actual_by_meter[line.meter] = line.amount
    changes, committed, refunded, overage = [], [], [], []
    for meter, hold in held_by_meter.items():
        amount = actual_by_meter.get(meter, 0)
        changes.append(MeterChange(meter, Delta(used=amount, reserved=-hold), Guard.RESERVED_COVERS))
        committed.append(Line(meter=meter, amount=amount))
        refunded.append(Line(meter=meter, amount=max(0, hold - amount)))
        if amount > hold:
            overage.append(Line(meter=meter, amount=amount - hold))
    return Settlement(tuple(changes), tuple(committed), tuple(refunded), tuple(overage))


def release(held: tuple[Line, ...]) -> Settlement:
    """Return every hold in full (release and expiry)."""
    changes = tuple(MeterChange(line.meter, Delta(reserved=-line.amount), Guard.RESERVED_COVERS) for line in held)
    return Settlement(changes, (), held, ())
