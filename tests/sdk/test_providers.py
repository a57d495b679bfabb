"""The provider usage adapters on real-shaped responses (tests/sdk/provider_responses.json), read both as the JSON the
providers' HTTP APIs return and as their Python SDKs' own objects: openai's `CompletionUsage`/`ResponseUsage`,
anthropic's `Usage`/`BetaUsage`, google-genai's `GenerateContentResponseUsageMetadata`/`UsageMetadata` and mistralai's
`UsageInfo` (the SDKs are test dependencies: the `dev` extra)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from anthropic.types import Usage as AnthropicUsage
from google.genai.types import GenerateContentResponseUsageMetadata as GenaiUsageMetadata
from hypothesis import given
from hypothesis import strategies as st
from mistralai.client.models import UsageInfo as MistralUsageInfo
from openai.types import CompletionUsage as OpenAICompletionUsage
from openai.types.responses import ResponseUsage as OpenAIResponseUsage
from pydantic import BaseModel, ValidationError

from quotaflow.sdk import (
    ModelUsage,
    QuoteRun,
    UnrecognizedUsage,
    calls,
    from_anthropic,
    from_gemini,
    from_mistral,
    from_openai,
)

pytestmark = pytest.mark.unit
RESPONSES: dict[str, dict[str, Any]] = json.loads(Path(__file__).with_name("provider_responses.json").read_text())


Adapter = Callable[[Any, str], ModelUsage]
CASES = [
    # adapter, response, usage field, SDK class, model priced, (input, output, cached[, cache write, 1h write]), total
    (from_openai, "openai_chat_cached", "usage", OpenAICompletionUsage, "gpt-4o", (86, 300, 1920), 2306),
    (from_openai, "openai_chat_no_details", "usage", OpenAICompletionUsage, "gpt-4o-mini", (13, 7, 0), 20),
    (from_openai, "openai_responses_reasoning", "usage", OpenAIResponseUsage, "o4-mini", (1024, 812, 4096), 5932),
    (from_anthropic, "anthropic_cache_write", "usage", AnthropicUsage, "claude-sonnet-4-5", (21, 393, 0, 188086), None),
    (from_anthropic, "anthropic_cache_read", "usage", AnthropicUsage, "claude-sonnet-4-5", (21, 393, 188_086), None),
    (from_anthropic, "anthropic_no_cache_fields", "usage", AnthropicUsage, "claude-haiku-4-5", (2095, 503, 0), None),
    (from_gemini, "gemini_thinking", "usageMetadata", GenaiUsageMetadata, "gemini-2.5-flash", (20, 603, 0), 623),
    (
        from_gemini,
        "gemini_cached_with_tools",
        "usageMetadata",
        GenaiUsageMetadata,
        "gemini-2.5-pro",
        (353, 1332, 12_288),
        13_973,
    ),
    (from_mistral, "mistral_chat", "usage", MistralUsageInfo, "mistral-large-latest", (16, 34, 0), 50),
    (from_mistral, "mistral_chat_cached", "usage", MistralUsageInfo, "mistral-large-latest", (70, 180, 2240), 2490),
]
CASE_IDS = [case[1] for case in CASES]


def usage_json(response: str, field: str) -> dict[str, Any]:
    usage: dict[str, Any] = RESPONSES[response][field]
    return usage


@pytest.mark.parametrize(("adapter", "response", "field", "sdk_class", "model", "counts", "total"), CASES, ids=CASE_IDS)
def test_an_adapter_reads_the_http_json_and_the_sdk_object_alike(
    adapter: Adapter,
    response: str,
    field: str,
    sdk_class: type[BaseModel],
    model: str,
    counts: tuple[int, ...],
    total: int | None,
) -> None:
    usage = usage_json(response, field)
    sdk_object = sdk_class.model_validate(usage)

    from_json = adapter(usage, model)
    from_object = adapter(sdk_object, model)

    assert from_json == ModelUsage(model, *counts)
    assert from_object == from_json
    if total:  # the provider's own total: the three counts neither overlap nor miss anything
        assert from_json.total_tokens == total


def test_anthropic_counts_every_input_token_once() -> None:
    """Anthropic's three input fields add up to the whole input: none of them is inside another."""
    usage = usage_json("anthropic_cache_read", "usage")
    counted = from_anthropic(usage, "claude-sonnet-4-5")
    whole_input = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
    assert counted.input_tokens + counted.cached_input_tokens + counted.cache_write_tokens == whole_input
    assert counted.total_tokens == whole_input + usage["output_tokens"]


