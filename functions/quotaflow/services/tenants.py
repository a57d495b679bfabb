"""Tenants and their API keys. Keys are stored as SHA-256 hashes and shown once, at creation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from quotaflow.ledger.errors import Conflict, NotFound, Unauthenticated, Unavailable
from quotaflow.ledger.periods import iso
from quotaflow.services.idempotency import IdempotencyClaim, add_claim, replay_if_taken
from quotaflow.services.scope import Expiring, Scope
from quotaflow.services.tokens import SigningSecrets, new_signing_secret
from quotaflow.services.views import KeyCreatedView, TenantCreatedView
from quotaflow.store import keys
from quotaflow.store.table import Store, Transaction, TransactionCancelled

KeyKind = Literal["secret", "publishable"]
KEY_PREFIXES: dict[str, KeyKind] = {"qf_sk_": "secret", "qf_pk_": "publishable"}
KEY_LENGTH_MAX = 128
KEY_CACHE_SECONDS = 5.0  # a revoked key keeps working on a warm container for at most this long
KEY_CACHE_ENTRIES_MAX = 1_000
ADMIN_SCOPE = "#admin"  # the admin key's idempotency scope: '#' never occurs in a tenant id


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    kind: KeyKind
    key_id: str


@dataclass
class KeyCache:
    """API keys and browser-token secrets this container has checked recently (KEY_CACHE_SECONDS)."""

    principals: Expiring[Principal] = field(default_factory=lambda: Expiring(KEY_CACHE_SECONDS, KEY_CACHE_ENTRIES_MAX))
    token_secrets: Expiring[SigningSecrets] = field(
        default_factory=lambda: Expiring(KEY_CACHE_SECONDS, KEY_CACHE_ENTRIES_MAX)
    )
    origins: Expiring[list[str]] = field(default_factory=lambda: Expiring(KEY_CACHE_SECONDS, KEY_CACHE_ENTRIES_MAX))


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def authenticate(store: Store, raw_key: str, cache: KeyCache) -> Principal:
    kind = next((k for prefix, k in KEY_PREFIXES.items() if raw_key.startswith(prefix)), None)
    if kind is None or len(raw_key) > KEY_LENGTH_MAX:
        raise Unauthenticated("the API key is malformed")
    key_hash = hash_key(raw_key)
    principal = cache.principals.get((key_hash, ""))
    if principal is not None:
        return principal
    item = store.get(keys.api_key(key_hash))
    if item is None or not hmac.compare_digest(item["key_hash"], key_hash) or item["kind"] != kind:
        raise Unauthenticated("the API key is unknown or revoked")
    principal = Principal(item["tenant_id"], item["kind"], item["key_id"])
    cache.principals.put((key_hash, ""), principal)
    return principal


def _add_key(tx: Transaction, tenant_id: str, kind: KeyKind, now: datetime) -> KeyCreatedView:
    prefix = next(p for p, k in KEY_PREFIXES.items() if k == kind)
    raw_key = prefix + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(8)
    key_hash = hash_key(raw_key)
    record = {
        "tenant_id": tenant_id,
        "key_id": key_id,
        "kind": kind,
        "key_hash": key_hash,
        "created_at": iso(now),
    }
    tx.put("key", {**keys.api_key(key_hash), **record}, condition="attribute_not_exists(pk)")
    tx.put("key_listing", {**keys.tenant_key_listing(tenant_id, key_id), **record})
    return KeyCreatedView(key=raw_key, key_id=key_id, kind=kind)


def create_tenant(admin: Scope, tenant_id: str, claim: IdempotencyClaim | None) -> TenantCreatedView:
    """`admin` is the scope of the admin key (ADMIN_SCOPE): its Idempotency-Keys live apart from every tenant's."""
    tx = admin.store.transaction()
    tx.put(
        "tenant",
        {
            **keys.tenant(tenant_id),
            "tenant_id": tenant_id,
            "created_at": iso(admin.now),
            "token_secret": new_signing_secret(),
        },
        condition="attribute_not_exists(pk)",
    )
    secret = _add_key(tx, tenant_id, "secret", admin.now)
    publishable = _add_key(tx, tenant_id, "publishable", admin.now)
    view = TenantCreatedView(tenant_id=tenant_id, secret_key=secret.key, publishable_key=publishable.key)
    add_claim(tx, admin, claim, view.model_dump(mode="json"))
    try:
        admin.store.transact(tx)
    except TransactionCancelled as cancelled:
        replay_if_taken(claim, cancelled)
        if cancelled.failed("tenant"):
            raise Conflict(f"tenant {tenant_id!r} already exists", tenant_id=tenant_id) from None
        raise Unavailable("tenant creation was refused; retry shortly") from cancelled
    return view


def create_key(admin: Scope, tenant_id: str, kind: KeyKind, claim: IdempotencyClaim | None) -> KeyCreatedView:
    if admin.store.get(keys.tenant(tenant_id)) is None:
        raise NotFound(f"tenant {tenant_id!r} does not exist", tenant_id=tenant_id)
    tx = admin.store.transaction()
    created = _add_key(tx, tenant_id, kind, admin.now)
    add_claim(tx, admin, claim, created.model_dump(mode="json"))
    try:
        admin.store.transact(tx)
    except TransactionCancelled as cancelled:
        replay_if_taken(claim, cancelled)
        raise Unavailable("key creation was refused; retry shortly") from cancelled
    return created


def revoke_key(store: Store, tenant_id: str, key_id: str, now: datetime) -> None:
    """Delete the key's lookup item at once; its listing stays as a tombstone, so revoking twice succeeds."""
    listing = store.get(keys.tenant_key_listing(tenant_id, key_id))
    if listing is None:
        raise NotFound(f"key {key_id!r} does not exist", key_id=key_id)
    tx = store.transaction()
    tx.delete("key", keys.api_key(listing["key_hash"]))
    tx.put("key_listing", {**listing, "revoked_at": listing.get("revoked_at") or iso(now)})
    store.transact(tx)
