"""A run: one reservation held for a whole agent run or long call, drawn on step by step, kept alive by a
heartbeat. As a context manager it never leaks a hold: leaving the block normally finishes the run (what is left
of the hold comes back, the draws stay recorded); leaving it by an exception releases what is left."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from types import TracebackType

from quotaflow.sdk import models
from quotaflow.sdk.errors import QuotaflowError
from quotaflow.sdk.reservation import AsyncReservation, Reservation, Send, SendAsync

log = logging.getLogger("quotaflow.sdk")


class Run(Reservation):
    """Returned by `Client.run`. With `heartbeat_seconds`, a background thread extends the hold by
    `ttl_seconds` that often until the run ends."""

    def __init__(
        self,
        send: Send,
        info: models.ReservationInfo,
        idempotency_key: str,
        *,
        ttl_seconds: int,
        heartbeat_seconds: float | None,
    ) -> None:
        super().__init__(send, info, idempotency_key)
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        if heartbeat_seconds is not None:
            self._heartbeat = threading.Thread(
                target=self._beat, args=(heartbeat_seconds, ttl_seconds), name=f"quotaflow-heartbeat-{self.id}"
            )
            self._heartbeat.daemon = True
            self._heartbeat.start()

    def _beat(self, every_seconds: float, ttl_seconds: int) -> None:
        while not self._stop.wait(every_seconds):
            try:
                self.extend(ttl_seconds)
            except QuotaflowError as error:  # the run's own next call reports it; a heartbeat must not crash
                log.warning("quotaflow: heartbeat of reservation %s stopped: %s", self.id, error)
                return

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop_heartbeat()
        if self.is_open and exc is None:
            self.commit()
            return
        super().__exit__(exc_type, exc, traceback)


class AsyncRun(AsyncReservation):
    """Returned by `await AsyncClient.run(...)`; the heartbeat is a task on the running loop."""

    def __init__(
        self,
        send: SendAsync,
        info: models.ReservationInfo,
        idempotency_key: str,
        *,
        ttl_seconds: int,
        heartbeat_seconds: float | None,
    ) -> None:
        super().__init__(send, info, idempotency_key)
        self._heartbeat: asyncio.Task[None] | None = None
        if heartbeat_seconds is not None:
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat(heartbeat_seconds, ttl_seconds))

    async def _beat(self, every_seconds: float, ttl_seconds: int) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.extend(ttl_seconds)
            except QuotaflowError as error:
                log.warning("quotaflow: heartbeat of reservation %s stopped: %s", self.id, error)
                return

    async def stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat

    async def __aenter__(self) -> AsyncRun:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop_heartbeat()
        if self.is_open and exc is None:
            await self.commit()
            return
        await super().__aexit__(exc_type, exc, traceback)
