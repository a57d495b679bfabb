"""How counter changes and their ledger entries enter a transaction (the write half of the ledger discipline)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from quotaflow.ledger.counters import Guard, Posting
from quotaflow.ledger.entries import LedgerEntry
from quotaflow.ledger.periods import iso
from quotaflow.services.scope import Scope
from quotaflow.store import items, keys
from quotaflow.store.table import Transaction

COUNTER_TAG = "counter:"
LEVEL_SEPARATOR = "@"  # counter:<meter>@<account holder> on an account's counter
SHARD_SEPARATOR = "/"  # counter:<meter>@<account holder>/<k> on shard k > 0 of a sharded pool


def counter_tag(posting: Posting) -> str:
    if posting.holder is None:
        return f"{COUNTER_TAG}{posting.meter}"
    shard = f"{SHARD_SEPARATOR}{posting.shard}" if posting.shard else ""
    return f"{COUNTER_TAG}{posting.meter}{LEVEL_SEPARATOR}{posting.holder}{shard}"


def add_entries(
    tx: Transaction,
    scope: Scope,
    user_id: str,
    postings: Sequence[Posting],
    ref: str | None,
    properties: dict[str, Any] | None = None,
) -> None:
    """One ledger entry per posting, in the same transaction as the counter changes they record (in the ledger of
    the level each posting is on; a pool shard's in the shard's partition)."""
    for entry_id, posting in zip(scope.entry_ids(len(postings)), postings, strict=True):
        entry = LedgerEntry(
            entry_id=entry_id,
            at=iso(scope.now),
            kind=posting.kind,
            meter=posting.meter,
            period_key=posting.period_key,
            delta_used=posting.delta.used,
            delta_reserved=posting.delta.reserved,
            delta_credits=posting.delta.credits,
            delta_quota=posting.delta.quota,
            ref=ref,
        )
        item = items.entry_item(scope.tenant_id, posting.holder or user_id, entry, posting.shard)
        if properties:
            item["properties"] = properties
        tx.put(f"entry:{entry_id}", item)


def add_counter_change(
    tx: Transaction, scope: Scope, user_id: str, posting: Posting, limits_version: int, rev: int | None = None
) -> None:
    """One atomic ADD on the current counter (of the posting's level), valid only for the period and limits the
    caller computed with (and, given `rev`, only on the very counter state it was computed from)."""
    delta = posting.delta
    conditions = ["period_key = :period_key", "limits_version = :limits_version"]
    values: dict[str, Any] = {
        ":period_key": posting.period_key,
        ":limits_version": limits_version,
        ":one": 1,
        ":du": delta.used,
        ":dr": delta.reserved,
        ":dc": delta.credits,
        ":dq": delta.quota,
        ":da": delta.available,
    }
    if rev is not None:
        conditions.append("rev = :rev")
        values[":rev"] = rev
    taken = -delta.available
    if posting.guard is Guard.ROOM_IF_HARD and taken > 0:
        conditions.append("(enforcement <> :hard OR available >= :taken)")
        values.update({":hard": "hard", ":taken": taken})
    elif posting.guard is Guard.USED_COVERS:
        conditions.append("used >= :given_back")
        values[":given_back"] = -delta.used
    elif posting.guard is Guard.RESERVED_COVERS:
        conditions.append("reserved >= :released")
        values[":released"] = -delta.reserved
    tx.update(
        counter_tag(posting),
        keys.counter_shard(scope.tenant_id, posting.holder or user_id, posting.meter, posting.shard),
        "ADD used :du, reserved :dr, credits :dc, quota :dq, available :da, rev :one",
        condition=" AND ".join(conditions),
        values=values,
    )
