"""A held reservation: commit what was used, or release it. As a context manager it never leaks a hold: leaving the
block without a commit (normally or by an exception) releases it.

Commit and release send keys derived from the reservation's Idempotency-Key, so re-running a whole
reserve -> commit step under the same key replays it instead of charging twice."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Generator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from quotaflow.sdk import calls, models
from quotaflow.sdk.calls import Amounts, Call, Lines
from quotaflow.sdk.errors import QuotaflowError, ReservationExpired, ReservationNotPending

T = TypeVar("T")
IDEMPOTENCY_KEY_LENGTH_MAX = 255


class Send(Protocol):
    def __call__(self, call: Call[T], idempotency_key: str | None = None) -> T: ...


class SendAsync(Protocol):
    def __call__(self, call: Call[T], idempotency_key: str | None = None) -> Awaitable[T]: ...


def step_key(idempotency_key: str, step: str) -> str:
    """The key of a later step (`commit`, `release`) of the request made under `idempotency_key`."""
    derived = f"{idempotency_key}:{step}"
    if len(derived) <= IDEMPOTENCY_KEY_LENGTH_MAX:
        return derived
    return f"{hashlib.sha256(idempotency_key.encode()).hexdigest()}:{step}"


class _Held:
    """What both handles share: the reservation, its key, whether it has ended here, and the exit rule."""

    def __init__(self, info: models.ReservationInfo, idempotency_key: str) -> None:
        self.info = info
        self.idempotency_key = idempotency_key
        self.outcome: models.CommitResult | models.ReleaseResult | None = None

    @property
    def id(self) -> str:
        return self.info.reservation_id

    @property
    def lines(self) -> dict[str, int]:
        return {line.meter: line.amount for line in self.info.lines}

    @property
    def expires_at(self) -> datetime:
        return self.info.expires_at

    @property
    def is_open(self) -> bool:
        """True until this handle committed or released it."""
        return self.outcome is None

    def _commit_call(
        self, lines: Lines | None, idempotency_key: str | None, properties: Mapping[str, Any] | None
    ) -> tuple[Call[models.CommitResult], str]:
        return calls.commit(self.id, lines, properties), idempotency_key or step_key(self.idempotency_key, "commit")

    def _release_call(self, idempotency_key: str | None) -> tuple[Call[models.ReleaseResult], str]:
        return calls.release(self.id), idempotency_key or step_key(self.idempotency_key, "release")

    def _ended(self, outcome: models.CommitResult | models.ReleaseResult) -> None:
        self.outcome = outcome

    def _moved(self, info: models.ReservationInfo) -> None:
        self.info = info

    def _release_failed(self, error: QuotaflowError, raised_in_block: BaseException | None) -> None:
        """On leaving the block. A reservation already over needs nothing; the block's own error wins."""
        if isinstance(error, ReservationExpired | ReservationNotPending):
            return
        if raised_in_block is not None:
            raised_in_block.add_note(f"quotaflow: releasing reservation {self.id} failed too: {error}")
            return
        raise error

    def __repr__(self) -> str:
        state = self.outcome.status if self.outcome is not None else "open"
        return f"<{type(self).__name__} {self.id} {self.lines} {state}>"


