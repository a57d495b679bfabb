"""Features through both clients against a real `quotaflow serve`: plans and overrides in, entitlements and
can-use out, with a publishable key and a user token as the browser would."""

from __future__ import annotations

import asyncio

import pytest

from quotaflow.local.server import LocalServer
from quotaflow.sdk import AsyncClient, Client, TenantCreated
from tests.sdk.support import FAST_RETRY

pytestmark = pytest.mark.unit


@pytest.fixture
def pro(qf: Client) -> Client:
    qf.put_plan(
        "plan_pro", "Pro", {"tokens": {"quota": 1000}}, features={"gpt-4o": True, "max_context_tokens": 128_000}
    )
    qf.upsert_subscription("u2", "plan_pro", custom_features={"gpt-4o": False, "support": "priority"})
    return qf


def test_the_client_reads_entitlements_and_checks_features(pro: Client) -> None:
    assert pro.get_plan("plan_pro").features == {"gpt-4o": True, "max_context_tokens": 128_000}
    assert pro.get_subscription("u2").custom_features == {"gpt-4o": False, "support": "priority"}
    features = pro.entitlements("u2").features
    assert features == {"gpt-4o": False, "max_context_tokens": 128_000, "support": "priority"}
    assert features["gpt-4o"] is False, "a boolean stays a boolean"
    assert not pro.can_use_feature("u2", "gpt-4o").allowed
    assert pro.can_use_feature("u2", "support").allowed


def test_the_async_client_reads_them_with_a_publishable_key(
    server: LocalServer, tenant: TenantCreated, pro: Client
) -> None:
    with Client(api_key=server.admin_key, base_url=server.url) as admin:
        publishable = admin.create_key(tenant.tenant_id, "publishable").key
    token = pro.user_token("u2", ttl_seconds=60).token

    async def scenario() -> None:
        async with AsyncClient(api_key=publishable, base_url=server.url, retry=FAST_RETRY) as browser:
            features = (await browser.entitlements("u2", user_token=token)).features
            assert features["max_context_tokens"] == 128_000
            assert (await browser.can_use_feature("u2", "max_context_tokens", user_token=token)).allowed
            assert not (await browser.can_use_feature("u2", "sso", user_token=token)).allowed

    asyncio.run(scenario())
