"""Domain errors. Each carries a stable API error code; the HTTP status lives in the API handler's map."""

from __future__ import annotations

from typing import Any


class QuotaflowError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(QuotaflowError):
    code = "invalid_request"

    def __init__(self, message: str, field: str, **details: Any) -> None:
        super().__init__(message, field=field, **details)


class Unauthenticated(QuotaflowError):
    code = "unauthenticated"


class Forbidden(QuotaflowError):
    code = "forbidden"


class NotFound(QuotaflowError):
    code = "not_found"


class InsufficientQuota(QuotaflowError):
    code = "insufficient_quota"

    def __init__(self, meter: str, requested: int, available: int, account_id: str | None = None) -> None:
        level = f" in account {account_id}" if account_id else ""
        where = {"scope": "account", "account_id": account_id} if account_id else {"scope": "user"}
        super().__init__(
            f"{meter}: requested {requested}, only {max(0, available)} available{level}",
            meter=meter,
            requested=requested,
            available=max(0, available),
            **where,
        )


class Conflict(QuotaflowError):
    code = "conflict"


class ReservationNotPending(QuotaflowError):
    code = "reservation_not_pending"


class ReservationExpired(QuotaflowError):
    code = "reservation_expired"


class IdempotencyKeyReused(QuotaflowError):
    code = "idempotency_key_reused"


class Throttled(QuotaflowError):
    """The database throttled us; the client may retry (429)."""

    code = "throttled"


class Unavailable(QuotaflowError):
    """A dependency failed transiently; the client may retry (503)."""

    code = "unavailable"


class InvariantViolation(Exception):
    """A ledger invariant does not hold: a bug, never an input problem. Not a QuotaflowError on purpose."""
