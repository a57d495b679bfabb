"""Provider usage adapters: the usage a model provider reports for one call, as the token counts quotaflow prices.

Pure functions with no provider SDK dependency. Each takes the usage part of a response either as the JSON the
provider's HTTP API returns (a dict) or as its Python SDK's object (pydantic models read by attribute), and returns
a `ModelUsage` whose counts do not overlap: `input_tokens` is the prompt billed at the input price,
`cached_input_tokens` the prompt served from the provider's cache (billed at the price's cached rate), and
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


class UnrecognizedUsage(ValueError):
    """The usage handed to an adapter is missing the counts it reads, or they do not add up."""


@dataclass(frozen=True)
class ModelUsage:
    """The token counts of one model call, in the shape of a `from_model` line. The three counts are disjoint."""

    model: str
    input_tokens: int = 0  # prompt tokens not served from a cache
    output_tokens: int = 0  # generated tokens, reasoning or "thinking" tokens included
    cached_input_tokens: int = 0  # prompt tokens read from the provider's cache

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must not be empty")
        for name in ("input_tokens", "output_tokens", "cached_input_tokens"):
            value = getattr(self, name)
            if not _is_count(value):
                raise ValueError(f"{name} must be an integer from 0 to {TOKENS_MAX}, not {value!r}")

    @property
    def total_tokens(self) -> int:
        """Every token of the call: what a `tokens` meter counts."""
        return self.input_tokens + self.cached_input_tokens + self.output_tokens

    def from_model_payload(self) -> dict[str, str | int]:
        """The `from_model` object of a usage line (`{"meter": "cents", "from_model": ...}`)."""
        return {
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
        }


def from_openai(usage: Any, model: str) -> ModelUsage:
    """OpenAI's `usage`, from either API, told apart by its field names.

    - Chat Completions (`CompletionUsage`): `prompt_tokens` counts the whole prompt, cached part included, and
      `prompt_tokens_details.cached_tokens` (absent or null without a cache hit) is that cached part;
      `completion_tokens` includes any `completion_tokens_details.reasoning_tokens`.
    - Responses (`ResponseUsage`): `input_tokens` counts the whole input and `input_tokens_details.cached_tokens`
      its cached part; `output_tokens` includes `output_tokens_details.reasoning_tokens`."""
    if _value(usage, "prompt_tokens") is not None:
        prompt, cached = _count(usage, "prompt_tokens"), _count(usage, "prompt_tokens_details", "cached_tokens")
        output = _count(usage, "completion_tokens")
    elif _value(usage, "input_tokens") is not None:
        prompt, cached = _count(usage, "input_tokens"), _count(usage, "input_tokens_details", "cached_tokens")
        output = _count(usage, "output_tokens")
    else:
        raise UnrecognizedUsage(f"not an OpenAI usage (no prompt_tokens or input_tokens): {usage!r}")
    return ModelUsage(model, _uncached(prompt, cached, "OpenAI"), output, cached)


def from_anthropic(usage: Any, model: str) -> ModelUsage:
    """Anthropic Messages' `usage` (`Usage` in the anthropic SDK). The input is split three ways that add up to the
    whole of it: `input_tokens` (neither read from nor written to the cache), `cache_creation_input_tokens` (written to
    the cache by this call) and `cache_read_input_tokens` (read from it); the two cache fields may be absent or null.
    Cache writes count as input here (Anthropic bills them above the base input rate: price the model with that in
    mind); cache reads are `cached_input_tokens`. `output_tokens` is the billed total, extended thinking included."""
    if _value(usage, "input_tokens") is None or _value(usage, "output_tokens") is None:
        raise UnrecognizedUsage(f"not an Anthropic usage (no input_tokens and output_tokens): {usage!r}")
    written = _count(usage, "cache_creation_input_tokens")
    return ModelUsage(
        model,
        input_tokens=_count(usage, "input_tokens") + written,
        output_tokens=_count(usage, "output_tokens"),
        cached_input_tokens=_count(usage, "cache_read_input_tokens"),
    )


def from_gemini(usage_metadata: Any, model: str) -> ModelUsage:
    """Gemini's `usageMetadata` (REST JSON, camelCase) or the google-genai SDK's `usage_metadata`
    (`GenerateContentResponseUsageMetadata`, snake_case attributes).

    `promptTokenCount` includes `cachedContentTokenCount` (the cached part); `toolUsePromptTokenCount` (tool results
    fed back to the model) is input besides the prompt; `candidatesTokenCount` and `thoughtsTokenCount` (a thinking
    model's thoughts, reported apart from the candidates) are both output. Together they make `totalTokenCount`."""
    if _value(usage_metadata, "promptTokenCount", "prompt_token_count") is None:
        raise UnrecognizedUsage(f"not a Gemini usageMetadata (no promptTokenCount): {usage_metadata!r}")
    prompt = _count(usage_metadata, ("promptTokenCount", "prompt_token_count"))
    cached = _count(usage_metadata, ("cachedContentTokenCount", "cached_content_token_count"))
    tool_use = _count(usage_metadata, ("toolUsePromptTokenCount", "tool_use_prompt_token_count"))
    candidates = _count(usage_metadata, ("candidatesTokenCount", "candidates_token_count"))
    thoughts = _count(usage_metadata, ("thoughtsTokenCount", "thoughts_token_count"))
    return ModelUsage(model, _uncached(prompt, cached, "Gemini") + tool_use, candidates + thoughts, cached)


def from_mistral(usage: Any, model: str) -> ModelUsage:
    """Mistral chat completions' `usage` (`UsageInfo` in the mistralai SDK): `prompt_tokens` and
    `completion_tokens`. With prompt caching, Mistral reports the cached part of the prompt as
    `prompt_tokens_details.cached_tokens` (some SDK models carry `num_cached_tokens` instead), read, like OpenAI's
    field of the same name, as a part of `prompt_tokens`."""
    if _value(usage, "prompt_tokens") is None or _value(usage, "completion_tokens") is None:
        raise UnrecognizedUsage(f"not a Mistral usage (no prompt_tokens and completion_tokens): {usage!r}")
    prompt = _count(usage, "prompt_tokens")
    cached = _count(usage, "prompt_tokens_details", "cached_tokens") or _count(usage, "num_cached_tokens")
    return ModelUsage(model, _uncached(prompt, cached, "Mistral"), _count(usage, "completion_tokens"), cached)


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
