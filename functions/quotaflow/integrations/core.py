"""What every provider wrapper shares: reserve the call's worst case, call the provider only if the hold succeeded,
commit what it reports (or, for a stream closed early or broken, what was produced so far, marked estimated), release
on a provider error; and the fail policy when quotaflow itself cannot be reached.

A provider module only says where its calls keep the model, the prompt, the output cap and the usage; the holding,
settling and streaming live here once, in a blocking and an asyncio flavour that differ only in how they wait."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from quotaflow.integrations.backlog import Backlog
from quotaflow.sdk import calls
from quotaflow.sdk.async_client import AsyncClient
from quotaflow.sdk.calls import Call
from quotaflow.sdk.client import Client
from quotaflow.sdk.errors import (
    ConnectionFailed,
    QuotaflowError,
    ReservationExpired,
    ServerError,
    Throttled,
    Unavailable,
)
from quotaflow.sdk.providers import ModelUsage, UnrecognizedUsage
from quotaflow.sdk.reservation import step_key
from quotaflow.sdk.transport import new_idempotency_key

T = TypeVar("T")
OnUnavailable = Literal["block", "allow"]
OUTPUT_TOKENS_DEFAULT = 4096  # the output cap reserved when a call sets none
BYTES_PER_TOKEN_ESTIMATE = 3  # conservative: English runs ~4 bytes a token, CJK ~3 bytes (one character) a token
HOLD_TTL_SECONDS = 900
UNREACHABLE = (ConnectionFailed, ServerError, Unavailable, Throttled)  # after the client's own retries
log = logging.getLogger("quotaflow.integrations")
_settling: set[asyncio.Task[None]] = set()  # settlements of dropped async streams, kept alive until done


def estimate_tokens(value: Any, count_tokens: Callable[[str], int] | None = None) -> int:
    """Tokens in a request's prompt parts: a tokenizer's count of their JSON text when one is given, else one token
    per `BYTES_PER_TOKEN_ESTIMATE` bytes of it (JSON punctuation included: an over-estimate, refunded at commit)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if count_tokens is not None:
        return count_tokens(text)
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN_ESTIMATE)


@dataclass(frozen=True)
class Request:
    """One provider call about to be made, as quotaflow sees it."""

    model: str
    prompt_tokens_estimate: int
    output_cap_tokens: int


@dataclass(frozen=True)
class Settings:
    user_id: str
    tokens_meter: str | None
    cents_meter: str | None
    on_unavailable: OnUnavailable
    output_tokens_default: int
    count_tokens: Callable[[str], int] | None
    backlog: Backlog

    def request(self, model: str, prompt_parts: Any, output_cap_tokens: int | None) -> Request:
        cap = output_cap_tokens if output_cap_tokens is not None else self.output_tokens_default
        return Request(model, estimate_tokens(prompt_parts, self.count_tokens), cap)

    def hold_lines(self, request: Request, cents: int | None) -> dict[str, int]:
        lines: dict[str, int] = {}
        if self.tokens_meter is not None:
            lines[self.tokens_meter] = request.prompt_tokens_estimate + request.output_cap_tokens
        if self.cents_meter is not None and cents is not None:
            lines[self.cents_meter] = cents
        return lines

    def usage_lines(self, usage: ModelUsage) -> dict[str, int | ModelUsage]:
        lines: dict[str, int | ModelUsage] = {}
        if self.tokens_meter is not None:
            lines[self.tokens_meter] = usage.total_tokens
        if self.cents_meter is not None:
            lines[self.cents_meter] = usage
        return lines

    def quote_call(self, request: Request) -> Call[Any]:
        return calls.quote(request.model, request.prompt_tokens_estimate, request.output_cap_tokens, 0)


def properties(usage: ModelUsage, estimated: bool, deferred: bool = False, expired: bool = False) -> dict[str, Any]:
    """What the ledger keeps about a metered call."""
    marks: dict[str, Any] = {"model": usage.model, "estimated": estimated}
    if deferred:
        marks["deferred"] = True  # recorded after the call: quotaflow was unreachable when it was made
    if expired:
        marks["hold_expired"] = True  # the call outlived its hold: recorded as an event instead of a commit
    return marks


