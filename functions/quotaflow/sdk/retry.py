"""When to try a request again, and after how long. Pure: the clients do the sleeping.

A write is retried with the same Idempotency-Key, so the server applies it at most once however often it is sent."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})  # 502/504: a gateway lost the answer; the key makes it safe
_jitter = random.SystemRandom()

Outcome = httpx.Response | httpx.TransportError


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded; a server's `Retry-After` takes precedence."""

    attempts_max: int = 4
    backoff_base_seconds: float = 0.25
    backoff_max_seconds: float = 8.0
    retry_after_max_seconds: float = 60.0  # asked to wait longer than this, the client gives up instead

    def __post_init__(self) -> None:
        if self.attempts_max < 1:
            raise ValueError("attempts_max must be at least 1")

    def delay_seconds(self, attempt: int, outcome: Outcome) -> float | None:
        """How long to wait before trying again after attempt number `attempt` (0-based); None: do not retry."""
        if attempt + 1 >= self.attempts_max or not is_retryable(outcome):
            return None
        advised_seconds = retry_after_seconds(outcome) if isinstance(outcome, httpx.Response) else None
        if advised_seconds is not None:
            return advised_seconds if advised_seconds <= self.retry_after_max_seconds else None
        ceiling_seconds = min(self.backoff_max_seconds, self.backoff_base_seconds * 2**attempt)
        return _jitter.uniform(0, ceiling_seconds)


def is_retryable(outcome: Outcome) -> bool:
    """Transport failures, 429/502/503/504, and the contract's in-flight duplicate: 409 `conflict` + Retry-After."""
    if isinstance(outcome, httpx.TransportError):
        return True
    if outcome.status_code in RETRYABLE_STATUSES:
        return True
    return outcome.status_code == 409 and "retry-after" in outcome.headers and _error_code(outcome) == "conflict"


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds: either delay-seconds or an HTTP date. None if absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_code(response: httpx.Response) -> str | None:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None
