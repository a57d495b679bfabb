"""`meter(OpenAI(...))`: the real openai client against a loopback server speaking its protocol, metered by a real
`quotaflow serve`."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest

from quotaflow.integrations import Backlog, meter
from quotaflow.integrations.core import HOLD_TTL_SECONDS
from quotaflow.local.server import LocalServer
from quotaflow.sdk import AsyncClient, Client, ConnectionFailed, InsufficientQuota, TenantCreated, calls
from tests.integrations.support import USER, commit_properties, counter, entries, settled
from tests.sdk.support import FAST_RETRY, Fault, FaultyProxy
from tests.support.provider_stubs import OPENAI_CHAT_USAGE, OPENAI_RESPONSES_USAGE, ProviderStub

pytestmark = pytest.mark.unit
MESSAGES = [{"role": "user", "content": "How do I meter this?"}]
CHAT_TOTAL = OPENAI_CHAT_USAGE["total_tokens"]


def openai_client(provider: ProviderStub) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=f"{provider.url}/v1", max_retries=0)


def test_a_chat_completion_commits_what_openai_reports(qf: Client, provider: ProviderStub) -> None:
    client = meter(openai_client(provider), qf, user_id=USER)

    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=500)

    assert isinstance(completion, openai.types.chat.ChatCompletion)  # the provider's own object
    assert completion.usage is not None and completion.usage.total_tokens == CHAT_TOTAL
    assert settled(qf) == (CHAT_TOTAL, 0)
    (reserve,) = entries(qf, "reserve")
    assert reserve.delta_reserved > 500  # the prompt estimate plus the call's output cap
    assert commit_properties(qf) == {"model": "gpt-4o", "estimated": False}


def test_a_chat_stream_asks_for_usage_and_commits_it_exactly(qf: Client, provider: ProviderStub) -> None:
    client = meter(openai_client(provider), qf, user_id=USER)

    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    assert text == "Metering is one line now."
    assert provider.seen[0].body["stream_options"] == {"include_usage": True}
    assert settled(qf) == (CHAT_TOTAL, 0)
    assert commit_properties(qf)["estimated"] is False


def test_a_caller_who_turned_usage_off_is_billed_an_estimate(qf: Client, provider: ProviderStub) -> None:
    client = meter(openai_client(provider), qf, user_id=USER)
    options = {"include_usage": False}
    for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, stream_options=options):
        pass
    assert provider.seen[0].body["stream_options"] == options
    used, reserved = settled(qf)
    assert used > 0 and reserved == 0
    assert commit_properties(qf)["estimated"] is True


def test_a_stream_closed_early_commits_what_was_produced_marked_estimated(qf: Client, provider: ProviderStub) -> None:
    client = meter(openai_client(provider), qf, user_id=USER)

    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, max_tokens=2000)
    first = next(iter(stream))
    stream.close()

    assert first.choices[0].delta.content == "Metering "
    used, reserved = settled(qf)
    assert 0 < used < 2000 and reserved == 0
    assert commit_properties(qf) == {"model": "gpt-4o", "estimated": True}


def test_a_broken_stream_commits_what_was_produced(qf: Client, provider: ProviderStub) -> None:
    provider.break_streams_after = 2
    client = meter(openai_client(provider), qf, user_id=USER)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    received = [next(stream).choices[0].delta.content, next(stream).choices[0].delta.content]
    with pytest.raises(openai.APIError):
        next(stream)
    assert received == ["Metering ", "is "]
    used, reserved = settled(qf)
    assert used > 0 and reserved == 0
    assert commit_properties(qf)["estimated"] is True


def test_a_provider_error_releases_the_hold(qf: Client, provider: ProviderStub) -> None:
    provider.fail_with(500, {"error": {"message": "overloaded", "type": "server_error"}})
    client = meter(openai_client(provider), qf, user_id=USER)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert settled(qf) == (0, 0)
    assert len(entries(qf, "release")) == 1


def test_a_refused_hold_never_reaches_openai(qf: Client, provider: ProviderStub) -> None:
    qf.upsert_subscription(USER, "plan_paygo", custom_limits={"tokens": {"quota": 100}})
    client = meter(openai_client(provider), qf, user_id=USER)
    with pytest.raises(InsufficientQuota):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=500)
    assert provider.seen == []
    assert settled(qf) == (0, 0)


def test_responses_create_and_its_stream_commit_what_openai_reports(qf: Client, provider: ProviderStub) -> None:
    client = meter(openai_client(provider), qf, user_id=USER)
    total = OPENAI_RESPONSES_USAGE["total_tokens"]

    response = client.responses.create(model="o4-mini", input="Summarize", max_output_tokens=1000)
    assert response.output_text == "Metering is one line now."
    assert settled(qf) == (total, 0)

    events = [event.type for event in client.responses.create(model="o4-mini", input="Summarize", stream=True)]
    assert events[-1] == "response.completed"
    assert settled(qf) == (2 * total, 0)


def test_the_price_goes_to_a_cents_meter_priced_by_the_server(qf: Client, provider: ProviderStub) -> None:
    qf.put_price(
        "gpt-4o", input_per_million_cents=250, output_per_million_cents=1000, cached_input_per_million_cents=125
    )
    qf.put_plan(
        "plan_paygo",
        "Pay as you go",
        {
            "tokens": {"label": "Tokens", "quota": 100_000, "period": "none"},
            "cents": {"label": "Cents", "quota": 1_000, "period": "none"},
        },
    )
    client = meter(openai_client(provider), qf, user_id=USER, meters={"tokens": "tokens", "cents": "cents"})
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=500)
    # 1000 input * 250 + 200 cached * 125 + 300 output * 1000 = 575,000 -> ceil(/10^6) = 1 cent
    assert (counter(qf, "cents").used, counter(qf, "cents").reserved) == (1, 0)
    assert settled(qf) == (CHAT_TOTAL, 0)


def test_async_chat_calls_and_streams_are_metered(
    server: LocalServer, tenant: TenantCreated, qf: Client, provider: ProviderStub
) -> None:
    async def run() -> str:
        async with AsyncClient(api_key=tenant.secret_key, base_url=server.url, retry=FAST_RETRY) as aqf:
            client = meter(
                openai.AsyncOpenAI(api_key="sk-test", base_url=f"{provider.url}/v1", max_retries=0), aqf, user_id=USER
            )
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
            early = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            await early.__anext__()
            await early.close()
            return "".join(parts)

    assert asyncio.run(run()) == "Metering is one line now."
    used, reserved = settled(qf)
    assert used > 2 * CHAT_TOTAL and reserved == 0
    assert [e.properties["estimated"] for e in entries(qf, "commit") if e.properties] == [True, False, False]


def test_a_stream_that_outlives_its_hold_is_recorded_as_an_event(
    server: LocalServer, qf: Client, provider: ProviderStub
) -> None:
    client = meter(openai_client(provider), qf, user_id=USER)
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    later = (datetime.now(UTC) + timedelta(seconds=HOLD_TTL_SECONDS + 120)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sweep = httpx.post(
        f"{server.url}/_local/run/sweeper",
        json={"now": later},
        headers={"Authorization": f"Bearer {server.admin_key}"},
    )
    assert sweep.status_code == 200 and len(entries(qf, "expire")) == 1  # the hold is gone, refunded

    for _ in stream:
        pass

    assert settled(qf) == (CHAT_TOTAL, 0)
    (event,) = entries(qf, "event")
    assert event.properties == {"model": "gpt-4o", "estimated": False, "hold_expired": True}


# --- quotaflow unreachable ---------------------------------------------------------------------------------


def unreachable(times: int) -> list[Fault]:
    return [Fault(after_forwarding=False, status=None) for _ in range(times)]


def test_block_raises_and_never_calls_openai_while_quotaflow_is_down(
    server: LocalServer, tenant: TenantCreated, qf: Client, provider: ProviderStub
) -> None:
    proxy = FaultyProxy(server.url)
    try:
        proxy.fail_next(*unreachable(FAST_RETRY.attempts_max))
        with Client(api_key=tenant.secret_key, base_url=proxy.url, retry=FAST_RETRY) as down:
            client = meter(openai_client(provider), down, user_id=USER)
            with pytest.raises(ConnectionFailed):
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    finally:
        proxy.close()
    assert provider.seen == []


def test_allow_calls_openai_and_records_the_usage_once_quotaflow_is_back(
    server: LocalServer,
    tenant: TenantCreated,
    qf: Client,
    provider: ProviderStub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = FaultyProxy(server.url)
    try:
        # down for the reserve (all its attempts) and the first three tries of the late record, then back
        proxy.fail_next(*unreachable(FAST_RETRY.attempts_max + 3))
        with Client(api_key=tenant.secret_key, base_url=proxy.url, retry=FAST_RETRY) as flaky:
            backlog = Backlog(flaky.connection, backoff_base_seconds=0.01, backoff_max_seconds=0.05)
            client = meter(openai_client(provider), flaky, user_id=USER, on_unavailable="allow", backlog=backlog)
            with caplog.at_level(logging.WARNING, logger="quotaflow.integrations"):
                completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert completion.usage is not None
            assert backlog.flush(timeout_seconds=30)
    finally:
        proxy.close()

    assert len(provider.seen) == 1
    late = [seen for seen in proxy.seen if seen.path == "/v1/events"]
    assert len(late) == 4 and len({seen.idempotency_key for seen in late}) == 1  # one key, however many tries
    assert settled(qf) == (CHAT_TOTAL, 0)
    (event,) = entries(qf, "event")
    assert event.properties == {"model": "gpt-4o", "estimated": False, "deferred": True}
    assert "unreachable" in caplog.text


def test_a_full_backlog_logs_what_it_could_not_keep(qf: Client, caplog: pytest.LogCaptureFixture) -> None:
    backlog = Backlog(qf.connection, records_max=0)
    with caplog.at_level(logging.ERROR, logger="quotaflow.integrations"):
        backlog.put(calls.track(USER, {"tokens": 5}, None), "key-1")
    assert "NOT recorded" in caplog.text and "key-1" in caplog.text
