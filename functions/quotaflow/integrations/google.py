"""Google Gen AI (`google.genai.Client`): `models.generate_content` and `models.generate_content_stream`, and the
same under `client.aio`.

Each streamed chunk carries the usage so far (`usage_metadata`); the stream is complete once a candidate reports a
`finish_reason`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quotaflow.integrations.core import AsyncMeter, Meter, Proxy, Request, Settings, StreamTally, nested
from quotaflow.sdk.providers import from_gemini

MODEL_PREFIX = "models/"


def _setting(config: Any, name: str) -> Any:
    if config is None:
        return None
    return config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)


def _request(settings: Settings, kwargs: Mapping[str, Any]) -> Request:
    config = kwargs.get("config")
    prompt = {"contents": kwargs.get("contents"), "system": _setting(config, "system_instruction")}
    cap = _setting(config, "max_output_tokens")
    return settings.request(
        str(kwargs["model"]).removeprefix(MODEL_PREFIX), prompt, cap if isinstance(cap, int) else None
    )


def _observe(model: str) -> Any:
    def observe(chunk: Any, tally: StreamTally) -> None:
        for candidate in chunk.candidates or ():
            content = candidate.content
            for part in (content.parts or ()) if content is not None else ():
                if part.text:
                    tally.text_parts.append(part.text)
            if candidate.finish_reason is not None:
                tally.complete = True
        if chunk.usage_metadata is not None and chunk.usage_metadata.prompt_token_count is not None:
            tally.usage = from_gemini(chunk.usage_metadata, model)

    return observe


def _models(models: Any, meter: Meter | AsyncMeter) -> dict[str, Any]:
    settings = meter.settings

    def generate_content(**kwargs: Any) -> Any:
        request = _request(settings, kwargs)
        return meter.call(
            request, lambda: models.generate_content(**kwargs), lambda r: from_gemini(r.usage_metadata, request.model)
        )

    def generate_content_stream(**kwargs: Any) -> Any:
        request = _request(settings, kwargs)
        return meter.stream(request, lambda: models.generate_content_stream(**kwargs), _observe(request.model))

    return {"generate_content": generate_content, "generate_content_stream": generate_content_stream}


def wrap(client: Any, meter: Meter, async_meter: AsyncMeter) -> Proxy:
    """The client's `models` through `meter`, and `aio.models` through `async_meter`."""
    sync_models = nested(client, "models", _models(client.models, meter))
    async_models = nested(client.aio, "models", _models(client.aio.models, async_meter))
    return Proxy(client, {"models": sync_models._overrides["models"], "aio": async_models})
