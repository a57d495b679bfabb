"""The only code that imports ``stripe``: webhook verification, line items, meter events.

Importing this package does not import the SDK; building a ``StripeGateway``, verifying a webhook or ``preload()``
does."""

from quotaflow.stripe_gateway.errors import StripeError, StripeRejected, StripeRetryable, WebhookSignatureInvalid
from quotaflow.stripe_gateway.gateway import LineItem, MeterEvent, StripeGateway, preload
from quotaflow.stripe_gateway.webhooks import verify_webhook

__all__ = [
    "LineItem",
    "MeterEvent",
    "StripeError",
    "StripeGateway",
    "StripeRejected",
    "StripeRetryable",
    "WebhookSignatureInvalid",
    "preload",
    "verify_webhook",
]
