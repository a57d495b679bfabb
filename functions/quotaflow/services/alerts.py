"""Outgoing alerts: the tenant's webhook endpoint, each alert recorded once and delivered at least once.

Delivery never runs on a request's path: the notifier (fed by the table stream) records and first tries each
alert; what fails is retried on the schedule below by the sweeper's minute, then given up as `dead`."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, StringConstraints

from quotaflow.ledger.alerts import Alert
from quotaflow.ledger.errors import InvalidRequest, NotFound
from quotaflow.ledger.model import Model
from quotaflow.ledger.periods import NO_PERIOD, iso
from quotaflow.services.scope import Scope
from quotaflow.store import keys, shards
from quotaflow.store.secret_box import SecretBox
from quotaflow.store.table import ConditionFailed, Item, Store

RETRY_SCHEDULE = (
    timedelta(seconds=10),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
)  # then dead: 7 attempts over about 9 hours
DELIVERY_TIMEOUT_S = 5.0
RETRIES_PER_RUN_MAX = 200
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
Post = Callable[[str, bytes, dict[str, str]], int]  # url, body, headers -> HTTP status (raise on no answer)


class WebhookBody(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Annotated[str, StringConstraints(min_length=8, max_length=2048)]
    secret: Annotated[str, StringConstraints(min_length=16, max_length=255)]


class WebhookView(Model):
    url: str
    secret: str


def put_webhook(scope: Scope, box: SecretBox, body: WebhookBody, *, allow_loopback_http: bool) -> WebhookView:
    """`https` only; plain `http` only to a loopback address, and only where the deployment allows it (serve)."""
    parts = urlsplit(body.url)
    loopback_http = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and allow_loopback_http
    if not parts.hostname or (parts.scheme != "https" and not loopback_http):
        raise InvalidRequest("the webhook url must be https", field="url")
    item = {
        **keys.webhook(scope.tenant_id),
        "url": body.url,
        "secret_sealed": box.seal(scope.tenant_id, body.secret),
        "secret_masked": "…" + body.secret[-4:],
    }
    scope.store.put(item)
    return WebhookView(url=body.url, secret=item["secret_masked"])


def get_webhook(scope: Scope) -> WebhookView:
    item = scope.store.get(keys.webhook(scope.tenant_id))
    if item is None:
        raise NotFound("no webhook is set")
    return WebhookView(url=item["url"], secret=item["secret_masked"])


def payload(alert: Alert, now: datetime) -> dict[str, Any]:
    return {
        "id": alert.event_id,
        "type": alert.kind,
        "created": int(now.timestamp()),
        "data": {
            **_holder_field(alert.user_id),
            "meter": alert.meter,
            "threshold_percent": alert.threshold_percent,
            "quota": alert.quota,
            "used": alert.used,
            "remaining": alert.remaining,
            "period_start": None if alert.period_key == NO_PERIOD else alert.period_key,
        },
    }


def _holder_field(holder: str) -> dict[str, str]:
    """An alert names its user, or (`account_id`) the account whose pool crossed the threshold."""
    account_id = keys.account_of(holder)
    return {"account_id": account_id} if account_id else {"user_id": holder}


def record(store: Store, alert: Alert, now: datetime) -> Item | None:
    """The alert's outbox item, written once per event id; None if it was recorded before."""
    item = {
        **keys.alert(alert.tenant_id, alert.event_id),
        "tenant_id": alert.tenant_id,
        "payload": json.dumps(payload(alert, now), separators=(",", ":")),
        "status": "pending",
        "attempts": 0,
        "created_at": iso(now),
        **_due(alert.tenant_id, alert.event_id, now),
    }
    try:
        store.put(item, condition="attribute_not_exists(pk)")
    except ConditionFailed:
        return None
    return item


def _due(tenant_id: str, event_id: str, at: datetime) -> dict[str, str]:
    identity = f"{tenant_id}#{event_id}"
    return {"next_attempt_at": iso(at), "gsi2pk": keys.alerts_due(identity), "gsi2sk": f"{iso(at)}#{identity}"}


def sign(secret: str, body: bytes, at: datetime) -> str:
    timestamp = int(at.timestamp())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def deliver(store: Store, box: SecretBox, item: Item, now: datetime, post: Post) -> str:
    """One delivery attempt; returns the item's new status (delivered, pending or dead)."""
    tenant_id, event_id = item["tenant_id"], item["pk"].rsplit("#", 1)[1]
    webhook = store.get(keys.webhook(tenant_id))
    status_code = 0
    if webhook is not None:
        body = item["payload"].encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "quotaflow-webhooks",
            "Quotaflow-Signature": sign(box.open(tenant_id, webhook["secret_sealed"]), body, now),
        }
        try:
            status_code = post(webhook["url"], body, headers)
        except OSError:
            status_code = 0
    attempts = item["attempts"] + 1
    if 200 <= status_code < 300:
        status, due = "delivered", None
    elif attempts > len(RETRY_SCHEDULE):
        status, due = "dead", None
    else:
        status, due = "pending", now + RETRY_SCHEDULE[attempts - 1]
    update = "SET #status = :status, attempts = :attempts, last_status_code = :code"
    values: dict[str, Any] = {":status": status, ":attempts": attempts, ":code": status_code, ":read": item["attempts"]}
    if due is None:
        update += " REMOVE gsi2pk, gsi2sk"
    else:
        update += ", next_attempt_at = :next, gsi2pk = :due_pk, gsi2sk = :due_sk"
        placed = _due(tenant_id, event_id, due)
        values.update({":next": placed["next_attempt_at"], ":due_pk": placed["gsi2pk"], ":due_sk": placed["gsi2sk"]})
    try:  # a concurrent attempt that got there first wins; this one's outcome is dropped
        store.update(
            {"pk": item["pk"], "sk": item["sk"]},
            update,
            values=values,
            condition="attempts = :read",
            names={"#status": "status"},
        )
    except ConditionFailed:
        return str(item["status"])
    return status


def retry_due(store: Store, box: SecretBox, now: datetime, post: Post) -> dict[str, int]:
    """Deliver the alerts whose next attempt is due (the sweeper's minute, or `/_local/run/notifier`)."""
    partitions = keys.bucket_shards(keys.ALERTS_DUE, keys.ALERTS_DUE_SHARDS_READ)
    every_due = shards.read_due(store, partitions, f"{iso(now)}#~", RETRIES_PER_RUN_MAX).items
    outcomes: dict[str, int] = {}
    for due in sorted(every_due, key=lambda item: item["gsi2sk"])[:RETRIES_PER_RUN_MAX]:
        item = store.get({"pk": due["pk"], "sk": due["sk"]})
        if item is not None and item["status"] == "pending":
            status = deliver(store, box, item, now, post)
            outcomes[status] = outcomes.get(status, 0) + 1
    return outcomes


def http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - checked scheme
    try:
        with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_S) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
