"""`QuotaflowCallback`: LiteLLM's own `CustomLogger` machinery with the real litellm SDK calling the loopback OpenAI
server, metered by a real `quotaflow serve`. The proxy's pre-call hook is called here as the proxy calls it (the
proxy server itself is not run: its web stack is not a dependency)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm would fetch its cost map from the network

import litellm
from litellm.proxy._types import UserAPIKeyAuth

from quotaflow.integrations.litellm import QuotaflowCallback
from quotaflow.local.server import LocalServer
from quotaflow.sdk import AsyncClient, Client, InsufficientQuota, TenantCreated
from tests.integrations.support import USER, commit_properties, settled
from tests.sdk.support import FAST_RETRY
from tests.support.provider_stubs import OPENAI_CHAT_USAGE, ProviderStub

pytestmark = pytest.mark.unit
EVENTS_WAIT_STEPS_MAX = 200  # litellm logs success and failure from a background task: wait for it, boundedly


def request(provider: ProviderStub, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "How do I meter this?"}],
        "max_tokens": 500,
        "user": USER,
        "api_base": f"{provider.url}/v1",
        "api_key": "sk-test",
        "custom_llm_provider": "openai",
        "num_retries": 0,
        **extra,
    }


async def proxied_call(callback: QuotaflowCallback, data: dict[str, Any]) -> Any:
    """What the proxy does: its pre-call hooks, then the call, with the callback registered in `litellm.callbacks`."""
    data = await callback.async_pre_call_hook(UserAPIKeyAuth(), None, data, "acompletion")
    try:
        return await litellm.acompletion(**data)
    finally:
        for _ in range(EVENTS_WAIT_STEPS_MAX):
            if not callback.holds:
                break
            await asyncio.sleep(0.05)


@pytest.fixture
def callback(server: LocalServer, tenant: TenantCreated) -> Iterator[QuotaflowCallback]:
    aqf = AsyncClient(api_key=tenant.secret_key, base_url=server.url, retry=FAST_RETRY)
    quotaflow_callback = QuotaflowCallback(aqf)
    litellm.callbacks = [quotaflow_callback]
    yield quotaflow_callback
    # litellm copies registered callbacks into lists of its own, and keeps one per class: empty them all
    for registry in (
        "callbacks",
        "success_callback",
        "failure_callback",
        "_async_success_callback",
        "_async_failure_callback",
    ):
        setattr(litellm, registry, [])


def test_a_call_through_litellm_commits_its_usage(
    callback: QuotaflowCallback, qf: Client, provider: ProviderStub
) -> None:
    response = asyncio.run(proxied_call(callback, request(provider)))
    assert response.usage.total_tokens == OPENAI_CHAT_USAGE["total_tokens"]
    assert settled(qf) == (OPENAI_CHAT_USAGE["total_tokens"], 0)
    assert commit_properties(qf) == {"model": "gpt-4o", "estimated": False}


def test_a_refused_hold_rejects_the_request_before_the_provider(
    callback: QuotaflowCallback, qf: Client, provider: ProviderStub
) -> None:
    qf.upsert_subscription(USER, "plan_paygo", custom_limits={"tokens": {"quota": 10}})
    with pytest.raises(InsufficientQuota):
        asyncio.run(proxied_call(callback, request(provider)))
    assert provider.seen == []


def test_a_provider_error_releases_the_hold(callback: QuotaflowCallback, qf: Client, provider: ProviderStub) -> None:
    provider.fail_with(500, {"error": {"message": "overloaded", "type": "server_error"}})
    with pytest.raises(litellm.exceptions.InternalServerError):
        asyncio.run(proxied_call(callback, request(provider)))
    assert settled(qf) == (0, 0)
