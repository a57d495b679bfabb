"""Provider usage adapters: the usage a model provider reports for one call, as the token counts quotaflow prices.

Pure functions with no provider SDK dependency. Each takes the usage part of a response either as the JSON the
provider's HTTP API returns (a dict) or as its Python SDK's object (pydantic models read by attribute), and returns
a `ModelUsage` whose counts do not overlap, one per price class: `input_tokens` is the prompt billed at the input
price, `cached_input_tokens` the prompt served from the provider's cache, `cache_write_tokens` and
`cache_write_1h_tokens` the prompt written to it (5-minute and 1-hour-or-longer retention, billed at a premium), and
`output_tokens` everything generated, reasoning included.

    usage = from_openai(response.usage, "gpt-4o")
    r.commit({"tokens": usage.total_tokens, "cents": usage})   # the server prices `cents` from the counts

`model` is the name the tenant priced (`gpt-4o`), given by the caller: responses name dated snapshots
(`gpt-4o-2024-08-06`) that a price table need not list.

A usage without the counts an adapter reads raises `UnrecognizedUsage` (a `ValueError`): billing zero for a call
that happened is worse than failing loudly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TOKENS_MAX = 2**53 - 1  # the server's largest amount: what a JSON number carries exactly
COUNT_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "cache_write_1h_tokens")
ALWAYS_SENT = frozenset({"input_tokens", "output_tokens", "cached_input_tokens"})


class UnrecognizedUsage(ValueError):
    """The usage handed to an adapter is missing the counts it reads, or they do not add up."""


@dataclass(frozen=True)
class ModelUsage:
    """The token counts of one model call, in the shape of a `from_model` line. The three counts are disjoint."""

    model: str
    input_tokens: int = 0  # prompt tokens neither read from nor written to a cache
    output_tokens: int = 0  # generated tokens, reasoning or "thinking" tokens included
    cached_input_tokens: int = 0  # prompt tokens read from the provider's cache
    cache_write_tokens: int = 0  # prompt tokens written to the cache (a 5-minute TTL, or one not reported)
    cache_write_1h_tokens: int = 0  # prompt tokens written to the cache for an hour or longer

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must not be empty")
        for name in COUNT_FIELDS:
            value = getattr(self, name)
            if not _is_count(value):
                raise ValueError(f"{name} must be an integer from 0 to {TOKENS_MAX}, not {value!r}")

    @property
    def total_tokens(self) -> int:
        """Every token of the call: what a `tokens` meter counts."""
        return sum(getattr(self, name) for name in COUNT_FIELDS)

    def from_model_payload(self) -> dict[str, str | int]:
        """The `from_model` object of a usage line (`{"meter": "cents", "from_model": ...}`); zero cache-write counts
        are left out, so the payload also suits a server that predates those classes."""
        payload: dict[str, str | int] = {"model": self.model}
        for name in COUNT_FIELDS:
            value = getattr(self, name)
            if value or name in ALWAYS_SENT:
                payload[name] = value
        return payload


def from_openai(usage: Any, model: str) -> ModelUsage:
    """OpenAI's `usage`, from either API, told apart by its field names.

    - Chat Completions (`CompletionUsage`): `prompt_tokens` counts the whole prompt, cached part and cache writes
      included; `prompt_tokens_details.cached_tokens` (absent or null without a cache hit) is the part read from the
      cache and `prompt_tokens_details.cache_write_tokens` the part written to it; `completion_tokens` includes any
      `completion_tokens_details.reasoning_tokens` (and audio output tokens).
    - Responses (`ResponseUsage`): `input_tokens` counts the whole input, `input_tokens_details.cached_tokens` its
      cached part and `input_tokens_details.cache_write_tokens` the part written to the cache, split by
      `cache_write_tokens_details` into `ttl_30m_tokens` (a cache write) and `ttl_12h_tokens` (a 1-hour-or-longer
      cache write); `output_tokens` includes `output_tokens_details.reasoning_tokens`."""
    if _value(usage, "prompt_tokens") is not None:
        prompt, details, output = _count(usage, "prompt_tokens"), "prompt_tokens_details", "completion_tokens"
    elif _value(usage, "input_tokens") is not None:
        prompt, details, output = _count(usage, "input_tokens"), "input_tokens_details", "output_tokens"
    else:
        raise UnrecognizedUsage(f"not an OpenAI usage (no prompt_tokens or input_tokens): {usage!r}")
    cached = _count(usage, details, "cached_tokens")
    written = _count(usage, details, "cache_write_tokens")
    written_long = _count(usage, details, "cache_write_tokens_details", "ttl_12h_tokens")
    if written_long > written:
        raise UnrecognizedUsage(f"OpenAI usage: {written_long} 12-hour cache writes of {written} in all")
    return ModelUsage(
        model,
        input_tokens=_uncached(prompt, cached + written, "OpenAI"),
        output_tokens=_count(usage, output),
        cached_input_tokens=cached,
        cache_write_tokens=written - written_long,
        cache_write_1h_tokens=written_long,
    )


def from_anthropic(usage: Any, model: str) -> ModelUsage:
    """Anthropic Messages' `usage` (`Usage`, or `BetaUsage` of the beta API, in the anthropic SDK). The input is split
    three ways that add up to the whole of it: `input_tokens` (neither read from nor written to the cache),
    `cache_creation_input_tokens` (written to the cache by this call) and `cache_read_input_tokens` (read from it); the
    cache fields may be absent or null. Cache writes are billed at a premium: where `cache_creation` splits them into
    `ephemeral_5m_input_tokens` and `ephemeral_1h_input_tokens`, they go to the 5-minute and 1-hour cache-write
    classes, otherwise all to the 5-minute one (Anthropic's default TTL). `output_tokens` is the billed total,
    extended thinking included.

    The beta API's `usage.iterations` lists each sampling iteration; a `compaction` iteration's tokens are not in the
    top-level fields (the SDK says so), so they are added here, class by class."""
    if _value(usage, "input_tokens") is None or _value(usage, "output_tokens") is None:
        raise UnrecognizedUsage(f"not an Anthropic usage (no input_tokens and output_tokens): {usage!r}")
    parts = [usage] + [
        iteration for iteration in (_value(usage, "iterations") or ()) if _value(iteration, "type") == "compaction"
    ]
    return _sum_usages(model, [_anthropic_part(part, model) for part in parts])


def _anthropic_part(usage: Any, model: str) -> ModelUsage:
    written = _count(usage, "cache_creation_input_tokens")
    written_1h = _count(usage, "cache_creation", "ephemeral_1h_input_tokens")
    if written_1h > written:
        raise UnrecognizedUsage(f"Anthropic usage: {written_1h} 1-hour cache writes of {written} in all")
    return ModelUsage(
        model,
        input_tokens=_count(usage, "input_tokens"),
        output_tokens=_count(usage, "output_tokens"),
        cached_input_tokens=_count(usage, "cache_read_input_tokens"),
        cache_write_tokens=written - written_1h,
        cache_write_1h_tokens=written_1h,
    )


def _sum_usages(model: str, usages: list[ModelUsage]) -> ModelUsage:
    return ModelUsage(model, **{name: sum(getattr(u, name) for u in usages) for name in COUNT_FIELDS})


def from_gemini(usage_metadata: Any, model: str) -> ModelUsage:
    """Gemini's `usageMetadata` (REST JSON, camelCase) or the google-genai SDK's `usage_metadata`
    (`GenerateContentResponseUsageMetadata`, snake_case attributes).

    `promptTokenCount` includes `cachedContentTokenCount` (the cached part); `toolUsePromptTokenCount` (tool results
    fed back to the model) is input besides the prompt; `candidatesTokenCount` and `thoughtsTokenCount` (a thinking
    model's thoughts, reported apart from the candidates) are both output. Together they make `totalTokenCount`.
    The Live API and embeddings (`UsageMetadata`) name the generated output `responseTokenCount` instead of
    `candidatesTokenCount`; a usage carrying both is refused rather than guessed at."""
    if _value(usage_metadata, "promptTokenCount", "prompt_token_count") is None:
        raise UnrecognizedUsage(f"not a Gemini usageMetadata (no promptTokenCount): {usage_metadata!r}")
    prompt = _count(usage_metadata, ("promptTokenCount", "prompt_token_count"))
    cached = _count(usage_metadata, ("cachedContentTokenCount", "cached_content_token_count"))
    tool_use = _count(usage_metadata, ("toolUsePromptTokenCount", "tool_use_prompt_token_count"))
    candidates = _count(usage_metadata, ("candidatesTokenCount", "candidates_token_count"))
    response = _count(usage_metadata, ("responseTokenCount", "response_token_count"))
    if candidates and response:
        raise UnrecognizedUsage(f"Gemini usage reports both candidates and response tokens: {usage_metadata!r}")
    thoughts = _count(usage_metadata, ("thoughtsTokenCount", "thoughts_token_count"))
    return ModelUsage(model, _uncached(prompt, cached, "Gemini") + tool_use, candidates + response + thoughts, cached)


def from_mistral(usage: Any, model: str) -> ModelUsage:
    """Mistral chat completions' `usage` (`UsageInfo` in the mistralai SDK): `prompt_tokens` and
    `completion_tokens`. With prompt caching, Mistral reports the cached part of the prompt as
    `prompt_tokens_details.cached_tokens` (some SDK models carry `num_cached_tokens` instead), read, like OpenAI's
    field of the same name, as a part of `prompt_tokens`.

    The SDK's `UsageInfo` defaults a count the response left out to 0, so `UsageInfo()` reads as a free call: a count
    the model was not given (not in its `model_fields_set`), or a usage whose every count is 0, is refused."""
    if not _reported(usage, "prompt_tokens") or not _reported(usage, "completion_tokens"):
        raise UnrecognizedUsage(f"not a Mistral usage (no prompt_tokens and completion_tokens): {usage!r}")
    if not _count(usage, "prompt_tokens") and not _count(usage, "completion_tokens"):
        raise UnrecognizedUsage(f"a Mistral usage of 0 tokens reports no call: {usage!r}")
    prompt = _count(usage, "prompt_tokens")
    cached = _count(usage, "prompt_tokens_details", "cached_tokens") or _count(usage, "num_cached_tokens")
    return ModelUsage(model, _uncached(prompt, cached, "Mistral"), _count(usage, "completion_tokens"), cached)


def from_bedrock(usage: Any, model: str) -> ModelUsage:
    """Bedrock Converse's `usage` (`TokenUsage` in botocore's bedrock-runtime service model): `inputTokens` (the
    prompt not read from or written to the cache), `cacheReadInputTokens`, `cacheWriteInputTokens` (split by
    `cacheDetails`, each `{"ttl": "5m"|"1h", "inputTokens"}`) and `outputTokens`, disjoint as with Anthropic."""
    if _value(usage, "inputTokens") is None or _value(usage, "outputTokens") is None:
        raise UnrecognizedUsage(f"not a Bedrock usage (no inputTokens and outputTokens): {usage!r}")
    written = _count(usage, "cacheWriteInputTokens")
    written_1h = sum(
        _count(detail, "inputTokens")
        for detail in (_value(usage, "cacheDetails") or ())
        if _value(detail, "ttl") == "1h"
    )
    if written_1h > written:
        raise UnrecognizedUsage(f"Bedrock usage: {written_1h} 1-hour cache writes of {written} in all")
    return ModelUsage(
        model,
        input_tokens=_count(usage, "inputTokens"),
        output_tokens=_count(usage, "outputTokens"),
        cached_input_tokens=_count(usage, "cacheReadInputTokens"),
        cache_write_tokens=written - written_1h,
        cache_write_1h_tokens=written_1h,
    )


# --- reading dicts and objects alike -------------------------------------------------------------------


Name = str | tuple[str, ...]  # a field, or its spellings (camelCase JSON, snake_case SDK attribute)


def _value(source: Any, *names: str) -> Any:
    """The first of `names` that `source` has (a key of a mapping, else an attribute) and that is set: None, and a
    falsy value that is neither a number nor a string (an SDK's "unset" sentinel, as mistralai's `UNSET`), are not."""
    for name in names:
        found = source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)
        if found is not None and (found or isinstance(found, int | float | str)):
            return found
    return None


def _reported(source: Any, name: str) -> bool:
    """Whether `source` carries `name` itself, not a default its model filled in (pydantic's `model_fields_set`)."""
    fields_set = getattr(source, "model_fields_set", None)
    if isinstance(fields_set, set | frozenset) and name not in fields_set:
        return False
    return _value(source, name) is not None


def _count(source: Any, *path: Name) -> int:
    """The token count at `path` (nested fields), 0 where a field along it is absent or null."""
    value = source
    for step in path:
        value = _value(value, *((step,) if isinstance(step, str) else step))
        if value is None:
            return 0
    if not _is_count(value):
        field = ".".join(step if isinstance(step, str) else step[0] for step in path)
        raise UnrecognizedUsage(f"{field} is not a token count: {value!r}")
    return int(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= TOKENS_MAX


def _uncached(prompt_tokens: int, cached_tokens: int, provider: str) -> int:
    """The prompt minus its cached part, where the provider counts the cached part inside the prompt."""
    if cached_tokens > prompt_tokens:
        raise UnrecognizedUsage(f"{provider} usage: {cached_tokens} cached tokens in a prompt of {prompt_tokens}")
    return prompt_tokens - cached_tokens
