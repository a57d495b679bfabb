"""`meter(Anthropic(...))`: the real anthropic client against a loopback server speaking the Messages protocol (JSON
and SSE), metered by a real `quotaflow serve`. Its usage carries every input class: plain input, cache reads, and
5-minute and 1-hour cache writes."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from quotaflow.integrations import meter
from quotaflow.local.server import LocalServer
from quotaflow.sdk import AsyncClient, Client, InsufficientQuota, TenantCreated
from tests.integrations.support import USER, commit_properties, entries, settled
from tests.sdk.support import FAST_RETRY
from tests.support.provider_stubs import ANTHROPIC_FINAL_OUTPUT_TOKENS, ANTHROPIC_START_USAGE, ProviderStub

pytestmark = pytest.mark.unit
MESSAGES = [{"role": "user", "content": "How do I meter this?"}]
INPUT_TOTAL = sum(
    ANTHROPIC_START_USAGE[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
)
TOTAL = INPUT_TOTAL + ANTHROPIC_FINAL_OUTPUT_TOKENS
CLAUDE = "claude-sonnet-4-5"


def anthropic_client(provider: ProviderStub) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=provider.url, max_retries=0)


def test_a_message_commits_every_input_class(qf: Client, provider: ProviderStub) -> None:
    qf.put_price(CLAUDE, input_per_million_cents=300, output_per_million_cents=1500)
    client = meter(anthropic_client(provider), qf, user_id=USER)

    message = client.messages.create(model=CLAUDE, max_tokens=1024, messages=MESSAGES)

    assert isinstance(message, anthropic.types.Message)
    assert settled(qf) == (TOTAL, 0)
    assert commit_properties(qf) == {"model": CLAUDE, "estimated": False}


def test_a_raw_stream_commits_the_usage_of_message_start_and_message_delta(qf: Client, provider: ProviderStub) -> None:
    client = meter(anthropic_client(provider), qf, user_id=USER)
    kinds = [
        event.type for event in client.messages.create(model=CLAUDE, max_tokens=1024, messages=MESSAGES, stream=True)
    ]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert settled(qf) == (TOTAL, 0)


def test_messages_stream_commits_the_final_message_usage(qf: Client, provider: ProviderStub) -> None:
    client = meter(anthropic_client(provider), qf, user_id=USER)
    with client.messages.stream(model=CLAUDE, max_tokens=1024, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
    assert text == "Metering is one line now."
    assert settled(qf) == (TOTAL, 0)
    assert commit_properties(qf)["estimated"] is False


def test_leaving_messages_stream_early_commits_an_estimate(qf: Client, provider: ProviderStub) -> None:
    client = meter(anthropic_client(provider), qf, user_id=USER)
    with client.messages.stream(model=CLAUDE, max_tokens=4000, messages=MESSAGES) as stream:
        next(iter(stream.text_stream))
    used, reserved = settled(qf)
    assert INPUT_TOTAL < used < INPUT_TOTAL + 4000 and reserved == 0  # the reported input, the output estimated
    assert commit_properties(qf) == {"model": CLAUDE, "estimated": True}


def test_a_provider_error_releases_and_a_refused_hold_never_calls(qf: Client, provider: ProviderStub) -> None:
    provider.fail_with(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    client = meter(anthropic_client(provider), qf, user_id=USER)
    with pytest.raises(anthropic.APIStatusError):
        client.messages.create(model=CLAUDE, max_tokens=1024, messages=MESSAGES)
    assert settled(qf) == (0, 0) and len(entries(qf, "release")) == 1

    qf.upsert_subscription(USER, "plan_paygo", custom_limits={"tokens": {"quota": 10}})
    with pytest.raises(InsufficientQuota), client.messages.stream(model=CLAUDE, max_tokens=1024, messages=MESSAGES):
        pass
    assert len(provider.seen) == 1  # only the call that failed


def test_async_messages_and_streams_are_metered(
    server: LocalServer, tenant: TenantCreated, qf: Client, provider: ProviderStub
) -> None:
    async def run() -> None:
        async with AsyncClient(api_key=tenant.secret_key, base_url=server.url, retry=FAST_RETRY) as aqf:
            provider_client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=provider.url, max_retries=0)
            client = meter(provider_client, aqf, user_id=USER)
            await client.messages.create(model=CLAUDE, max_tokens=1024, messages=MESSAGES)
            async with client.messages.stream(model=CLAUDE, max_tokens=1024, messages=MESSAGES) as stream:
                await stream.get_final_message()
            raw = await client.messages.create(model=CLAUDE, max_tokens=1024, messages=MESSAGES, stream=True)
            async for _ in raw:
                pass

    asyncio.run(run())
    assert settled(qf) == (3 * TOTAL, 0)
