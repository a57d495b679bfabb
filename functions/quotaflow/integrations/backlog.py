"""Usage that could not be recorded when it happened (quotaflow unreachable), sent later from a bounded local queue.

Each record keeps the Idempotency-Key it was first meant to go with, so however often it is retried — and even if an
earlier attempt reached the server and only its answer was lost — the server applies it once. Records are retried in
order with capped exponential backoff by one daemon thread. A record that cannot be kept (the queue is full) or that
is given up on (refused by the server, or out of attempts) is logged at ERROR with everything needed to bill it by
hand: never dropped silently."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from quotaflow.sdk.calls import Call
from quotaflow.sdk.client import Client
from quotaflow.sdk.errors import ConnectionFailed, QuotaflowError, ServerError, Throttled, Unavailable
from quotaflow.sdk.retry import RetryPolicy
from quotaflow.sdk.transport import Connection

BACKLOG_RECORDS_MAX = 1_000
ATTEMPTS_MAX = 50
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 60.0
RETRYABLE = (ConnectionFailed, ServerError, Unavailable, Throttled)
log = logging.getLogger("quotaflow.integrations")


@dataclass
class Record:
    call: Call[Any]
    idempotency_key: str
    attempts: int = 0


class Backlog:
    """A bounded queue of writes for one quotaflow, drained by a daemon thread started on the first record."""

    def __init__(
        self,
        connection: Connection,
        *,
        records_max: int = BACKLOG_RECORDS_MAX,
        attempts_max: int = ATTEMPTS_MAX,
        backoff_base_seconds: float = BACKOFF_BASE_SECONDS,
        backoff_max_seconds: float = BACKOFF_MAX_SECONDS,
    ) -> None:
        self._connection = connection
        self.records_max = records_max
        self.attempts_max = attempts_max
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._records: deque[Record] = deque()
        self._changed = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False

    def __len__(self) -> int:
        with self._changed:
            return len(self._records)

    def put(self, call: Call[Any], idempotency_key: str) -> None:
        with self._changed:
            if len(self._records) >= self.records_max:
                log.error(
                    "quotaflow backlog full (%d records): NOT recorded: %s %s %s (Idempotency-Key %s)",
                    self.records_max,
                    call.method,
                    call.path,
                    call.body,
                    idempotency_key,
                )
                return
            self._records.append(Record(call, idempotency_key))
            if self._worker is None:
                self._worker = threading.Thread(target=self._drain, name="quotaflow-backlog", daemon=True)
                self._worker.start()
            self._changed.notify_all()

    def flush(self, timeout_seconds: float) -> bool:
        """Wait until every record was sent or given up on; False if some are still queued at the deadline."""
        deadline = time.monotonic() + timeout_seconds
        with self._changed:
            while self._records:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            if self._records:
                log.error("quotaflow backlog closed with %d records NOT recorded", len(self._records))

    def _drain(self) -> None:
        client = Client(self._connection.api_key, self._connection.base_url, retry=RetryPolicy(attempts_max=1))
        with client:
            while (record := self._next()) is not None:
                if self._send(client, record):
                    with self._changed:
                        self._records.popleft()
                        self._changed.notify_all()
                else:
                    self._wait(min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (record.attempts - 1)))

    def _next(self) -> Record | None:
        with self._changed:
            while not self._records and not self._closed:
                self._changed.wait()
            return None if self._closed else self._records[0]

    def _wait(self, seconds: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._closed, timeout=seconds)

    def _send(self, client: Client, record: Record) -> bool:
        """True when the record is done with (sent, or given up on and logged)."""
        record.attempts += 1
        try:
            client.send(record.call, record.idempotency_key)
        except RETRYABLE as error:
            if record.attempts < self.attempts_max:
                return False
            self._give_up(record, f"still unreachable after {record.attempts} attempts: {error}")
        except QuotaflowError as error:
            self._give_up(record, f"refused: {error}")
        else:
            log.info("quotaflow backlog: recorded %s %s late", record.call.method, record.call.path)
        return True

    def _give_up(self, record: Record, why: str) -> None:
        log.error(
            "quotaflow backlog gave up, usage NOT recorded (%s): %s %s %s (Idempotency-Key %s)",
            why,
            record.call.method,
            record.call.path,
            record.call.body,
            record.idempotency_key,
        )
