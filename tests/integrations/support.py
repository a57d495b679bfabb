"""What the integration tests read back from quotaflow: the user's counter and the commit entries of the ledger."""

from __future__ import annotations

from typing import Any

from quotaflow.sdk import Client, Counter, LedgerEntry

USER = "u1"


def counter(qf: Client, meter: str = "tokens") -> Counter:
    return next(c for c in qf.usage(USER).counters if c.meter == meter)


def entries(qf: Client, kind: str) -> list[LedgerEntry]:
    return [entry for entry in qf.ledger(USER).entries if entry.kind == kind]


def settled(qf: Client) -> tuple[int, int]:
    """(used, reserved) of the user's tokens: reserved 0 means no hold was left pending."""
    tokens = counter(qf)
    return tokens.used, tokens.reserved


def commit_properties(qf: Client) -> dict[str, Any]:
    (commit,) = entries(qf, "commit")
    assert commit.properties is not None
    return commit.properties