class Reservation(_Held):
    """Returned by `Client.reserve`."""

    def __init__(self, send: Send, info: models.ReservationInfo, idempotency_key: str) -> None:
        super().__init__(info, idempotency_key)
        self._send = send

    def commit(
        self,
        lines: Lines | None = None,
        *,
        properties: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> models.CommitResult:
        """Record what was used (`{"tokens": 800}`); the rest of the hold comes back. A meter left out commits 0.
        A money meter may take the call's `ModelUsage`, priced by the server: `{"tokens": u.total_tokens, "cents": u}`.
        `properties` are kept on the commit's ledger entries."""
        result = self._send(*self._commit_call(lines, idempotency_key, properties))
        self._ended(result)
        return result

    def release(self, *, idempotency_key: str | None = None) -> models.ReleaseResult:
        result = self._send(*self._release_call(idempotency_key))
        self._ended(result)
        return result

    def draw(
        self, lines: Lines, properties: Mapping[str, Any] | None = None, *, idempotency_key: str | None = None
    ) -> models.DrawResult:
        """Record one step's usage against the hold and keep it open (`{"tokens": 1200}`, `{"step": "search"}`);
        beyond what is left of the hold it is recorded all the same, as overage."""
        return self._send(calls.draw(self.id, lines, properties), idempotency_key)

    def increase(self, lines: Amounts, *, idempotency_key: str | None = None) -> models.ReservationInfo:
        """Hold more; raises InsufficientQuota and changes nothing if it does not fit."""
        info = self._send(calls.increase(self.id, lines), idempotency_key)
        self._moved(info)
        return info

    def extend(self, ttl_seconds: int, *, idempotency_key: str | None = None) -> models.ReservationInfo:
        """Keep the hold alive: it now expires `ttl_seconds` from now (at most 7 days after it was made)."""
        info = self._send(calls.extend(self.id, ttl_seconds), idempotency_key)
        self._moved(info)
        return info

    def steps(self, *, limit: int = 100, cursor: str | None = None) -> models.StepsPage:
        return self._send(calls.steps(self.id, limit, cursor))

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if not self.is_open:
            return
        try:
            self.release()
        except QuotaflowError as error:
            self._release_failed(error, exc)


class AsyncReservation(_Held):
    """Returned by `await AsyncClient.reserve(...)` or `async with AsyncClient.reserve(...)`."""

    def __init__(self, send: SendAsync, info: models.ReservationInfo, idempotency_key: str) -> None:
        super().__init__(info, idempotency_key)
        self._send = send

    async def commit(
        self,
        lines: Lines | None = None,
        *,
        properties: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> models.CommitResult:
        """Record what was used (`{"tokens": 800}`); the rest of the hold comes back. A meter left out commits 0."""
        result = await self._send(*self._commit_call(lines, idempotency_key, properties))
        self._ended(result)
        return result

    async def release(self, *, idempotency_key: str | None = None) -> models.ReleaseResult:
        result = await self._send(*self._release_call(idempotency_key))
        self._ended(result)
        return result

    async def draw(
        self, lines: Lines, properties: Mapping[str, Any] | None = None, *, idempotency_key: str | None = None
    ) -> models.DrawResult:
        """Record one step's usage against the hold and keep it open."""
        return await self._send(calls.draw(self.id, lines, properties), idempotency_key)

    async def increase(self, lines: Amounts, *, idempotency_key: str | None = None) -> models.ReservationInfo:
        info = await self._send(calls.increase(self.id, lines), idempotency_key)
        self._moved(info)
        return info

    async def extend(self, ttl_seconds: int, *, idempotency_key: str | None = None) -> models.ReservationInfo:
        info = await self._send(calls.extend(self.id, ttl_seconds), idempotency_key)
        self._moved(info)
        return info

    async def steps(self, *, limit: int = 100, cursor: str | None = None) -> models.StepsPage:
        return await self._send(calls.steps(self.id, limit, cursor))

    async def __aenter__(self) -> AsyncReservation:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if not self.is_open:
            return
        try:
            await self.release()
        except QuotaflowError as error:
            self._release_failed(error, exc)


H = TypeVar("H", bound=AsyncReservation)


class PendingReservation(Generic[H]):
    """What `AsyncClient.reserve` (and `.run`) return before the request is made: `await` it, or `async with` it."""

    def __init__(self, open_reservation: Callable[[], Awaitable[H]]) -> None:
        self._open = open_reservation
        self._held: H | None = None

    def __await__(self) -> Generator[Any, None, H]:
        return self._open_once().__await__()

    async def _open_once(self) -> H:
        if self._held is None:
            self._held = await self._open()
        return self._held

    async def __aenter__(self) -> H:
        return await self._open_once()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._held is not None:
            await self._held.__aexit__(exc_type, exc, traceback)
