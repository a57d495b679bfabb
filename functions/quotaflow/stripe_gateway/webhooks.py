"""Verifying Stripe webhooks: the signature check is the SDK's, the clock is ours.

``stripe.WebhookSignature.verify_header`` (what ``stripe.Webhook.construct_event`` runs before building its
``Event``) does the HMAC work: every ``v1=`` signature in the header against each signing secret in turn, so both
a secret rotation on our side (several secrets configured) and Stripe's own rollover (several ``v1`` entries in one
header) verify. Its age check reads ``time.time()`` directly, so it runs with the tolerance off and the age is
checked here against ``now_epoch_s``: the same rule (older than the tolerance is refused, a timestamp ahead of the
clock is not), with a clock a caller can pass in. The payload is returned as the plain dict it was signed as."""

from __future__ import annotations

import json
import time
from typing import Any

from quotaflow.stripe_gateway.errors import WebhookSignatureInvalid


def verify_webhook(
    payload: bytes | str,
    signature_header: str | None,
    secrets: list[str],
    *,
    tolerance_seconds: int = 300,
    now_epoch_s: int | None = None,
) -> dict[str, Any]:
    """The event in ``payload`` once its ``Stripe-Signature`` matches one of ``secrets`` and is recent enough.

    Raises ``WebhookSignatureInvalid`` for a missing or malformed header, no matching signature, a signature
    older than ``tolerance_seconds``, no usable secret, or a payload that is not a JSON Stripe event."""
    if tolerance_seconds <= 0:
        raise ValueError(f"tolerance_seconds must be positive, got {tolerance_seconds}")
    if not signature_header:
        raise WebhookSignatureInvalid("no Stripe-Signature header")
    usable_secrets = [secret for secret in secrets if secret.strip()]
    if not usable_secrets:
        raise WebhookSignatureInvalid("no webhook signing secret is configured")
    try:
        # the signature covers the body's text; API Gateway hands it over as a str already
        text = payload if isinstance(payload, str) else payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookSignatureInvalid("payload is not UTF-8") from exc

    _match_any_secret(text, signature_header, usable_secrets)
    signed_at_epoch_s = _signed_at_epoch_s(signature_header)
    now = int(time.time()) if now_epoch_s is None else now_epoch_s
    age_seconds = now - signed_at_epoch_s
    if age_seconds > tolerance_seconds:
        raise WebhookSignatureInvalid(f"signature is {age_seconds} s old, over the {tolerance_seconds} s tolerance")
    return _parse_event(text)


def _match_any_secret(text: str, signature_header: str, secrets: list[str]) -> None:
    import stripe

    reason = ""
    for secret in secrets:
        try:
            # tolerance=None: the SDK skips its own age check (see the module docstring)
            stripe.WebhookSignature.verify_header(text, signature_header, secret, tolerance=None)
        except stripe.SignatureVerificationError as exc:
            reason = exc.user_message or str(exc)
            continue
        return
    raise WebhookSignatureInvalid(f"Stripe-Signature matches none of the {len(secrets)} signing secret(s): {reason}")


def _signed_at_epoch_s(signature_header: str) -> int:
    """The header's ``t=`` value, read the way the SDK reads it (the first ``t`` entry)."""
    for part in signature_header.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "t":
            try:
                return int(value)
            except ValueError:
                break
    raise WebhookSignatureInvalid("Stripe-Signature has no usable t= timestamp")


def _parse_event(text: str) -> dict[str, Any]:
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise WebhookSignatureInvalid("payload is not JSON") from exc
    if not isinstance(event, dict):
        raise WebhookSignatureInvalid("payload is not a JSON object")
    if not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise WebhookSignatureInvalid("payload is not a Stripe event (no string id and type)")
    if event.get("object") == "v2.core.event":
        # the SDK refuses thin events here too: they carry no snapshot and need the v2 event API
        raise WebhookSignatureInvalid("payload is a thin (v2) event notification, not a snapshot event")
    return event
