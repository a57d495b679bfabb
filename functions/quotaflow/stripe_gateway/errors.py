"""What can go wrong talking to Stripe, in the three kinds a caller acts on differently.

- ``WebhookSignatureInvalid``: the request did not come from Stripe (or is too old to trust): answer 400.
- ``StripeRetryable``: Stripe is busy, down or unreachable: keep the work and try again later.
- ``StripeRejected``: Stripe understood the request and will never accept it as sent: report it, do not retry.

Nothing here imports ``stripe``: these classes are raised and caught by code that must stay cheap to import."""

from __future__ import annotations


class StripeError(Exception):
    """Base of every error this package raises."""

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


class WebhookSignatureInvalid(StripeError):
    """A missing, malformed, unmatched or stale ``Stripe-Signature``, or a payload that is not a Stripe event."""


class StripeRetryable(StripeError):
    """429, 5xx, 409, a connection error or a timeout: the same request may succeed later.

    ``retry_after_seconds`` is the server's ``Retry-After`` when it sent one (Stripe rarely does)."""

    def __init__(
        self, message: str, *, http_status: int | None = None, retry_after_seconds: float | None = None
    ) -> None:
        super().__init__(message, http_status=http_status)
        self.retry_after_seconds = retry_after_seconds


class StripeRejected(StripeError):
    """A 4xx that resending will not fix: unknown customer or session, bad parameters, bad or restricted key.

    ``code`` is Stripe's ``error.code`` (``resource_missing``, ``parameter_invalid_integer``, ...) when it gave one;
    ``param`` the offending parameter when it named one."""

    def __init__(
        self,
        message: str,
        code: str | None = None,
        *,
        http_status: int | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, http_status=http_status)
        self.code = code
        self.param = param
