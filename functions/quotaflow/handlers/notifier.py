"""The notifier function. Fed by the table stream: every counter write that crosses an alert threshold (or
exhausts a hard meter) becomes one alert, recorded once by event id, put on the stack's EventBridge bus and
POSTed, signed, to the tenant's webhook. Invoked on a schedule (an event without Records): redeliver what is
due. Records are processed one by one with partial batch failure reporting."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.handlers.runtime import runtime
from quotaflow.ledger.alerts import crossed
from quotaflow.ledger.periods import parse_iso
from quotaflow.observability import logger
from quotaflow.services import alerts
from quotaflow.store import keys
from quotaflow.store.table import from_item


def _on_write(record: DynamoDBRecord) -> None:
    raw = record.raw_event
    change = raw.get("dynamodb") or {}
    if raw.get("eventName") not in ("INSERT", "MODIFY") or "NewImage" not in change:
        return
    sort_key = (change["NewImage"].get("sk") or {}).get("S", "")
    if not sort_key.startswith(keys.COUNTER_CURRENT_PREFIX):
        return  # only counters cross thresholds; other items are not even decoded
    new = from_item(change["NewImage"])
    tenant_id, user_id = keys.holder_of(str(new["pk"]))
    old = from_item(change["OldImage"]) if "OldImage" in change else None
    bound = runtime()
    now = bound.clock()
    for alert in crossed(tenant_id, user_id, old, new):
        item = alerts.record(bound.store, alert, now)
        if item is None:
            continue  # recorded (and tried) before: a redelivered stream record
        bound.publish(alerts.payload(alert, now), tenant_id)
        status = alerts.deliver(bound.store, bound.secret_box, item, now, alerts.http_post)
        logger.info("alert", extra={"event_id": alert.event_id, "type": alert.kind, "status": status})


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" not in event:
        bound = runtime()
        now = parse_iso(event["time"]) if event.get("time") else bound.clock()
        return {"redelivered": alerts.retry_due(bound.store, bound.secret_box, now, alerts.http_post)}
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    return dict(process_partial_response(event=event, record_handler=_on_write, processor=processor, context=context))
