"""Amazon Bedrock (a boto3 `bedrock-runtime` client): `converse` and `converse_stream`.

`converse_stream` answers a dict whose `stream` is an event stream: it is replaced by a metered one that passes every
event through; the `metadata` event carries the usage and ends the stream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quotaflow.integrations.core import Meter, Proxy, Request, Settings, StreamTally
from quotaflow.sdk.providers import from_bedrock

PROMPT_KEYS = ("system", "messages", "toolConfig")


def _request(settings: Settings, kwargs: Mapping[str, Any]) -> Request:
    prompt = {key: kwargs[key] for key in PROMPT_KEYS if key in kwargs}
    cap = (kwargs.get("inferenceConfig") or {}).get("maxTokens")
    return settings.request(str(kwargs["modelId"]), prompt, cap if isinstance(cap, int) else None)


def _observe(model: str) -> Any:
    def observe(event: Mapping[str, Any], tally: StreamTally) -> None:
        text = event.get("contentBlockDelta", {}).get("delta", {}).get("text")
        if text:
            tally.text_parts.append(text)
        if "metadata" in event:
            tally.usage = from_bedrock(event["metadata"]["usage"], model)
            tally.complete = True

    return observe


def wrap(client: Any, meter: Meter) -> Proxy:
    settings = meter.settings

    def converse(**kwargs: Any) -> Any:
        request = _request(settings, kwargs)
        return meter.call(request, lambda: client.converse(**kwargs), lambda r: from_bedrock(r["usage"], request.model))

    def converse_stream(**kwargs: Any) -> Any:
        request = _request(settings, kwargs)
        response: dict[str, Any] = {}

        def invoke() -> Any:
            response.update(client.converse_stream(**kwargs))
            return response["stream"]

        stream = meter.stream(request, invoke, _observe(request.model))
        return {**response, "stream": stream}

    return Proxy(client, {"converse": converse, "converse_stream": converse_stream})