@dataclass
class Hold:
    """A call's hold and how it ends. `reservation_id` None: the call went ahead unheld (`on_unavailable="allow"`)
    and its usage is recorded afterwards as an event under `idempotency_key`."""

    settings: Settings
    request: Request
    idempotency_key: str
    reservation_id: str | None
    ended: bool = field(default=False)

    def commit_call(self, usage: ModelUsage, estimated: bool) -> tuple[Call[Any], str]:
        lines = self.settings.usage_lines(usage)
        if self.reservation_id is None:
            marks = properties(usage, estimated, deferred=True)
            return calls.track(self.settings.user_id, lines, marks), self.idempotency_key
        marks = properties(usage, estimated)
        return calls.commit(self.reservation_id, lines, marks), step_key(self.idempotency_key, "commit")

    def expired_call(self, usage: ModelUsage, estimated: bool) -> tuple[Call[Any], str]:
        """The usage of a call whose hold expired before it ended (and was refunded): an event, under its own key."""
        lines = self.settings.usage_lines(usage)
        marks = properties(usage, estimated, expired=True)
        return calls.track(self.settings.user_id, lines, marks), step_key(self.idempotency_key, "expired")

    def release_call(self) -> tuple[Call[Any], str] | None:
        if self.reservation_id is None:
            return None  # nothing held, nothing used
        return calls.release(self.reservation_id), step_key(self.idempotency_key, "release")

    def reported_usage(self, result: Any, usage_of: Callable[[Any], ModelUsage]) -> tuple[ModelUsage, bool]:
        """The usage a finished call reports; a response without a usage it can read bills the whole hold, marked
        estimated, and says so loudly (the call happened: it is never billed as free)."""
        try:
            return usage_of(result), False
        except UnrecognizedUsage as error:
            log.error("quotaflow: %s reported no usage quotaflow can read (%s): billing its hold", self.request, error)
            cap = ModelUsage(self.request.model, self.request.prompt_tokens_estimate, self.request.output_cap_tokens)
            return cap, True

    def estimated_usage(self, produced_text: str, reported: ModelUsage | None) -> ModelUsage:
        """What a stream that ended early used: the reported counts so far, the output at least what the text
        received says, the prompt at least what was estimated when no count came."""
        produced = estimate_tokens(produced_text, self.settings.count_tokens) if produced_text else 0
        if reported is None:
            return ModelUsage(self.request.model, self.request.prompt_tokens_estimate, produced)
        return ModelUsage(
            reported.model,
            input_tokens=reported.input_tokens,
            output_tokens=max(reported.output_tokens, produced),
            cached_input_tokens=reported.cached_input_tokens,
            cache_write_tokens=reported.cache_write_tokens,
            cache_write_1h_tokens=reported.cache_write_1h_tokens,
        )


def _deferred(settings: Settings, request: Request, error: QuotaflowError) -> Hold:
    if settings.on_unavailable == "block":
        raise error
    log.warning(
        "quotaflow unreachable (%s): calling %s unheld for user %s; its usage is recorded when quotaflow is back",
        error,
        request.model,
        settings.user_id,
    )
    return Hold(settings, request, new_idempotency_key(), None)


# --- blocking --------------------------------------------------------------------------------------------


