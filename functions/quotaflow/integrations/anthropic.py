"""Anthropic (`anthropic.Anthropic` / `AsyncAnthropic`): `messages.create` (streaming with `stream=True` too) and
`messages.stream` (the SDK's context manager).

A raw stream reports usage in pieces: `message_start` carries the input classes, each `message_delta` the running
output total (and, cumulatively, the input fields again); the stream is complete at `message_stop`. A
`messages.stream` block is read from the SDK's own message snapshot when it closes: complete once a `message_delta`
set its `stop_reason`."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from quotaflow.integrations.core import AsyncMeter, Hold, Meter, Proxy, Request, Settings, StreamTally, nested
from quotaflow.sdk.providers import ModelUsage, from_anthropic

PROMPT_KEYS = ("system", "messages", "tools")


def _request(settings: Settings, kwargs: Mapping[str, Any]) -> Request:
    prompt = {key: kwargs[key] for key in PROMPT_KEYS if key in kwargs}
    cap = kwargs.get("max_tokens")
    return settings.request(str(kwargs["model"]), prompt, cap if isinstance(cap, int) else None)


def _fields(usage: Any) -> dict[str, Any]:
    dumped = usage.model_dump() if hasattr(usage, "model_dump") else dict(usage)
    return {name: value for name, value in dumped.items() if value is not None}


def _observe(model: str) -> Any:
    def observe(event: Any, tally: StreamTally) -> None:
        kind = getattr(event, "type", "")
        if kind == "message_start":
            tally.fields.update(_fields(event.message.usage))
        elif kind == "content_block_delta":
            text = getattr(event.delta, "text", None) or getattr(event.delta, "thinking", None)
            if text:
                tally.text_parts.append(text)
        elif kind == "message_delta":
            tally.fields.update(_fields(event.usage))  # cumulative counts: the latest wins
        elif kind == "message_stop":
            tally.complete = True
        if "input_tokens" in tally.fields and "output_tokens" in tally.fields:
            tally.usage = from_anthropic(tally.fields, model)

    return observe


def snapshot_usage(hold: Hold, stream: Any) -> tuple[ModelUsage, bool]:
    """What a `messages.stream` block used, from the SDK's accumulated message (none if nothing arrived)."""
    try:
        message = stream.current_message_snapshot
    except AssertionError:  # the SDK's way of saying no message_start arrived
        return hold.estimated_usage("", None), True
    reported = from_anthropic(message.usage, hold.request.model)
    if message.stop_reason is not None:
        return reported, False
    text = "".join(getattr(block, "text", None) or getattr(block, "thinking", None) or "" for block in message.content)
    return hold.estimated_usage(text, reported), True


class MeteredStreamManager:
    """`messages.stream(...)` for `with`: holds on entering (so a refused hold never opens the stream), settles on
    leaving. Entering returns the SDK's own `MessageStream`."""

    def __init__(self, manager: Any, meter: Meter, request: Request) -> None:
        self._manager, self._meter, self._request = manager, meter, request
        self._hold: Hold | None = None
        self._stream: Any = None

    def __enter__(self) -> Any:
        self._hold = self._meter.hold(self._request)
        try:
            self._stream = self._manager.__enter__()
        except BaseException:
            self._meter.release(self._hold)
            raise
        return self._stream

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            self._manager.__exit__(exc_type, exc, traceback)
        finally:
            if self._hold is not None:
                self._meter.commit(self._hold, *snapshot_usage(self._hold, self._stream))


class AsyncMeteredStreamManager:
    """`MeteredStreamManager` for `async with`."""

    def __init__(self, manager: Any, meter: AsyncMeter, request: Request) -> None:
        self._manager, self._meter, self._request = manager, meter, request
        self._hold: Hold | None = None
        self._stream: Any = None

    async def __aenter__(self) -> Any:
        self._hold = await self._meter.hold(self._request)
        try:
            self._stream = await self._manager.__aenter__()
        except BaseException:
            await self._meter.release(self._hold)
            raise
        return self._stream

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            await self._manager.__aexit__(exc_type, exc, traceback)
        finally:
            if self._hold is not None:
                await self._meter.commit(self._hold, *snapshot_usage(self._hold, self._stream))


def wrap(client: Any, meter: Meter | AsyncMeter) -> Proxy:
    """`Anthropic` with a `Meter`, or `AsyncAnthropic` with an `AsyncMeter`."""
    settings = meter.settings
    messages = client.messages

    def create(**kwargs: Any) -> Any:
        request = _request(settings, kwargs)
        if kwargs.get("stream"):
            return meter.stream(request, lambda: messages.create(**kwargs), _observe(request.model))
        return meter.call(request, lambda: messages.create(**kwargs), lambda m: from_anthropic(m.usage, request.model))

    def stream(**kwargs: Any) -> Any:
        request = _request(settings, kwargs)
        if isinstance(meter, AsyncMeter):
            return AsyncMeteredStreamManager(messages.stream(**kwargs), meter, request)
        return MeteredStreamManager(messages.stream(**kwargs), meter, request)

    return nested(client, "messages", {"create": create, "stream": stream})
