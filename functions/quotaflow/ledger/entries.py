"""Ledger entries: the append-only audit trail written in the same transaction as each counter change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

EntryKind = Literal[
    "reserve",
    "commit",
    "release",
    "expire",
    "event",
    "refund",
    "grant",
    "grant_expire",
    "quota_change",
    "carryover",
    "draw",
    "increase",
    "rollover",
]


@dataclass(frozen=True)
class LedgerEntry:
    entry_id: str
    at: str
    kind: str
    meter: str
    period_key: str
    delta_used: int
    delta_reserved: int
    delta_credits: int
    delta_quota: int
    ref: str | None
    properties: dict[str, Any] | None = None  # what the write said about itself (model, pricing, estimated)
