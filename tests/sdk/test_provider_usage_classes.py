"""Usage the adapters used to under-bill, built with the providers' own SDK types: Gemini Live / embedding output
(`response_token_count`), Mistral's all-default `UsageInfo()`, Anthropic cache writes (5-minute and 1-hour classes)
and beta compaction iterations, OpenAI cache writes."""

from __future__ import annotations

import pytest
from anthropic.types import CacheCreation, Usage
from anthropic.types.beta import BetaUsage
from google.genai import types as genai_types
from mistralai.client.models import UsageInfo
from openai.types import CompletionUsage
from openai.types.completion_usage import PromptTokensDetails
from openai.types.responses import ResponseUsage

from quotaflow.sdk import ModelUsage, UnrecognizedUsage, from_anthropic, from_gemini, from_mistral, from_openai

pytestmark = pytest.mark.unit


def test_gemini_live_output_reported_as_response_tokens_is_billed() -> None:
    usage = genai_types.UsageMetadata(prompt_token_count=120, response_token_count=48, thoughts_token_count=7)
    counted = from_gemini(usage, "gemini-live-2.5-flash")
    assert counted == ModelUsage("gemini-live-2.5-flash", input_tokens=120, output_tokens=55)


def test_gemini_live_usage_as_wire_json_is_billed_the_same() -> None:
    wire = {"promptTokenCount": 120, "responseTokenCount": 48, "totalTokenCount": 168}
    assert from_gemini(wire, "m").output_tokens == 48


def test_gemini_usage_with_both_candidates_and_response_counts_is_refused() -> None:
    wire = {"promptTokenCount": 1, "candidatesTokenCount": 2, "responseTokenCount": 2}
    with pytest.raises(UnrecognizedUsage, match="both"):
        from_gemini(wire, "m")


def test_an_empty_mistral_usage_info_fails_loudly_instead_of_billing_zero() -> None:
    with pytest.raises(UnrecognizedUsage):
        from_mistral(UsageInfo(), "mistral-large-latest")


def test_a_mistral_usage_info_of_zero_tokens_fails_loudly() -> None:
    usage = UsageInfo.model_validate({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
    with pytest.raises(UnrecognizedUsage, match="0 tokens"):
        from_mistral(usage, "mistral-large-latest")


def test_a_mistral_usage_info_missing_one_count_fails_loudly() -> None:
    with pytest.raises(UnrecognizedUsage):
        from_mistral(UsageInfo.model_validate({"prompt_tokens": 40}), "mistral-large-latest")


def test_a_parsed_mistral_usage_info_is_billed() -> None:
    usage = UsageInfo.model_validate({"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49})
    assert from_mistral(usage, "m") == ModelUsage("m", input_tokens=40, output_tokens=9)


def test_anthropic_cache_writes_go_to_the_cache_write_classes_split_by_ttl() -> None:
    usage = Usage(
        input_tokens=30,
        output_tokens=200,
        cache_read_input_tokens=1_000,
        cache_creation_input_tokens=5_000,
        cache_creation=CacheCreation(ephemeral_5m_input_tokens=3_000, ephemeral_1h_input_tokens=2_000),
    )
    counted = from_anthropic(usage, "claude-sonnet-4-5")
    assert counted == ModelUsage(
        "claude-sonnet-4-5",
        input_tokens=30,
        output_tokens=200,
        cached_input_tokens=1_000,
        cache_write_tokens=3_000,
        cache_write_1h_tokens=2_000,
    )
    assert counted.total_tokens == 30 + 200 + 1_000 + 5_000


def test_anthropic_cache_writes_without_a_split_are_five_minute_writes() -> None:
    usage = Usage(input_tokens=30, output_tokens=2, cache_creation_input_tokens=700)
    counted = from_anthropic(usage, "m")
    assert (counted.input_tokens, counted.cache_write_tokens, counted.cache_write_1h_tokens) == (30, 700, 0)


def test_an_anthropic_split_larger_than_its_total_is_refused() -> None:
    usage = Usage(
        input_tokens=1,
        output_tokens=1,
        cache_creation_input_tokens=10,
        cache_creation=CacheCreation(ephemeral_5m_input_tokens=0, ephemeral_1h_input_tokens=11),
    )
    with pytest.raises(UnrecognizedUsage, match="1-hour"):
        from_anthropic(usage, "m")


def test_anthropic_beta_compaction_iterations_are_added_to_the_top_level_counts() -> None:
    usage = BetaUsage.model_validate(
        {
            "input_tokens": 500,
            "output_tokens": 120,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "iterations": [
                {
                    "type": "compaction",
                    "input_tokens": 150_000,
                    "output_tokens": 3_000,
                    "cache_read_input_tokens": 10,
                    "cache_creation_input_tokens": 20,
                },
                {
                    "type": "message",
                    "input_tokens": 500,
                    "output_tokens": 120,
                    "cache_read_input_tokens": 0,
                    "cache_creation_input_tokens": 0,
                },
            ],
        }
    )
    counted = from_anthropic(usage, "claude-opus-4-5")
    assert counted == ModelUsage(
        "claude-opus-4-5", input_tokens=150_500, output_tokens=3_120, cached_input_tokens=10, cache_write_tokens=20
    )


def test_openai_chat_cache_writes_are_taken_out_of_the_prompt() -> None:
    usage = CompletionUsage(
        prompt_tokens=1_000,
        completion_tokens=10,
        total_tokens=1_010,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=300, cache_write_tokens=600),
    )
    counted = from_openai(usage, "gpt-5")
    assert counted == ModelUsage("gpt-5", 100, 10, cached_input_tokens=300, cache_write_tokens=600)
    assert counted.total_tokens == usage.total_tokens


def test_openai_responses_long_retention_cache_writes_are_the_one_hour_class() -> None:
    usage = ResponseUsage.model_validate(
        {
            "input_tokens": 2_000,
            "output_tokens": 50,
            "total_tokens": 2_050,
            "input_tokens_details": {
                "cached_tokens": 0,
                "cache_write_tokens": 1_500,
                "cache_write_tokens_details": {"ttl_30m_tokens": 500, "ttl_12h_tokens": 1_000},
            },
            "output_tokens_details": {"reasoning_tokens": 20},
        }
    )
    counted = from_openai(usage, "gpt-5")
    assert counted == ModelUsage("gpt-5", 500, 50, cache_write_tokens=500, cache_write_1h_tokens=1_000)


def test_the_from_model_payload_carries_cache_writes_only_when_there_are_some() -> None:
    assert "cache_write_tokens" not in ModelUsage("m", 1, 2).from_model_payload()
    payload = ModelUsage("m", 1, 2, cache_write_tokens=3, cache_write_1h_tokens=4).from_model_payload()
    assert (payload["cache_write_tokens"], payload["cache_write_1h_tokens"]) == (3, 4)
