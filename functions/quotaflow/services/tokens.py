"""Browser tokens: a tenant's backend mints one per user; the publishable key only works alongside it.

A token is `base64url(payload).base64url(HMAC-SHA256(payload))` under the tenant's signing secret, bound to
(tenant, user, expiry). Forged, expired or malformed tokens are 401; a valid token for another user is 403."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from quotaflow.ledger.errors import Forbidden, Unauthenticated
from quotaflow.ledger.periods import iso
from quotaflow.store import keys
from quotaflow.store.table import Store

TOKEN_LENGTH_MAX = 1024
TOKEN_TTL_SECONDS_MAX = 86_400


def new_signing_secret() -> str:
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


@dataclass(frozen=True)
class SigningSecrets:
    """The tenant's current token secret, and the one before it while tokens it signed may still be alive."""

    current: str
    previous: str | None = None
    previous_valid_until_epoch_s: int = 0

    def accepted(self, now: datetime) -> list[str]:
        alive = self.previous is not None and now.timestamp() < self.previous_valid_until_epoch_s
        return [self.current, self.previous] if alive and self.previous else [self.current]


def signing_secrets(store: Store, tenant_id: str) -> SigningSecrets:
    tenant = store.get(keys.tenant(tenant_id))
    if tenant is None or "token_secret" not in tenant:
        raise Unauthenticated("the tenant cannot verify user tokens")
    return SigningSecrets(
        tenant["token_secret"], tenant.get("previous_token_secret"), tenant.get("previous_token_secret_valid_until", 0)
    )


def rotate(store: Store, tenant_id: str, now: datetime) -> str:
    """A new signing secret; tokens signed with the old one keep working until they expire (at most 24 h)."""
    current = signing_secrets(store, tenant_id).current
    valid_until = int((now + timedelta(seconds=TOKEN_TTL_SECONDS_MAX)).timestamp())
    store.update(
        keys.tenant(tenant_id),
        "SET token_secret = :new, previous_token_secret = :old, previous_token_secret_valid_until = :until",
        values={":new": new_signing_secret(), ":old": current, ":until": valid_until},
    )
    return iso(now)


def mint(secret: str, tenant_id: str, user_id: str, now: datetime, ttl_seconds: int) -> tuple[str, str]:
    expires = now + timedelta(seconds=ttl_seconds)
    payload = _b64(
        json.dumps({"t": tenant_id, "u": user_id, "exp": int(expires.timestamp())}, separators=(",", ":")).encode()
    )
    return f"{payload}.{_signature(secret, payload)}", iso(expires)


def check(secrets_accepted: list[str], token: str, tenant_id: str, user_id: str, now: datetime) -> None:
    """Raise unless `token` is a live token of this tenant for this user, signed with an accepted secret."""
    payload, _, signature = token.partition(".")
    if len(token) > TOKEN_LENGTH_MAX or not signature:
        raise Unauthenticated("the user token is malformed")
    if not any(hmac.compare_digest(signature, _signature(secret, payload)) for secret in secrets_accepted):
        raise Unauthenticated("the user token's signature does not match")
    try:
        claims = json.loads(_unb64(payload))
        token_tenant, token_user, expires = claims["t"], claims["u"], int(claims["exp"])
    except (ValueError, KeyError, TypeError):
        raise Unauthenticated("the user token is malformed") from None
    if token_tenant != tenant_id:
        raise Unauthenticated("the user token belongs to another tenant")
    if expires <= now.timestamp():
        raise Unauthenticated("the user token has expired")
    if token_user != user_id:
        raise Forbidden("the user token is for another user")
