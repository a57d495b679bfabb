"""The lake writer function in its AWS configuration: stream records in, flat JSON records onto Firehose, through
the real boto3 client against moto's Firehose, which delivers to moto's S3 (no Parquet conversion or dynamic
partitioning there: those are Firehose's own, asserted on the template in tests/infra/test_lake.py)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from quotaflow.config import Settings
from quotaflow.handlers import lake_writer
from quotaflow.handlers.runtime import Runtime, bind
from quotaflow.local.events import LocalContext
from quotaflow.store import lake
from quotaflow.store.table import Store, to_item

pytestmark = pytest.mark.unit

BUCKET = "quotaflow-lake-test"
STREAM = "quotaflow-dev-lake"


@pytest.fixture
def s3(moto_store: Store) -> Any:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    boto3.client("firehose", region_name="us-east-1").create_delivery_stream(
        DeliveryStreamName=STREAM,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "Prefix": "ledger/",
        },
    )
    bind(Runtime(store=moto_store, settings=Settings(lake_stream=STREAM)))
    return client


def entry_insert(sequence: int, tenant_id: str = "acme") -> dict[str, Any]:
    item = {
        "pk": f"T#{tenant_id}#U#u1",
        "sk": f"L#{sequence:04d}",
        "entry_id": f"{sequence:04d}",
        "at": "2026-11-27T10:00:00Z",
        "kind": "event",
        "meter": "tokens",
        "period_key": "none",
        "du": sequence,
        "dr": 0,
        "dc": 0,
        "dq": 0,
        "ref": f"evt_{sequence}",
        "properties": {"model": "gpt-4o"},
    }
    return {"eventName": "INSERT", "dynamodb": {"NewImage": to_item(item), "SequenceNumber": str(sequence)}}


def delivered(s3: Any) -> list[dict[str, Any]]:
    records = []
    for listed in s3.list_objects_v2(Bucket=BUCKET, Prefix="ledger/").get("Contents", []):
        body = s3.get_object(Bucket=BUCKET, Key=listed["Key"])["Body"].read().decode()
        records += [json.loads(line) for line in body.splitlines() if line]
    return records


def test_every_ledger_entry_of_a_batch_reaches_the_stream_as_one_record(s3: Any) -> None:
    batch = [entry_insert(n) for n in range(1, 4)] + [entry_insert(9, tenant_id="rival")]

    answer = lake_writer.handler({"Records": batch}, LocalContext())

    assert answer == {"batchItemFailures": []}
    records = delivered(s3)
    assert sorted((r["tenant_id"], r["entry_id"], r["delta_used"]) for r in records) == [
        ("acme", "0001", 1),
        ("acme", "0002", 2),
        ("acme", "0003", 3),
        ("rival", "0009", 9),
    ]
    assert {r["day"] for r in records} == {"2026-11-27"}  # the key Firehose partitions on, with tenant_id
    assert {r["model"] for r in records} == {"gpt-4o"}


def test_large_batches_are_split_within_firehose_limits() -> None:
    payloads = [b"x" * 10_000] * 1200  # 12 MB in 1,200 records: over both limits of one PutRecordBatch
    batches = list(lake._batches(payloads))
    assert all(len(batch) <= lake.FIREHOSE_RECORDS_PER_CALL_MAX for batch in batches)
    assert all(sum(len(data) for _, data in batch) <= lake.FIREHOSE_BYTES_PER_CALL_MAX for batch in batches)
    assert [index for batch in batches for index, _ in batch] == list(range(1200))