class Meter:
    """Holds and settles calls through a blocking `Client`."""

    def __init__(self, qf: Client, settings: Settings) -> None:
        self.qf = qf
        self.settings = settings

    def hold(self, request: Request) -> Hold:
        """Reserve the call's worst case; InsufficientQuota (and no provider call) if it does not fit."""
        key = new_idempotency_key()
        try:
            cents = self.qf.send(self.settings.quote_call(request)).cost_cents if self.settings.cents_meter else None
            lines = self.settings.hold_lines(request, cents)
            info = self.qf.send(calls.reserve(self.settings.user_id, lines, HOLD_TTL_SECONDS), key)
        except UNREACHABLE as error:
            return _deferred(self.settings, request, error)
        return Hold(self.settings, request, key, info.reservation_id)

    def commit(self, hold: Hold, usage: ModelUsage, estimated: bool = False) -> None:
        if hold.ended:
            return
        hold.ended = True
        call, key = hold.commit_call(usage, estimated)
        if hold.reservation_id is None:
            self.settings.backlog.put(call, key)
            return
        try:
            self.qf.send(call, key)
        except UNREACHABLE:
            self.settings.backlog.put(call, key)  # the same key: applied once, whenever it gets through
        except ReservationExpired:
            late, late_key = hold.expired_call(usage, estimated)
            try:
                self.qf.send(late, late_key)
            except UNREACHABLE:
                self.settings.backlog.put(late, late_key)

    def release(self, hold: Hold) -> None:
        if hold.ended:
            return
        hold.ended = True
        step = hold.release_call()
        if step is None:
            return
        try:
            self.qf.send(*step)
        except UNREACHABLE:
            self.settings.backlog.put(*step)

    def call(self, request: Request, invoke: Callable[[], T], usage_of: Callable[[T], ModelUsage]) -> T:
        """One non-streaming call: hold, invoke, commit its reported usage (release if the provider failed)."""
        hold = self.hold(request)
        try:
            result = invoke()
        except BaseException:
            self.release(hold)
            raise
        self.commit(hold, *hold.reported_usage(result, usage_of))
        return result

    def stream(self, request: Request, invoke: Callable[[], Any], observe: Observe) -> MeteredStream:
        """A streaming call: hold, open the stream (release if that fails), and meter it as it is read."""
        hold = self.hold(request)
        try:
            stream = invoke()
        except BaseException:
            self.release(hold)
            raise
        return MeteredStream(stream, self, hold, observe)


class StreamTally:
    """What a stream produced so far: its text, its last usage report, whether it reached its end; `fields` is the
    observer's own scratch (usage a provider reports in pieces)."""

    def __init__(self) -> None:
        self.text_parts: list[str] = []
        self.usage: ModelUsage | None = None
        self.complete = False
        self.fields: dict[str, Any] = {}

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


Observe = Callable[[Any, StreamTally], None]  # reads one chunk or event into the tally


