"""quotaflow: usage metering and credits for AI apps.

`from quotaflow import Client, AsyncClient, InsufficientQuota` gives the SDK (httpx + pydantic only). The names are
loaded on first use, so the Lambda functions, which import this package too, do not pay for httpx at cold start.
Result models live in `quotaflow.sdk`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from quotaflow.sdk import (
        AsyncClient,
        Client,
        Conflict,
        ConnectionFailed,
        Forbidden,
        IdempotencyKeyReused,
        InsufficientQuota,
        InvalidRequest,
        NotFound,
        PageLimitReached,
        PayloadTooLarge,
        QuotaflowError,
        ReservationExpired,
        ReservationNotPending,
        RetryPolicy,
        ServerError,
        Throttled,
        Unauthenticated,
        Unavailable,
    )

__all__ = [
    "AsyncClient",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "IdempotencyKeyReused",
    "InsufficientQuota",
    "InvalidRequest",
    "NotFound",
    "PageLimitReached",
    "PayloadTooLarge",
    "QuotaflowError",
    "ReservationExpired",
    "ReservationNotPending",
    "RetryPolicy",
    "ServerError",
    "Throttled",
    "Unauthenticated",
    "Unavailable",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Load the SDK on first use of one of its names (PEP 562)."""
    if name in __all__:
        from quotaflow import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'quotaflow' has no attribute {name!r}")
