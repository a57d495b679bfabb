"""Usage alerts: which thresholds a counter change crossed. Pure: the notifier feeds it the item images from the
table's stream (the stream is the outbox: every counter write appears on it exactly once, in order per item).

A threshold t fires when `used * 100` goes from below `t * (quota + credits)` to at least it; reservations do
not count and a zero quota + credits never fires. `credits.exhausted` fires when a hard meter's remaining
reaches 0. Each (user, meter, period, threshold) has one event id, however often it is delivered."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

THRESHOLD_CROSSED = "usage.threshold_crossed"
CREDITS_EXHAUSTED = "credits.exhausted"
EXHAUSTED_THRESHOLD = 0  # the id slot `credits.exhausted` uses in place of a percent


@dataclass(frozen=True)
class Alert:
    event_id: str
    kind: str
    tenant_id: str
    user_id: str
    meter: str
    period_key: str
    threshold_percent: int
    quota: int
    used: int
    remaining: int


def event_id(tenant_id: str, user_id: str, meter: str, period_key: str, threshold: int) -> str:
    digest = hashlib.sha256(f"{tenant_id}|{user_id}|{meter}|{period_key}|{threshold}".encode()).hexdigest()
    return f"whe_{digest[:32]}"


def crossed(tenant_id: str, user_id: str, old: dict[str, Any] | None, new: dict[str, Any]) -> list[Alert]:
    """The alerts one write of a counter caused; `old` is None for the write that created it."""
    if old is not None and old.get("period_key") != new.get("period_key"):
        old = None  # a new period starts from nothing
    total = new["quota"] + new["credits"]
    used_before = old["used"] if old else 0
    period_key, meter = new["period_key"], new["meter"]

    def alert(kind: str, threshold: int) -> Alert:
        return Alert(
            event_id(tenant_id, user_id, meter, period_key, threshold),
            kind,
            tenant_id,
            user_id,
            meter,
            period_key,
            threshold,
            new["quota"],
            new["used"],
            max(0, new["available"]),
        )

    alerts = [
        alert(THRESHOLD_CROSSED, threshold)
        for threshold in new.get("alerts") or []
        if total > 0 and used_before * 100 < threshold * total <= new["used"] * 100
    ]
    available_before = old["available"] if old else total
    if new.get("enforcement") == "hard" and available_before > 0 >= new["available"]:
        alerts.append(alert(CREDITS_EXHAUSTED, EXHAUSTED_THRESHOLD))
    return alerts
