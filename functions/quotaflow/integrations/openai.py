"""OpenAI (`openai.OpenAI` / `AsyncOpenAI`): `chat.completions.create` and `responses.create`, streaming included.

A chat stream reports usage only when asked (`stream_options={"include_usage": True}`): it is asked for unless the
caller set `include_usage` itself; without it the stream is billed from its text, marked estimated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quotaflow.integrations.core import AsyncMeter, Meter, Proxy, Request, Settings, StreamTally, merge, nested
from quotaflow.sdk.providers import from_openai

PROMPT_KEYS = ("messages", "input", "instructions", "tools", "functions")


def _request(settings: Settings, kwargs: Mapping[str, Any], *cap_keys: str) -> Request:
    cap = next((kwargs[key] for key in cap_keys if isinstance(kwargs.get(key), int)), None)
    prompt = {key: kwargs[key] for key in PROMPT_KEYS if key in kwargs}
    return settings.request(str(kwargs["model"]), prompt, cap)


def _with_usage(kwargs: dict[str, Any]) -> dict[str, Any]:
    options = dict(kwargs.get("stream_options") or {})
    options.setdefault("include_usage", True)
    return {**kwargs, "stream_options": options}


def _observe_chat(model: str) -> Any:
    def observe(chunk: Any, tally: StreamTally) -> None:
        for choice in chunk.choices or ():
            content = getattr(choice.delta, "content", None) if choice.delta is not None else None
            if content:
                tally.text_parts.append(content)
        if chunk.usage is not None:  # the last chunk, with include_usage
            tally.usage = from_openai(chunk.usage, model)
            tally.complete = True

    return observe


def _observe_responses(model: str) -> Any:
    def observe(event: Any, tally: StreamTally) -> None:
        kind = getattr(event, "type", "")
        if kind == "response.output_text.delta":
            tally.text_parts.append(event.delta)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            usage = getattr(event.response, "usage", None)
            if usage is not None:
                tally.usage = from_openai(usage, model)
                tally.complete = True

    return observe


def wrap(client: Any, meter: Meter | AsyncMeter) -> Proxy:
    """`OpenAI` with a `Meter`, or `AsyncOpenAI` with an `AsyncMeter` (the replaced methods then return what the
    caller awaits, as the client's own do)."""
    settings = meter.settings
    completions, responses = client.chat.completions, client.responses

    def chat_create(**kwargs: Any) -> Any:
        request = _request(settings, kwargs, "max_completion_tokens", "max_tokens")
        if kwargs.get("stream"):
            sent = _with_usage(kwargs)
            return meter.stream(request, lambda: completions.create(**sent), _observe_chat(request.model))
        return meter.call(request, lambda: completions.create(**kwargs), lambda r: from_openai(r.usage, request.model))

    def responses_create(**kwargs: Any) -> Any:
        request = _request(settings, kwargs, "max_output_tokens")
        if kwargs.get("stream"):
            return meter.stream(request, lambda: responses.create(**kwargs), _observe_responses(request.model))
        return meter.call(request, lambda: responses.create(**kwargs), lambda r: from_openai(r.usage, request.model))

    return merge(
        client,
        nested(client, "chat.completions", {"create": chat_create}),
        nested(client, "responses", {"create": responses_create}),
    )
