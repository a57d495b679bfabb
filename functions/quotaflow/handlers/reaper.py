"""The TTL reaper function (table stream): when DynamoDB TTL deletes a reservation that was still pending,
refund what it held. Only deletions by the TTL service count; every other record is ignored. Each record is
processed on its own and failures are reported per record, so one bad record never fails the batch."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.handlers.runtime import runtime
from quotaflow.observability import logger
from quotaflow.services import expiry
from quotaflow.store.table import from_item

TTL_PRINCIPAL = "dynamodb.amazonaws.com"


def deleted_by_ttl(raw: dict[str, Any]) -> bool:
    """AWS marks TTL deletions as REMOVE by the DynamoDB service principal (the stack filters on the same)."""
    identity = raw.get("userIdentity") or {}
    return (
        raw.get("eventName") == "REMOVE"
        and identity.get("type") == "Service"
        and (identity.get("principalId") == TTL_PRINCIPAL)
    )


def _reap(record: DynamoDBRecord) -> None:
    raw = record.raw_event
    if not deleted_by_ttl(raw):
        return
    old_image = from_item(raw["dynamodb"]["OldImage"])
    bound = runtime()
    outcome = expiry.reap(bound.store, old_image, bound.clock(), bound.cache)
    if outcome is not None:
        logger.info("reaped", extra={"reservation_id": outcome.reservation_id, "refunded": outcome.refunded})


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    return dict(process_partial_response(event=event, record_handler=_reap, processor=processor, context=context))
