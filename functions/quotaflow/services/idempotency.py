"""Idempotency-Key: the first final response is stored in the same transaction as the write it describes.

A retry's transaction then fails on the record's condition, and the stored response is replayed; a
different body under the same key is refused. No read precedes the write, so a first request costs nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from quotaflow.ledger.errors import IdempotencyKeyReused, InvariantViolation
from quotaflow.ledger.periods import iso
from quotaflow.services.scope import Scope
from quotaflow.store import keys, sealing
from quotaflow.store.table import ConditionFailed, Item, Transaction, TransactionCancelled

KEEP_FOR = timedelta(hours=48)  # the contract promises at least 24 h
IDEMPOTENCY_TAG = "idempotency"
SEAL_CONTEXT = b"quotaflow idempotency record v1"


def _seal_key(idempotency_key: str) -> bytes:
    """Stored responses are sealed under the raw Idempotency-Key, which the table never holds (items are keyed by
    its SHA-256): a reader of the table cannot see replayed bodies, such as the API keys a tenant creation
    returns."""
    return sealing.derive_key(idempotency_key.encode(), SEAL_CONTEXT)


class Replay(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"replay of a stored {status} response")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class IdempotencyClaim:
    """A request's claim on its Idempotency-Key: `fingerprint` hashes method, path and canonical body."""

    key: str
    fingerprint: str
    success_status: int

    def record(self, scope: Scope, status: int, body: dict[str, Any]) -> Item:
        return {
            **keys.idempotency(scope.tenant_id, self.key),
            "fingerprint": self.fingerprint,
            "status": status,
            "sealed_body": sealing.seal(_seal_key(self.key), json.dumps(body, separators=(",", ":")).encode()),
            "created_at": iso(scope.now),
            "ttl": int((scope.now + KEEP_FOR).timestamp()),
        }

    def add_to(self, tx: Transaction, scope: Scope, body: dict[str, Any]) -> None:
        tx.put(
            IDEMPOTENCY_TAG,
            self.record(scope, self.success_status, body),
            condition="attribute_not_exists(pk)",
        )

    def replay_if_taken(self, cancelled: TransactionCancelled) -> None:
        """Raise Replay (or IdempotencyKeyReused) if the transaction failed because the key was used before."""
        for reason in cancelled.failed(IDEMPOTENCY_TAG):
            if reason.item is not None:
                self.replay_stored(reason.item)

    def replay_stored(self, stored: Item) -> None:
        if stored["fingerprint"] != self.fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request", field="Idempotency-Key"
            )
        try:
            body = sealing.unseal(_seal_key(self.key), stored["sealed_body"])
        except sealing.SealBroken as broken:
            raise InvariantViolation("a stored idempotent response failed its integrity check") from broken
        raise Replay(stored["status"], json.loads(body))


def add_claim(tx: Transaction, scope: Scope, claim: IdempotencyClaim | None, body: dict[str, Any]) -> None:
    if claim is not None:
        claim.add_to(tx, scope, body)


def replay_if_taken(claim: IdempotencyClaim | None, cancelled: TransactionCancelled) -> None:
    if claim is not None:
        claim.replay_if_taken(cancelled)


def remember_failure(scope: Scope, claim: IdempotencyClaim, status: int, body: dict[str, Any]) -> None:
    """Store a final 4xx under the key, unless the key already holds a response: then replay (or refuse) that."""
    try:
        scope.store.put(claim.record(scope, status, body), condition="attribute_not_exists(pk)")
    except ConditionFailed as taken:
        stored = taken.item or scope.store.get(keys.idempotency(scope.tenant_id, claim.key))
        if stored is not None:
            claim.replay_stored(stored)
