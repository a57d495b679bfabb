"""Authenticated encryption from the standard library alone, for small secrets kept in the table where no KMS
key is at hand: HMAC-SHA256 as a keyed stream (random nonce, counter mode) and an HMAC tag over nonce and
ciphertext (encrypt-then-MAC). Used for idempotent response bodies (keyed by the raw Idempotency-Key, which the
table never holds) and, outside AWS, for tenants' Stripe secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

NONCE_BYTES = 16
TAG_BYTES = 32


class SealBroken(Exception):
    """The sealed value was altered, or opened with the wrong key."""


def derive_key(secret: bytes, context: bytes) -> bytes:
    return hmac.new(secret, context, hashlib.sha256).digest()


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = (
        hmac.new(key, nonce + index.to_bytes(8, "big"), hashlib.sha256).digest() for index in range(length // 32 + 1)
    )
    return b"".join(blocks)[:length]


def seal(key: bytes, plaintext: bytes) -> str:
    nonce = secrets.token_bytes(NONCE_BYTES)
    cipher = bytes(a ^ b for a, b in zip(plaintext, _keystream(key, nonce, len(plaintext)), strict=True))
    tag = hmac.new(key, nonce + cipher, hashlib.sha256).digest()
    return base64.b64encode(nonce + tag + cipher).decode()


def unseal(key: bytes, sealed: str) -> bytes:
    raw = base64.b64decode(sealed)
    nonce, tag, cipher = raw[:NONCE_BYTES], raw[NONCE_BYTES : NONCE_BYTES + TAG_BYTES], raw[NONCE_BYTES + TAG_BYTES :]
    if not hmac.compare_digest(tag, hmac.new(key, nonce + cipher, hashlib.sha256).digest()):
        raise SealBroken("the sealed value does not match its tag")
    return bytes(a ^ b for a, b in zip(cipher, _keystream(key, nonce, len(cipher)), strict=True))
