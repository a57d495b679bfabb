"""Prices, quotes and model-priced usage through both clients, against a real `quotaflow serve`.

Expected costs are computed here by the published rule, in integers (API.md, Prices):
    cost_cents = ceil((input * input_price + cached * cached_price + output * output_price) * (100 + markup) / 10^8)
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, TypedDict

import pytest

from quotaflow.local.server import LocalServer
from quotaflow.sdk import (
    AsyncClient,
    Client,
    InvalidRequest,
    ModelUsage,
    NotFound,
    Price,
    TenantCreated,
    from_openai,
)
from tests.sdk.support import FAST_RETRY

pytestmark = pytest.mark.unit


class PriceFields(TypedDict):
    input_per_million_cents: int
    output_per_million_cents: int
    cached_input_per_million_cents: int


GPT_4O = PriceFields(input_per_million_cents=250, output_per_million_cents=1000, cached_input_per_million_cents=125)
MARKUP_PERCENT = 40
METERED_LIMITS = {
    "tokens": {"label": "Tokens", "quota": 1_000_000, "period": "month"},
    "cents": {"label": "Balance (cents)", "quota": 0, "period": "none"},
    "millicents": {"label": "Balance (millicents)", "quota": 0, "period": "none"},
}


def cost(price: Price, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0, scale: int = 1) -> int:
    """The rule, in integers: rounded up once, at the end. `scale` 1000 gives millicents."""
    cached_rate = price.cached_input_per_million_cents
    if cached_rate is None:
        cached_rate = price.input_per_million_cents
    raw = (
        input_tokens * price.input_per_million_cents
        + cached_input_tokens * cached_rate
        + output_tokens * price.output_per_million_cents
    )
    numerator = raw * (100 + price.markup_percent) * scale
    return -(-numerator // 10**8)


@pytest.fixture
def priced(qf: Client) -> Client:
    """gpt-4o priced at $2.50 / $10 per million (cached input $1.25), 40% markup; u1 on a plan with tokens and
    prepaid cents and millicents."""
    qf.put_price("gpt-4o", markup_percent=MARKUP_PERCENT, **GPT_4O)
    qf.put_plan("plan_metered", "Metered", METERED_LIMITS)
    qf.upsert_subscription("u1", "plan_metered")
    qf.grant_credits("u1", "cents", 500)
    qf.grant_credits("u1", "millicents", 500_000)
    return qf


def balance(qf: Client, meter: str) -> tuple[int, int, int]:
    counter = qf.usage("u1").counter(meter)
    return counter.used, counter.reserved, counter.remaining


def amounts(lines: Any) -> dict[str, int]:
    return {line.meter: line.amount for line in lines}


# --- prices ----------------------------------------------------------------------------------------------


def test_a_price_change_makes_a_new_version_and_history_keeps_the_old(qf: Client) -> None:
    first = qf.put_price("gpt-4o", input_per_million_cents=500, output_per_million_cents=1500, markup_percent=40)
    second = qf.put_price("gpt-4o", markup_percent=60, **GPT_4O)

    assert (first.model, first.version, first.cached_input_per_million_cents) == ("gpt-4o", 1, None)
    assert (second.version, second.markup_percent, second.cached_input_per_million_cents) == (2, 60, 125)
    assert isinstance(second.updated_at, datetime)
    held = qf.get_price("gpt-4o")
    assert held.price == second
    assert [price.version for price in held.history] == [2, 1]
    assert held.history[1] == first


def test_list_prices_gives_every_model_at_its_current_version(qf: Client) -> None:
    qf.put_price("gpt-4o", input_per_million_cents=250, output_per_million_cents=1000)
    qf.put_price("gpt-4o", input_per_million_cents=300, output_per_million_cents=1200)
    qf.put_price("claude-sonnet-4-5", input_per_million_cents=300, output_per_million_cents=1500, markup_percent=25)
    listed = {price.model: price for price in qf.list_prices()}
    assert sorted(listed) == ["claude-sonnet-4-5", "gpt-4o"]
    assert (listed["gpt-4o"].version, listed["gpt-4o"].input_per_million_cents) == (2, 300)
    assert listed["gpt-4o"].markup_percent == 0  # the default


def test_model_names_keep_their_case_and_punctuation(qf: Client) -> None:
    qf.put_price("Mistral-Large:2411@eu", input_per_million_cents=200, output_per_million_cents=600)
    assert qf.get_price("Mistral-Large:2411@eu").price.model == "Mistral-Large:2411@eu"
    with pytest.raises(NotFound):
        qf.get_price("mistral-large:2411@eu")


def test_an_unknown_model_is_not_found_with_its_name(qf: Client) -> None:
    with pytest.raises(NotFound) as missing:
        qf.get_price("gpt-9")
    assert (missing.value.code, missing.value.status_code) == ("not_found", 404)
    assert missing.value.details.get("model") == "gpt-9"


def test_a_negative_price_is_an_invalid_request(qf: Client) -> None:
    with pytest.raises(InvalidRequest):
        qf.put_price("gpt-4o", input_per_million_cents=-1, output_per_million_cents=1000)


# --- quotes ----------------------------------------------------------------------------------------------


def test_a_quote_is_the_rule_rounded_up(priced: Client) -> None:
    price = priced.get_price("gpt-4o").price
    quote = priced.quote("gpt-4o", input_tokens=1200, max_output_tokens=800)
    # (1200 * 250 + 800 * 1000) * 140 / 10^8 = 1.54 -> 2
    assert (quote.model, quote.tokens, quote.cost_cents) == ("gpt-4o", 2000, 2)
    assert quote.cost_cents == cost(price, 1200, 800)
    assert (quote.price_version, quote.lines) == (1, None)


def test_a_quote_prices_cached_input_at_the_cached_rate(priced: Client) -> None:
    price = priced.get_price("gpt-4o").price
    quote = priced.quote("gpt-4o", input_tokens=2_000, cached_input_tokens=100_000, max_output_tokens=4_000)
    assert quote.tokens == 106_000
    assert quote.cost_cents == cost(price, 2_000, 4_000, 100_000) == 24  # 23.8 rounds up


def test_a_quote_of_exactly_whole_cents_is_not_rounded_up(qf: Client) -> None:
    qf.put_price("exact", input_per_million_cents=100, output_per_million_cents=100)
    assert qf.quote("exact", input_tokens=1_000_000, max_output_tokens=0).cost_cents == 100
    assert qf.quote("exact", input_tokens=1_000_001, max_output_tokens=0).cost_cents == 101


def test_a_run_of_several_models_quotes_each_and_the_sum(priced: Client) -> None:
    priced.put_price("claude-sonnet-4-5", input_per_million_cents=300, output_per_million_cents=1500)
    claude_call = ModelUsage("claude-sonnet-4-5", input_tokens=3000, output_tokens=1000, cached_input_tokens=20_000)
    quote = priced.quote_run(
        [
            {"model": "gpt-4o", "input_tokens": 1200, "max_output_tokens": 800},
            claude_call,
        ]
    )
    gpt, claude = quote.lines or []
    claude_price = priced.get_price("claude-sonnet-4-5").price
    assert (gpt.model, gpt.cost_cents) == ("gpt-4o", 2)
    assert (claude.model, claude.tokens) == ("claude-sonnet-4-5", claude_call.total_tokens)
    assert claude.cost_cents == cost(claude_price, 3000, 1000, 20_000) == 9  # no cached rate: input's
    assert (quote.model, quote.tokens, quote.cost_cents) == ("*", 2000 + 24_000, 2 + 9)


def test_quoting_a_model_without_a_price_is_not_found(qf: Client) -> None:
    with pytest.raises(NotFound):
        qf.quote("gpt-9", input_tokens=1, max_output_tokens=1)
    qf.put_price("gpt-4o", **GPT_4O)
    with pytest.raises(NotFound):
        qf.quote_run([{"model": "gpt-4o", "input_tokens": 1, "max_output_tokens": 1}, ModelUsage("gpt-9", 1, 1)])


# --- reserve -> LLM call -> commit, priced from the provider's usage ----------------------------------------


def fake_chat_completion(prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """What POST /v1/chat/completions returns (abridged to what metering reads)."""
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "..."}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
    }


def test_a_reserved_call_commits_the_cents_its_openai_usage_costs(priced: Client) -> None:
    price = priced.get_price("gpt-4o").price
    quote = priced.quote("gpt-4o", input_tokens=12_000, max_output_tokens=4_000)
    assert quote.cost_cents == cost(price, 12_000, 4_000) == 10  # 9.8 rounds up

    with priced.reserve("u1", {"tokens": quote.tokens, "cents": quote.cost_cents}) as held:
        assert balance(priced, "cents") == (0, 10, 490)
        response = fake_chat_completion(prompt_tokens=12_000, cached_tokens=10_240, completion_tokens=1_500)
        usage = from_openai(response["usage"], "gpt-4o")
        result = held.commit({"tokens": usage.total_tokens, "cents": usage})

    expected_cents = cost(price, 1_760, 1_500, 10_240)  # (1760*250 + 10240*125 + 1500*1000) * 140 / 10^8 = 4.508
    assert expected_cents == 5
    assert amounts(result.committed) == {"tokens": 13_500, "cents": expected_cents}
    assert amounts(result.refunded) == {"tokens": 16_000 - 13_500, "cents": 10 - expected_cents}
    assert balance(priced, "cents") == (5, 0, 495)
    assert balance(priced, "tokens")[0] == 13_500
    assert priced.verify("u1").ok


def test_a_commit_priced_above_the_hold_is_overage_not_an_error(priced: Client) -> None:
    """The quote bounds what the caller asked for; a call that ran longer still bills what it used."""
    with priced.reserve("u1", {"cents": 1}) as held:
        usage = from_openai(fake_chat_completion(100_000, 0, 10_000)["usage"], "gpt-4o")
        result = held.commit({"cents": usage})
    billed = cost(priced.get_price("gpt-4o").price, 100_000, 10_000)
    assert billed == 49
    assert amounts(result.committed) == {"cents": billed}
    assert balance(priced, "cents")[0] == billed


def test_tracked_usage_may_be_priced_in_millicents(priced: Client) -> None:
    usage = ModelUsage("gpt-4o", input_tokens=86, output_tokens=300, cached_input_tokens=1920)
    priced.track("u1", {"tokens": usage.total_tokens, "millicents": usage})
    millicents = cost(priced.get_price("gpt-4o").price, 86, 300, 1920, scale=1000)
    assert millicents == 787  # (86*250 + 1920*125 + 300*1000) * 140 * 1000 / 10^8 = 786.1
    assert balance(priced, "millicents")[0] == millicents


def test_a_new_price_applies_to_the_next_commit_only(priced: Client) -> None:
    usage = ModelUsage("gpt-4o", input_tokens=100_000, output_tokens=10_000)
    priced.track("u1", {"cents": usage})
    before = balance(priced, "cents")[0]
    priced.put_price("gpt-4o", input_per_million_cents=500, output_per_million_cents=2000, markup_percent=0)
    priced.track("u1", {"cents": usage})
    after = balance(priced, "cents")[0]
    assert before == cost(priced.get_price("gpt-4o").history[1], 100_000, 10_000) == 49
    assert after - before == (100_000 * 500 + 10_000 * 2000) // 10**6 == 70


def test_model_usage_on_a_meter_that_is_not_money_is_refused(priced: Client) -> None:
    usage = ModelUsage("gpt-4o", input_tokens=10, output_tokens=10)
    with pytest.raises(InvalidRequest) as refused:
        priced.track("u1", {"tokens": usage})
    assert refused.value.field == "lines[0].meter"


def test_model_usage_of_a_model_without_a_price_is_not_found_and_commits_nothing(priced: Client) -> None:
    with priced.reserve("u1", {"cents": 10}) as held, pytest.raises(NotFound):
        held.commit({"cents": ModelUsage("gpt-9", input_tokens=10, output_tokens=10)})
    assert held.outcome is not None and held.outcome.status == "released"  # the block's exit released the hold
    assert balance(priced, "cents") == (0, 0, 500)


# --- the async client --------------------------------------------------------------------------------------


def test_the_async_client_prices_quotes_and_commits_alike(server: LocalServer, tenant: TenantCreated) -> None:
    async def scenario() -> None:
        async with AsyncClient(api_key=tenant.secret_key, base_url=server.url, retry=FAST_RETRY) as qf:
            price = await qf.put_price("gpt-4o", markup_percent=MARKUP_PERCENT, **GPT_4O)
            assert [p.model for p in await qf.list_prices()] == ["gpt-4o"]
            assert (await qf.get_price("gpt-4o")).history == [price]
            await qf.put_plan("plan_metered", "Metered", METERED_LIMITS)
            await qf.upsert_subscription("u1", "plan_metered")
            await qf.grant_credits("u1", "cents", 500)

            quote = await qf.quote("gpt-4o", input_tokens=12_000, max_output_tokens=4_000)
            run = await qf.quote_run([ModelUsage("gpt-4o", 12_000, 4_000), ModelUsage("gpt-4o", 12_000, 4_000)])
            assert (quote.cost_cents, run.cost_cents) == (10, 20)
            async with qf.reserve("u1", {"tokens": quote.tokens, "cents": quote.cost_cents}) as held:
                usage = from_openai(fake_chat_completion(12_000, 10_240, 1_500)["usage"], "gpt-4o")
                result = await held.commit({"tokens": usage.total_tokens, "cents": usage})
            assert amounts(result.committed) == {"tokens": 13_500, "cents": cost(price, 1_760, 1_500, 10_240)}
            with pytest.raises(NotFound):
                await qf.quote("gpt-9", input_tokens=1, max_output_tokens=1)

    asyncio.run(scenario())
