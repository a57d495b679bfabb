"""Invariants 1 and 4 as a check over stored state: counters against themselves and against their ledger."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from quotaflow.ledger.counters import Counter, Delta
from quotaflow.ledger.entries import LedgerEntry
from quotaflow.ledger.errors import InvariantViolation


@dataclass(frozen=True)
class Problem:
    user_id: str
    meter: str
    period_key: str
    message: str


def sum_entries(entries: Iterable[LedgerEntry]) -> dict[tuple[str, str], Delta]:
    """Σ of ledger deltas per (meter, period)."""
    sums: dict[tuple[str, str], Delta] = {}
    for entry in entries:
        key = (entry.meter, entry.period_key)
        sums[key] = sums.get(key, Delta()) + Delta(
            entry.delta_used, entry.delta_reserved, entry.delta_credits, entry.delta_quota
        )
    return sums


def check_user(
    user_id: str, counters: Iterable[Counter], sums: dict[tuple[str, str], Delta], *, ledger: bool = True
) -> list[Problem]:
    """Invariant 1 on each counter and, with `ledger`, invariant 4: each counter equals the sum of its entries."""
    problems: list[Problem] = []
    remaining = dict(sums)
    for counter in counters:
        try:
            counter.check()
        except InvariantViolation as violation:
            problems.append(Problem(user_id, counter.meter, counter.period_key, str(violation)))
        if not ledger:
            continue
        expected = remaining.pop((counter.meter, counter.period_key), Delta())
        for field in ("used", "reserved", "credits", "quota"):
            stored, summed = getattr(counter, field), getattr(expected, field)
            if stored != summed:
                problems.append(
                    Problem(
                        user_id,
                        counter.meter,
                        counter.period_key,
                        f"{field} is {stored} but its ledger entries sum to {summed}",
                    )
                )
    for (meter, period_key), delta in remaining.items():
        if not delta.is_zero:
            problems.append(Problem(user_id, meter, period_key, "ledger entries for a counter that does not exist"))
    return problems
