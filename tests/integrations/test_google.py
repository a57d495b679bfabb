"""`meter(genai.Client(...))`: the real google-genai client against a loopback server speaking generateContent and
streamGenerateContent (SSE), metered by a real `quotaflow serve`."""

from __future__ import annotations

import asyncio

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from quotaflow.integrations import meter
from quotaflow.sdk import Client, InsufficientQuota
from tests.integrations.support import USER, commit_properties, entries, settled
from tests.support.provider_stubs import GEMINI_USAGE, ProviderStub

pytestmark = pytest.mark.unit
TOTAL = GEMINI_USAGE["totalTokenCount"]
GEMINI = "gemini-2.5-flash"


def gemini_client(provider: ProviderStub) -> genai.Client:
    options = types.HttpOptions(base_url=provider.url, retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key="test-key", http_options=options)


def test_generate_content_commits_prompt_candidates_and_thoughts(qf: Client, provider: ProviderStub) -> None:
    client = meter(gemini_client(provider), qf, user_id=USER)
    config = types.GenerateContentConfig(max_output_tokens=800)
    response = client.models.generate_content(model=GEMINI, contents="How do I meter this?", config=config)
    assert response.text == "Metering is one line now."
    assert settled(qf) == (TOTAL, 0)
    (reserve,) = entries(qf, "reserve")
    assert reserve.delta_reserved > 800
    assert commit_properties(qf) == {"model": GEMINI, "estimated": False}


def test_a_stream_commits_its_last_usage(qf: Client, provider: ProviderStub) -> None:
    client = meter(gemini_client(provider), qf, user_id=USER)
    text = "".join(chunk.text or "" for chunk in client.models.generate_content_stream(model=GEMINI, contents="Hi"))
    assert text == "Metering is one line now."
    assert provider.seen[0].path.endswith(":streamGenerateContent")
    assert settled(qf) == (TOTAL, 0)


def test_a_stream_closed_early_commits_an_estimate(qf: Client, provider: ProviderStub) -> None:
    client = meter(gemini_client(provider), qf, user_id=USER)
    stream = client.models.generate_content_stream(model=GEMINI, contents="Hi", config={"max_output_tokens": 3000})
    next(stream)
    stream.close()
    used, reserved = settled(qf)
    assert GEMINI_USAGE["promptTokenCount"] <= used < TOTAL and reserved == 0
    assert commit_properties(qf)["estimated"] is True


def test_a_provider_error_releases_and_a_refused_hold_never_calls(qf: Client, provider: ProviderStub) -> None:
    provider.fail_with(503, {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
    client = meter(gemini_client(provider), qf, user_id=USER)
    with pytest.raises(genai_errors.ServerError):
        client.models.generate_content(model=GEMINI, contents="Hi")
    assert settled(qf) == (0, 0)
    qf.upsert_subscription(USER, "plan_paygo", custom_limits={"tokens": {"quota": 10}})
    with pytest.raises(InsufficientQuota):
        client.models.generate_content(model=GEMINI, contents="Hi")
    assert len(provider.seen) == 1


def test_the_async_client_under_aio_is_metered(qf: Client, provider: ProviderStub) -> None:
    client = meter(gemini_client(provider), qf, user_id=USER)

    async def run() -> str:
        await client.aio.models.generate_content(model=GEMINI, contents="Hi")
        stream = await client.aio.models.generate_content_stream(model=GEMINI, contents="Hi")
        return "".join([chunk.text or "" async for chunk in stream])

    assert asyncio.run(run()) == "Metering is one line now."
    assert settled(qf) == (2 * TOTAL, 0)
