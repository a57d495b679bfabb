"""The Stripe webhook function (`POST /v1/stripe/webhook/{tenant_id}`, no bearer key): verify the signature
with the tenant's signing secret, apply the event at most once, answer fast. A bad, stale or missing signature,
an unknown tenant or one without Stripe settings: 400, nothing written. Stripe is asked to retry (503) only
when Stripe itself could not be reached for the session's line items or the database is throttling."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.handlers.runtime import runtime
from quotaflow.ledger.amounts import ID_PATTERN
from quotaflow.ledger.errors import QuotaflowError, Throttled, Unavailable
from quotaflow.observability import logger
from quotaflow.services import stripe_config, stripe_events
from quotaflow.services.scope import Scope
from quotaflow.stripe_gateway import (
    StripeGateway,
    StripeRejected,
    StripeRetryable,
    WebhookSignatureInvalid,
    preload,
    verify_webhook,
)

PATH = re.compile(r"^/v1/stripe/webhook/([^/]+)$")
BODY_BYTES_MAX = 256 * 1024  # Stripe events are well under this
TOLERANCE_SECONDS = 300
GATEWAYS_CACHED_MAX = 100
_gateways: dict[tuple[str, str | None], StripeGateway] = {}

preload()  # this function exists to talk to Stripe: pay the SDK's import in Lambda's init phase, not per event


def _gateway(api_key: str, api_base: str | None) -> StripeGateway:
    """One client (and its connection pool) per tenant API key, kept for the container's life."""
    key = (api_key, api_base)
    if key not in _gateways:
        if len(_gateways) >= GATEWAYS_CACHED_MAX:
            _gateways.clear()
        _gateways[key] = StripeGateway(api_key, api_base=api_base)
    return _gateways[key]


def _reply(status: int, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", **({"Retry-After": "1"} if status == 503 else {})}
    return {"statusCode": status, "headers": headers, "body": json.dumps(body, separators=(",", ":"))}


def _refuse(message: str) -> dict[str, Any]:
    return _reply(400, {"error": {"code": "invalid_request", "message": message, "details": {}}})


def _payload(event: dict[str, Any]) -> bytes | None:
    body = event.get("body") or ""
    try:
        return base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode()
    except (binascii.Error, ValueError):
        return None


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    match = PATH.match(event.get("rawPath") or "")
    tenant_id = match.group(1) if match else ""
    payload = _payload(event)
    if not re.fullmatch(ID_PATTERN, tenant_id):
        return _refuse("unknown tenant")
    if payload is None or len(payload) > BODY_BYTES_MAX:
        return _refuse("the body is not a Stripe event")
    bound = runtime()
    scope = Scope(bound.store, tenant_id, bound.clock(), bound.cache)
    now = scope.now
    config = stripe_config.load_config(bound.store, bound.secret_box, tenant_id, now)
    if config is None:
        return _refuse("unknown tenant, or no Stripe settings for it")
    try:
        stripe_event = verify_webhook(
            payload,
            (event.get("headers") or {}).get("stripe-signature"),
            config.webhook_secrets,
            tolerance_seconds=TOLERANCE_SECONDS,
            now_epoch_s=int(now.timestamp()),
        )
    except WebhookSignatureInvalid as invalid:
        return _refuse(f"signature: {invalid}")

    def line_items(session_id: str) -> list[tuple[str, int]]:
        gateway = _gateway(config.api_key, bound.settings.stripe_api_base)
        return [(item.price_id, item.quantity) for item in gateway.checkout_line_items(session_id)]

    try:
        outcome = stripe_events.apply(scope, config, stripe_event, line_items)
    except (StripeRetryable, StripeRejected, Throttled, Unavailable) as transient:
        # StripeRejected here is our side (a revoked API key, say): Stripe retries for days, long enough to fix it
        logger.warning("stripe event deferred", extra={"event_id": stripe_event.get("id"), "why": str(transient)})
        return _reply(503, {"error": {"code": "unavailable", "message": "retry later", "details": {}}})
    except QuotaflowError as refused:  # e.g. a pack for a meter the user's plan lacks: Stripe retrying won't help
        logger.warning("stripe event not applied", extra={"event_id": stripe_event.get("id"), "why": refused.message})
        return _reply(200, {"received": True})
    logger.info(
        "stripe event", extra={"event_id": stripe_event.get("id"), "type": stripe_event.get("type"), "outcome": outcome}
    )
    return _reply(200, {"received": True})