def test_the_gemini_sdk_object_keeps_snake_case_attributes() -> None:
    """The stand-in reads camelCase JSON into snake_case attributes, as google-genai's model does."""
    metadata = GenaiUsageMetadata.model_validate(usage_json("gemini_cached_with_tools", "usageMetadata"))
    assert metadata.cached_content_token_count == 12_288
    assert not hasattr(metadata, "cachedContentTokenCount")


def test_the_mistral_sdk_object_carries_cache_details_as_an_extra_field() -> None:
    info = MistralUsageInfo.model_validate(usage_json("mistral_chat_cached", "usage"))
    assert getattr(info, "prompt_tokens_details") == {"cached_tokens": 2240}  # noqa: B009 - an extra field
    assert from_mistral(info, "mistral-large-latest").cached_input_tokens == 2240


def test_mistral_num_cached_tokens_is_read_when_the_details_are_absent() -> None:
    usage = {"prompt_tokens": 300, "completion_tokens": 20, "total_tokens": 320, "num_cached_tokens": 256}
    assert from_mistral(usage, "mistral-small-latest") == ModelUsage("mistral-small-latest", 44, 20, 256)


class Unset(BaseModel):
    """mistralai's sentinel for a field the response left out: falsy, and not None."""

    def __bool__(self) -> bool:
        return False


class MistralUsageWithSentinels(BaseModel):
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    num_cached_tokens: int | Unset = Unset()
    prompt_tokens_details: dict[str, int] | Unset = Unset()


def test_mistral_unset_fields_are_read_as_absent() -> None:
    usage = MistralUsageWithSentinels(prompt_tokens=16, completion_tokens=34)
    assert from_mistral(usage, "mistral-large-latest") == ModelUsage("mistral-large-latest", 16, 34, 0)


def test_openai_null_details_count_as_no_cache() -> None:
    usage = {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55, "prompt_tokens_details": None}
    assert from_openai(usage, "gpt-4o") == ModelUsage("gpt-4o", 50, 5, 0)
    assert from_openai(OpenAICompletionUsage.model_validate(usage), "gpt-4o") == ModelUsage("gpt-4o", 50, 5, 0)


@pytest.mark.parametrize(
    ("adapter", "usage"),
    [
        (from_openai, None),
        (from_openai, {"total_tokens": 20}),
        (from_anthropic, {"prompt_tokens": 10, "completion_tokens": 2}),
        (from_gemini, RESPONSES["openai_chat_cached"]["usage"]),
        (from_mistral, {"input_tokens": 10, "output_tokens": 2}),
    ],
    ids=["none", "openai-total-only", "anthropic-given-openai", "gemini-given-openai", "mistral-given-anthropic"],
)
def test_a_usage_an_adapter_cannot_read_is_refused_rather_than_billed_as_zero(adapter: Adapter, usage: Any) -> None:
    with pytest.raises(UnrecognizedUsage, match="not a"):
        adapter(usage, "some-model")


@pytest.mark.parametrize(
    ("adapter", "usage", "message"),
    [
        (
            from_openai,
            {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 11}},
            "11 cached",
        ),
        (from_gemini, {"promptTokenCount": 5, "cachedContentTokenCount": 6}, "6 cached"),
        (from_openai, {"prompt_tokens": 10.0, "completion_tokens": 1}, "prompt_tokens is not a token count"),
        (from_anthropic, {"input_tokens": True, "output_tokens": 1}, "input_tokens is not a token count"),
        (from_mistral, {"prompt_tokens": "16", "completion_tokens": 34}, "prompt_tokens is not a token count"),
        (from_gemini, {"promptTokenCount": 5, "candidatesTokenCount": -1}, "candidatesTokenCount is not a token count"),
    ],
    ids=["cache-beyond-prompt", "gemini-cache-beyond-prompt", "float", "bool", "string", "negative"],
)
def test_counts_that_do_not_add_up_are_refused(adapter: Adapter, usage: dict[str, Any], message: str) -> None:
    with pytest.raises(UnrecognizedUsage, match=message):
        adapter(usage, "some-model")


