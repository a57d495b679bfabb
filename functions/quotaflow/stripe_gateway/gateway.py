"""Calls out to Stripe: a checkout session's line items, and billing meter events.

One ``stripe.StripeClient`` per gateway, never the SDK's global ``stripe.api_key``, so tenants with different keys
can share a process. ``stripe`` is imported when a gateway is built, not when this module is, so the functions that
import this package without calling Stripe do not pay for it (call ``preload()`` at a handler's top level to move the
cost into Lambda's init phase instead of the first invocation).

Every SDK error leaves as one of three kinds (``errors.py``): retryable, rejected, or, for a meter event whose
identifier Stripe already holds, no error at all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from quotaflow.stripe_gateway.errors import StripeError, StripeRejected, StripeRetryable

if TYPE_CHECKING:
    import stripe

# Stripe's largest page for list endpoints.
line_items_page_size = 100
# A Checkout Session holds far fewer line items than this many pages; past it something is wrong, so stop.
line_items_pages_max = 10
# Stripe's limit on both event_name and identifier.
meter_event_name_chars_max = 100
meter_event_identifier_chars_max = 100

# What Stripe answers (400, type invalid_request_error, no code, Stripe-Should-Retry: false) when a meter event
# reuses an identifier it saw in the last 24 hours or more: "An event already exists with identifier <id>."
duplicate_identifier_message_prefix = "An event already exists with identifier"


def preload() -> None:
    """Import the SDK now (~0.1-0.7 s) rather than at the first gateway."""
    import stripe  # noqa: F401


@dataclass(frozen=True)
class LineItem:
    price_id: str
    quantity: int


@dataclass(frozen=True)
class MeterEvent:
    """One usage report. ``identifier`` is the dedupe key: the same identifier must always carry the same usage,
    because a resend of it is treated as already delivered."""

    event_name: str
    customer_id: str
    value: int
    identifier: str
    timestamp_epoch_s: int

    def __post_init__(self) -> None:
        # Without an identifier Stripe invents one per call, and a resend would count twice.
        if not self.identifier:
            raise ValueError("a meter event needs an identifier")
        if len(self.identifier) > meter_event_identifier_chars_max:
            raise ValueError(f"identifier is over {meter_event_identifier_chars_max} characters: {self.identifier}")
        if not self.event_name or len(self.event_name) > meter_event_name_chars_max:
            raise ValueError(f"event_name must be 1-{meter_event_name_chars_max} characters: {self.event_name!r}")
        if not self.customer_id:
            raise ValueError("a meter event needs a customer id")
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise ValueError(f"value must be a whole number, got {self.value!r}")


class StripeGateway:
    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        timeout_seconds: float = 10.0,
        max_network_retries: int = 0,
    ) -> None:
        """``api_base`` replaces Stripe's addresses (``QUOTAFLOW_STRIPE_API_BASE``; a loopback stub in tests).
        ``timeout_seconds`` bounds the connect and each read. ``max_network_retries`` lets the SDK itself retry
        connection errors, 409 and 5xx (not 429) with its own backoff; 0 leaves every retry to the caller."""
        if not api_key:
            raise ValueError("a Stripe API key is required")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        if max_network_retries < 0:
            raise ValueError(f"max_network_retries must not be negative, got {max_network_retries}")
        import stripe

        base = api_base.rstrip("/") if api_base else None
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": base, "meter_events": base} if base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )

    def checkout_line_items(self, session_id: str) -> list[LineItem]:
        """Every line item of a Checkout Session that has a price, page by page. A missing quantity counts as 1."""
        import stripe

        items: list[LineItem] = []
        params: stripe.params.checkout.SessionLineItemListParams = {"limit": line_items_page_size}
        for _ in range(line_items_pages_max):
            try:
                page = self._client.v1.checkout.sessions.line_items.list(session_id, params=params)
            except stripe.StripeError as exc:
                raise translate(exc) from exc
            items.extend(
                LineItem(price_id=item.price.id, quantity=1 if item.quantity is None else item.quantity)
                for item in page.data
                if item.price is not None
            )
            if not page.has_more or not page.data:
                return items
            params = {"limit": line_items_page_size, "starting_after": page.data[-1].id}
        raise StripeRejected(
            f"checkout session {session_id} has more than {line_items_pages_max * line_items_page_size} line items"
        )

    def send_meter_event(self, event: MeterEvent) -> None:
        """``POST /v1/billing/meter_events``. Returns normally when Stripe recorded the event now or already held
        its identifier (a resend after a crash or a lost answer)."""
        import stripe

        params: stripe.params.billing.MeterEventCreateParams = {
            "event_name": event.event_name,
            "identifier": event.identifier,
            "timestamp": event.timestamp_epoch_s,
            "payload": {"stripe_customer_id": event.customer_id, "value": str(event.value)},
        }
        try:
            self._client.v1.billing.meter_events.create(params)
        except stripe.StripeError as exc:
            if is_duplicate_identifier(exc, event.identifier):
                return
            raise translate(exc) from exc


def is_duplicate_identifier(exc: stripe.StripeError, identifier: str) -> bool:
    """Stripe's refusal of a meter event whose identifier it already holds. It names the identifier in a message
    and gives no error code, so the message is what is matched (the code check only covers a future Stripe that
    answers with the generic ``resource_already_exists`` on the ``identifier`` param)."""
    import stripe

    if exc.http_status != 400 or not isinstance(exc, stripe.InvalidRequestError):
        return False
    message = exc.user_message or ""
    if message.startswith(duplicate_identifier_message_prefix) and identifier in message:
        return True
    return exc.code == "resource_already_exists" and exc.param == "identifier"


def translate(exc: stripe.StripeError) -> StripeError:
    """The SDK's error as retryable or rejected. Retryable: no HTTP answer at all (connection error, timeout),
    429, 409 (a conflicting concurrent request), 5xx, or Stripe saying ``Stripe-Should-Retry: true``."""
    import stripe

    status = exc.http_status
    headers = {key.lower(): value for key, value in (exc.headers or {}).items()}
    message = exc.user_message or type(exc).__name__
    if (
        isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError)
        or status is None
        or status in (409, 429)
        or status >= 500
        or headers.get("stripe-should-retry") == "true"
    ):
        return StripeRetryable(
            message, http_status=status, retry_after_seconds=_retry_after_seconds(headers.get("retry-after"))
        )
    param = exc.param if isinstance(exc, stripe.InvalidRequestError | stripe.CardError) else None
    return StripeRejected(message, exc.code, http_status=status, param=param)


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds; the HTTP-date form is ignored (the caller's own backoff applies)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
