"""End to end on DynamoDB Local, which really deletes expired TTL items: a pending reservation whose TTL has
passed disappears, its stream record reaches the reaper, and the hold comes back exactly once.

Two quirks of DynamoDB Local 3.3, measured here, shape this test:
- it never TTL-deletes items of a table that has a global secondary index with a sort key (ours has three), and
  with many such tables around (the rest of the suite's) its TTL sweep may not reach other tables in time; so
  the expiring copy of the reservation lives in a twin table with the same primary key and no indexes, on an
  emulator of its own, whose stream the test reads; the store's table loses the item as TTL would delete it;
- its record for a TTL deletion carries eventName "UNKNOWN_TO_SDK_VERSION" and no userIdentity, where AWS
  sends REMOVE by the DynamoDB service principal; the test rewrites those two fields as AWS sends them (the
  AWS shape is pinned by events/stream/)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.config import Settings
from quotaflow.handlers import reaper
from quotaflow.handlers.runtime import Runtime, bind
from quotaflow.local.events import LocalContext
from quotaflow.services import metering
from quotaflow.store import keys
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import PAYGO, Tenant, lines
from tests.support.ddb_local import DynamoDBLocal, boto3_client

pytestmark = pytest.mark.integration
DELETION_WAIT_S = 45.0


def stream_records(ddb_local: DynamoDBLocal, store: Store) -> list[dict[str, Any]]:
    client = boto3.client(
        "dynamodbstreams",
        endpoint_url=ddb_local.endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    arn = store.client.describe_table(TableName=store.table_name)["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = client.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        for _ in range(20):
            page = client.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            iterator = page.get("NextShardIterator")
            if not iterator or not page["Records"]:
                break
    return records


def as_aws_ttl_removal(record: dict[str, Any]) -> dict[str, Any]:
    return {
        **record,
        "eventName": "REMOVE",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/t",
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
    }


def ttl_twin(client: Any) -> Store:
    """A table with the store's primary key, a stream and TTL on `ttl`, and no secondary indexes."""
    twin = Store(client, "reservations-ttl")
    client.create_table(
        TableName=twin.table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    client.get_waiter("table_exists").wait(TableName=twin.table_name)
    client.update_time_to_live(
        TableName=twin.table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
    )
    return twin


@pytest.fixture
def ttl_emulator() -> Iterator[DynamoDBLocal]:
    with DynamoDBLocal() as emulator:
        yield emulator


def test_a_ttl_deletion_on_dynamodb_local_reaches_the_reaper(
    ttl_emulator: DynamoDBLocal, ddb_store: Store, clock: Clock
) -> None:
    tenant = Tenant(ddb_store, clock)
    tenant.subscribe("u1", PAYGO, tokens=10_000)
    held = metering.reserve(tenant.scope, "u1", lines(tokens=4000), 60, None)
    key = keys.reservation("acme", held.reservation_id)
    item = ddb_store.get(key)
    assert item is not None
    twin = ttl_twin(boto3_client(ttl_emulator.endpoint))
    twin.put({**item, "ttl": int(time.time()) - 5})  # already past its TTL, rather than after the hour of grace
    deadline = time.monotonic() + DELETION_WAIT_S
    while twin.get(key) is not None:
        assert time.monotonic() < deadline, "DynamoDB Local did not delete the expired item"
        time.sleep(0.5)
    ddb_store.delete(key)  # what TTL does to the same item in the store's table
    removals = [
        r
        for r in stream_records(ttl_emulator, twin)
        if r["dynamodb"]["Keys"]["pk"]["S"] == key["pk"] and "NewImage" not in r["dynamodb"]
    ]
    assert len(removals) == 1 and removals[0]["eventName"] not in ("INSERT", "MODIFY")
    assert "userIdentity" not in removals[0], "DynamoDB Local does not mark TTL deletions (see module doc)"
    bind(Runtime(store=ddb_store, settings=Settings(), clock=clock))
    event = {"Records": [as_aws_ttl_removal(removals[0])] * 2}  # delivered twice, as a retried batch would
    context = cast(LambdaContext, LocalContext())
    assert reaper.handler(event, context) == {"batchItemFailures": []}
    counter = tenant.counter("u1", "tokens")
    assert (counter["reserved"], counter["remaining"]) == (0, 10_000)
    tenant.assert_verified()