class MeteredStream:
    """The provider's stream, passed through chunk by chunk; settled once when it ends, breaks or is closed:
    complete with a usage report it commits that, otherwise what was produced, marked estimated."""

    def __init__(self, stream: Any, meter: Meter, hold: Hold, observe: Observe) -> None:
        self._stream = stream
        self._iterator: Iterator[Any] = iter(stream)
        self._meter = meter
        self._hold = hold
        self._observe = observe
        self.tally = StreamTally()

    def __iter__(self) -> MeteredStream:
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._iterator)
        except StopIteration:
            self.settle()
            raise
        except BaseException:
            self.settle()
            raise
        self._observe(item, self.tally)
        return item

    def settle(self) -> None:
        if self._hold.ended:
            return
        if self.tally.complete and self.tally.usage is not None:
            self._meter.commit(self._hold, self.tally.usage)
        else:
            self._meter.commit(self._hold, self._hold.estimated_usage(self.tally.text, self.tally.usage), True)

    def close(self) -> None:
        try:
            closer = getattr(self._stream, "close", None)
            if callable(closer):
                closer()
        finally:
            self.settle()

    def __enter__(self) -> MeteredStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if self._hold.ended:
            return
        try:  # dropped unread: still never a pending hold
            self.settle()
        except Exception:  # a finalizer cannot raise; the hold then expires (its TTL) and is refunded
            log.exception("quotaflow: settling a stream dropped unread failed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# --- asyncio ----------------------------------------------------------------------------------------------


class AsyncMeter:
    """Holds and settles calls through an `AsyncClient`."""

    def __init__(self, qf: AsyncClient, settings: Settings) -> None:
        self.qf = qf
        self.settings = settings

    async def hold(self, request: Request) -> Hold:
        key = new_idempotency_key()
        try:
            cents = None
            if self.settings.cents_meter:
                cents = (await self.qf.send(self.settings.quote_call(request))).cost_cents
            lines = self.settings.hold_lines(request, cents)
            info = await self.qf.send(calls.reserve(self.settings.user_id, lines, HOLD_TTL_SECONDS), key)
        except UNREACHABLE as error:
            return _deferred(self.settings, request, error)
        return Hold(self.settings, request, key, info.reservation_id)

    async def commit(self, hold: Hold, usage: ModelUsage, estimated: bool = False) -> None:
        if hold.ended:
            return
        hold.ended = True
        call, key = hold.commit_call(usage, estimated)
        if hold.reservation_id is None:
            self.settings.backlog.put(call, key)
            return
        try:
            await self.qf.send(call, key)
        except UNREACHABLE:
            self.settings.backlog.put(call, key)
        except ReservationExpired:
            late, late_key = hold.expired_call(usage, estimated)
            try:
                await self.qf.send(late, late_key)
            except UNREACHABLE:
                self.settings.backlog.put(late, late_key)

    async def release(self, hold: Hold) -> None:
        if hold.ended:
            return
        hold.ended = True
        step = hold.release_call()
        if step is None:
            return
        try:
            await self.qf.send(*step)
        except UNREACHABLE:
            self.settings.backlog.put(*step)

    async def call(
        self, request: Request, invoke: Callable[[], Awaitable[T]], usage_of: Callable[[T], ModelUsage]
    ) -> T:
        hold = await self.hold(request)
        try:
            result = await invoke()
        except BaseException:
            await self.release(hold)
            raise
        await self.commit(hold, *hold.reported_usage(result, usage_of))
        return result

    async def stream(
        self, request: Request, invoke: Callable[[], Awaitable[Any]], observe: Observe
    ) -> AsyncMeteredStream:
        hold = await self.hold(request)
        try:
            stream = await invoke()
        except BaseException:
            await self.release(hold)
            raise
        return AsyncMeteredStream(stream, self, hold, observe)


class AsyncMeteredStream:
    """`MeteredStream` for `async for`."""

    def __init__(self, stream: Any, meter: AsyncMeter, hold: Hold, observe: Observe) -> None:
        self._stream = stream
        self._iterator: AsyncIterator[Any] = stream.__aiter__()
        self._meter = meter
        self._hold = hold
        self._observe = observe
        self.tally = StreamTally()

    def __aiter__(self) -> AsyncMeteredStream:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._iterator.__anext__()
        except StopAsyncIteration:
            await self.settle()
            raise
        except BaseException:
            await self.settle()
            raise
        self._observe(item, self.tally)
        return item

    async def settle(self) -> None:
        if self._hold.ended:
            return
        if self.tally.complete and self.tally.usage is not None:
            await self._meter.commit(self._hold, self.tally.usage)
        else:
            await self._meter.commit(self._hold, self._hold.estimated_usage(self.tally.text, self.tally.usage), True)

    async def close(self) -> None:
        try:
            closer = getattr(self._stream, "close", None) or getattr(self._stream, "aclose", None)
            if callable(closer):
                await closer()
        finally:
            await self.settle()

    async def __aenter__(self) -> AsyncMeteredStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __del__(self) -> None:
        if self._hold.ended:
            return
        try:  # dropped unread: settle on the loop still running, else the hold expires (its TTL) and is refunded
            task = asyncio.get_running_loop().create_task(self.settle())
            _settling.add(task)
            task.add_done_callback(_settling.discard)
        except RuntimeError:
            log.warning("quotaflow: a stream dropped unread outside an event loop; its hold expires unsettled")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# --- the wrapped client: the provider's own interface, a few methods replaced -------------------------------


class Proxy:
    """`target` with some attributes replaced (a method, or a nested `Proxy`); everything else is the target's own."""

    def __init__(self, target: Any, overrides: Mapping[str, Any]) -> None:
        self._target = target
        self._overrides = dict(overrides)

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._target, name)

    def __repr__(self) -> str:
        return f"<metered {self._target!r}>"


def nested(target: Any, path: str, methods: Mapping[str, Any]) -> Proxy:
    """A proxy of `target` whose attribute chain `path` ("chat.completions") has `methods` replaced."""
    first, _, rest = path.partition(".")
    child = getattr(target, first)
    inner = nested(child, rest, methods) if rest else Proxy(child, methods)
    return Proxy(target, {first: inner})


def merge(target: Any, *proxies: Proxy) -> Proxy:
    """One proxy of `target` holding the overrides of several `nested` ones (distinct first attributes)."""
    overrides: dict[str, Any] = {}
    for proxy in proxies:
        overrides.update(proxy._overrides)
    return Proxy(target, overrides)
