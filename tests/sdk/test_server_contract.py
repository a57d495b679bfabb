"""Contract points the server misses, found while building the SDK (API.md, Conventions: "every POST that
changes state accepts Idempotency-Key; a retry with the same key and the same body returns the first response").
These tests fail until the admin routes honor Idempotency-Key; the SDK's retries depend on it."""

from __future__ import annotations

import pytest

from quotaflow.local.server import LocalServer
from quotaflow.sdk import Client, TenantCreated
from tests.sdk.support import FAST_RETRY, Fault, FaultyProxy

pytestmark = pytest.mark.unit


def test_a_tenant_creation_whose_answer_was_lost_returns_the_first_answer_on_retry(
    server: LocalServer, proxy: FaultyProxy
) -> None:
    """Today the retry gets 409 `conflict`: the tenant exists and its keys, shown once, are gone for good."""
    proxy.fail_next(Fault(after_forwarding=True))
    with Client(api_key=server.admin_key, base_url=proxy.url, retry=FAST_RETRY) as admin:
        created = admin.create_tenant("acme")
    assert created.secret_key == proxy.relayed[0].json()["secret_key"]


def test_a_key_creation_retried_under_the_same_idempotency_key_returns_the_first_key(
    server: LocalServer, tenant: TenantCreated
) -> None:
    """Today the retry makes a second key (and the first one, never shown to anyone, stays valid)."""
    with Client(api_key=server.admin_key, base_url=server.url) as admin:
        first = admin.create_key(tenant.tenant_id, "secret", idempotency_key="key-request-1")
        again = admin.create_key(tenant.tenant_id, "secret", idempotency_key="key-request-1")
    assert (again.key_id, again.key) == (first.key_id, first.key)
