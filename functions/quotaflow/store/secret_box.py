"""Tenants' secrets at rest (Stripe API keys and webhook signing secrets): KMS in AWS, with the tenant id as
encryption context so one tenant's ciphertext cannot be opened as another's; outside AWS, sealed under a key
derived from the deployment's admin key (`serve`, tests)."""

from __future__ import annotations

import base64
from typing import Any, Protocol

from quotaflow.store import sealing

KMS_PREFIX = "kms:"
LOCAL_PREFIX = "local:"


class SecretBox(Protocol):
    def seal(self, tenant_id: str, plaintext: str) -> str: ...

    def open(self, tenant_id: str, sealed: str) -> str: ...


class KmsSecretBox:
    def __init__(self, client: Any, key_id: str) -> None:
        self.client = client
        self.key_id = key_id

    def seal(self, tenant_id: str, plaintext: str) -> str:
        blob = self.client.encrypt(
            KeyId=self.key_id, Plaintext=plaintext.encode(), EncryptionContext={"tenant": tenant_id}
        )["CiphertextBlob"]
        return KMS_PREFIX + base64.b64encode(blob).decode()

    def open(self, tenant_id: str, sealed: str) -> str:
        blob = base64.b64decode(sealed.removeprefix(KMS_PREFIX))
        plaintext: bytes = self.client.decrypt(CiphertextBlob=blob, EncryptionContext={"tenant": tenant_id})[
            "Plaintext"
        ]
        return plaintext.decode()


class LocalSecretBox:
    def __init__(self, root_secret: str) -> None:
        self.root = root_secret.encode()

    def _key(self, tenant_id: str) -> bytes:
        return sealing.derive_key(self.root, f"quotaflow tenant secrets v1 {tenant_id}".encode())

    def seal(self, tenant_id: str, plaintext: str) -> str:
        return LOCAL_PREFIX + sealing.seal(self._key(tenant_id), plaintext.encode())

    def open(self, tenant_id: str, sealed: str) -> str:
        return sealing.unseal(self._key(tenant_id), sealed.removeprefix(LOCAL_PREFIX)).decode()
