"""The lake writer function. Fed by the table stream (ledger entry inserts only, by the event source's filter):
each entry becomes one flat record on the lake's Firehose stream, which writes Parquet partitioned by tenant and
day. Under `serve` the same records go to NDJSON files in a local directory.

The whole batch goes out in as few calls as Firehose allows; records Firehose refuses are reported as batch item
failures, so Lambda retries from the first of them. A retry may write a record twice: readers dedupe by entry_id."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.handlers.runtime import runtime
from quotaflow.observability import logger
from quotaflow.store import keys
from quotaflow.store.lake import record_from_item
from quotaflow.store.table import from_item


def lake_records(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The lake records of a batch's ledger entry inserts, and each one's stream sequence number."""
    found: list[dict[str, Any]] = []
    sequence_numbers: list[str] = []
    for record in records:
        change = record.get("dynamodb") or {}
        image = change.get("NewImage")
        if record.get("eventName") != "INSERT" or not image:
            continue
        if not (image.get("sk") or {}).get("S", "").startswith(keys.LEDGER_PREFIX):
            continue  # only ledger entries belong in the lake; other items are not even decoded
        lake_record = record_from_item(from_item(image))
        if lake_record is not None:
            found.append(lake_record)
            sequence_numbers.append(str(change.get("SequenceNumber", "")))
    return found, sequence_numbers


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    found, sequence_numbers = lake_records(event.get("Records") or [])
    writer = runtime().lake_writer()
    if not found or writer is None:
        return {"batchItemFailures": []}
    refused = writer.write(found)
    if refused:
        logger.warning("lake records refused", extra={"refused": len(refused), "records": len(found)})
    return {"batchItemFailures": [{"itemIdentifier": sequence_numbers[index]} for index in refused]}