def test_the_adapters_are_value_errors_a_caller_can_catch_broadly() -> None:
    assert issubclass(UnrecognizedUsage, ValueError)


# --- ModelUsage ------------------------------------------------------------------------------------------


def test_model_usage_is_frozen_and_builds_the_from_model_payload() -> None:
    usage = from_openai(usage_json("openai_chat_cached", "usage"), "gpt-4o")
    assert usage.from_model_payload() == {
        "model": "gpt-4o",
        "input_tokens": 86,
        "output_tokens": 300,
        "cached_input_tokens": 1920,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        usage.input_tokens = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "", "input_tokens": 1},
        {"model": "gpt-4o", "input_tokens": -1},
        {"model": "gpt-4o", "output_tokens": 1.5},
        {"model": "gpt-4o", "cached_input_tokens": 2**53},
    ],
    ids=["no-model", "negative", "float", "beyond-json-integers"],
)
def test_model_usage_refuses_what_the_server_would(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"model must not be empty|must be an integer"):
        ModelUsage(**fields)


@given(
    prompt=st.integers(0, 10**9),
    cached_share=st.fractions(0, 1),
    completion=st.integers(0, 10**9),
)
def test_openai_chat_counts_split_the_prompt_without_loss(prompt: int, cached_share: Any, completion: int) -> None:
    cached = int(prompt * cached_share)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    counted = from_openai(usage, "gpt-4o")
    assert counted.input_tokens + counted.cached_input_tokens == prompt
    assert counted.total_tokens == prompt + completion


# --- ModelUsage in requests --------------------------------------------------------------------------------


def test_a_model_usage_line_is_sent_as_from_model_and_an_int_as_amount() -> None:
    usage = ModelUsage("gpt-4o", input_tokens=86, output_tokens=300, cached_input_tokens=1920)
    commit = calls.commit("res_1", {"tokens": usage.total_tokens, "cents": usage})
    track = calls.track("u1", {"millicents": usage}, None)
    assert commit.body == {
        "lines": [
            {"meter": "tokens", "amount": 2306},
            {"meter": "cents", "from_model": usage.from_model_payload()},
        ]
    }
    assert track.body == {"user_id": "u1", "lines": [{"meter": "millicents", "from_model": usage.from_model_payload()}]}


def test_a_run_to_quote_may_mix_mappings_model_usages_and_quote_runs() -> None:
    call = calls.quote_run(
        [
            {"model": "gpt-4o", "input_tokens": 1200, "max_output_tokens": 800},
            ModelUsage("claude-sonnet-4-5", input_tokens=300, output_tokens=90, cached_input_tokens=5000),
            QuoteRun(model="gemini-2.5-pro", input_tokens=10, max_output_tokens=20, cached_input_tokens=30),
        ]
    )
    assert call.body == {
        "lines": [
            {"model": "gpt-4o", "input_tokens": 1200, "max_output_tokens": 800, "cached_input_tokens": 0},
            {"model": "claude-sonnet-4-5", "input_tokens": 300, "max_output_tokens": 90, "cached_input_tokens": 5000},
            {"model": "gemini-2.5-pro", "input_tokens": 10, "max_output_tokens": 20, "cached_input_tokens": 30},
        ]
    }


@pytest.mark.parametrize(
    "runs",
    [
        [{"model": "gpt-4o", "input_tokens": 1200.0, "max_output_tokens": 800}],
        [{"model": "gpt-4o", "input_tokens": 1200, "max_output_tokens": 800, "output_tokens": 10}],
        [{"model": "gpt-4o", "input_tokens": 1200}],
    ],
    ids=["float", "unknown-field", "no-output-cap"],
)
def test_a_malformed_run_fails_before_any_request(runs: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        calls.quote_run(runs)


def test_an_empty_run_fails_before_any_request() -> None:
    with pytest.raises(ValueError, match="at least one call"):
        calls.quote_run([])
