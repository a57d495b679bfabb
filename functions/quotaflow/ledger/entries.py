"""Ledger entries: the append-only audit trail written in the same transaction as each counter change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
