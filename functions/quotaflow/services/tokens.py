"""Browser tokens: a tenant's backend mints one per user; the publishable key only works alongside it.

A token is `base64url(payload).base64url(HMAC-SHA256(payload))` under the tenant's signing secret, bound to
(tenant, user, expiry). Forged, expired or malformed tokens are 401; a valid token for another user is 403."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta

from quotaflow.ledger.errors import Forbidden, Unauthenticated
from quotaflow.ledger.periods import iso
from quotaflow.store import keys
from quotaflow.store.table import Store

TOKEN_LENGTH_MAX = 1024


def new_signing_secret() -> str:
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def signing_secret(store: Store, tenant_id: str) -> str:
    tenant = store.get(keys.tenant(tenant_id))
    if tenant is None or "token_secret" not in tenant:
        raise Unauthenticated("the tenant cannot verify user tokens")
    secret: str = tenant["token_secret"]
    return secret


def mint(secret: str, tenant_id: str, user_id: str, now: datetime, ttl_seconds: int) -> tuple[str, str]:
    expires = now + timedelta(seconds=ttl_seconds)
    payload = _b64(
        json.dumps({"t": tenant_id, "u": user_id, "exp": int(expires.timestamp())}, separators=(",", ":")).encode()
    )
    return f"{payload}.{_signature(secret, payload)}", iso(expires)


def check(secret: str, token: str, tenant_id: str, user_id: str, now: datetime) -> None:
    """Raise unless `token` is a live token of this tenant for this user."""
    payload, _, signature = token.partition(".")
    if len(token) > TOKEN_LENGTH_MAX or not signature:
        raise Unauthenticated("the user token is malformed")
    if not hmac.compare_digest(signature, _signature(secret, payload)):
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
