"""Typed errors: one class per API error code, each carrying the code, the HTTP status and the details."""

from __future__ import annotations

from typing import Any, Self


class QuotaflowError(Exception):
    """Base of every error the SDK raises. `code` is the API's error code (`insufficient_quota`, ...); a code
    this SDK has no class for keeps its own value on the base class (or on `ServerError` for a 5xx)."""

    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        status_code: int | None = None,
        retry_after_seconds: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.status_code = status_code
        self.retry_after_seconds = retry_after_seconds
        if code is not None:
            self.code = code

    @classmethod
    def from_api(cls, message: str, code: str | None, details: dict[str, Any], **response: Any) -> Self:
        """Built from an error response; `response` holds `status_code` and `retry_after_seconds`."""
        return cls(message, details=details, code=code, **response)

    def __str__(self) -> str:
        status = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        return f"{self.code}: {self.message}{status}"


class InvalidRequest(QuotaflowError):
    """400: `field` names the offending input (`lines[0].meter`, `Idempotency-Key`, ...)."""

    code = "invalid_request"

    @property
    def field(self) -> str | None:
        value = self.details.get("field")
        return value if isinstance(value, str) else None


class Unauthenticated(QuotaflowError):
    code = "unauthenticated"


class InsufficientQuota(QuotaflowError):
    """402: the level that refused (`scope`: the user, or the account `account_id` above it) has `available` left
    on `meter`, less than the `requested` amount. Nothing was held at any level."""

    code = "insufficient_quota"

    def __init__(
        self, meter: str, requested: int, available: int, *, message: str | None = None, **response: Any
    ) -> None:
        details = {"meter": meter, "requested": requested, "available": available}
        super().__init__(
            message or f"{meter}: requested {requested}, only {available} available",
            details={**(response.pop("details", None) or {}), **details},
            status_code=response.pop("status_code", 402),
            **response,
        )
        self.meter = meter
        self.requested = requested
        self.available = available

    @property
    def scope(self) -> str:
        """Which level refused: "user", or "account" (a pool above the user, named by `account_id`)."""
        return str(self.details.get("scope", "user"))

    @property
    def account_id(self) -> str | None:
        account_id = self.details.get("account_id")
        return str(account_id) if account_id is not None else None

    @classmethod
    def from_api(cls, message: str, code: str | None, details: dict[str, Any], **response: Any) -> Self:
        meter, requested, available = details.get("meter"), details.get("requested"), details.get("available")
        return cls(str(meter or ""), _int(requested), _int(available), message=message, details=details, **response)


class Forbidden(QuotaflowError):
    code = "forbidden"


class NotFound(QuotaflowError):
    code = "not_found"


class Conflict(QuotaflowError):
    code = "conflict"


class ReservationNotPending(QuotaflowError):
    """409: the reservation was already committed or released."""

    code = "reservation_not_pending"


class ReservationExpired(QuotaflowError):
    """409: the reservation passed its `expires_at`; its holds go back on their own."""

    code = "reservation_expired"


class IdempotencyKeyReused(QuotaflowError):
    """409: this Idempotency-Key was used before with a different request."""

    code = "idempotency_key_reused"


class PayloadTooLarge(QuotaflowError):
    code = "payload_too_large"


class Throttled(QuotaflowError):
    """429, after the SDK's retries ran out. `retry_after_seconds` is the server's advice."""

    code = "throttled"


class Unavailable(QuotaflowError):
    """503, after the SDK's retries ran out. `retry_after_seconds` is the server's advice."""

    code = "unavailable"


class ServerError(QuotaflowError):
    """A 5xx other than 503, or a response that is not the API's JSON (a proxy's error page, say)."""

    code = "server_error"


class ConnectionFailed(QuotaflowError):
    """No response after the SDK's retries (connection refused or reset, timeout). The cause is chained."""

    code = "connection_failed"


class PageLimitReached(QuotaflowError):
    """An iteration stopped at its page limit with more pages left; `next_cursor` resumes it."""

    code = "page_limit_reached"

    def __init__(self, message: str, next_cursor: str) -> None:
        super().__init__(message, details={"next_cursor": next_cursor})
        self.next_cursor = next_cursor


ERRORS_BY_CODE: dict[str, type[QuotaflowError]] = {
    error.code: error
    for error in (
        InvalidRequest,
        Unauthenticated,
        InsufficientQuota,
        Forbidden,
        NotFound,
        Conflict,
        ReservationNotPending,
        ReservationExpired,
        IdempotencyKeyReused,
        PayloadTooLarge,
        Throttled,
        Unavailable,
    )
}
ERRORS_BY_STATUS: dict[int, type[QuotaflowError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    402: InsufficientQuota,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: Throttled,
    503: Unavailable,
}


def error_for(
    status_code: int, code: str | None, message: str, details: dict[str, Any], retry_after_seconds: float | None
) -> QuotaflowError:
    """The typed error for an API error response: by its code, else by its status."""
    error_class = ERRORS_BY_CODE.get(code or "") or ERRORS_BY_STATUS.get(status_code)
    if error_class is None:
        error_class = ServerError if status_code >= 500 else QuotaflowError
    return error_class.from_api(
        message, code, details, status_code=status_code, retry_after_seconds=retry_after_seconds
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
