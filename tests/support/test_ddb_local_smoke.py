"""Smoke test: DynamoDB Local runs and honours the conditional semantics metering relies on."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .ddb_local import DynamoDBLocal, boto3_client

THREADS = 8
ATTEMPTS_PER_THREAD = 250
START_BALANCE = 1000


@pytest.fixture(scope="module")
def ddb() -> Iterator[DynamoDBLocal]:
    """One DynamoDB Local for this module."""
    with DynamoDBLocal() as server:
        print(f"\nDynamoDB Local ready at {server.endpoint} in {server.startup_seconds:.2f}s")
        yield server


@pytest.fixture(scope="module")
def table(ddb: DynamoDBLocal) -> str:
    """An on-demand table keyed by ``pk`` (string)."""
    client = boto3_client(ddb.endpoint)
    name = "smoke_balances"
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return name


def _balance(client: Any, table: str, pk: str) -> int:
    """Read an item's balance with a strongly consistent read."""
    item = client.get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True)["Item"]
    return int(item["balance"]["N"])


@pytest.mark.integration
def test_concurrent_conditional_decrements_never_overdraw(ddb: DynamoDBLocal, table: str) -> None:
    """8 threads race 2000 guarded decrements on a balance of 1000: exactly 1000 win."""
    client = boto3_client(ddb.endpoint, max_pool_connections=THREADS * 2)
    key = {"pk": {"S": "race"}}
    client.put_item(TableName=table, Item={**key, "balance": {"N": str(START_BALANCE)}})

    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker() -> None:
        local: Counter[str] = Counter()
        barrier.wait()
        for _ in range(ATTEMPTS_PER_THREAD):
            try:
                client.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="SET balance = balance - :one",
                    ConditionExpression="balance >= :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
            except ClientError as exc:
                local[exc.response["Error"]["Code"]] += 1
            else:
                local["ok"] += 1
        with lock:
            outcomes.update(local)

    threads = [threading.Thread(target=worker, name=f"decrement-{i}") for i in range(THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    elapsed = time.perf_counter() - started
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"

    total = THREADS * ATTEMPTS_PER_THREAD
    print(
        f"\n{total} conditional updates from {THREADS} threads in {elapsed:.2f}s "
        f"= {total / elapsed:.0f} updates/s; outcomes: {dict(outcomes)}"
    )
    expected = {"ok": START_BALANCE, "ConditionalCheckFailedException": total - START_BALANCE}
    assert outcomes == Counter(expected)
    assert _balance(client, table, "race") == 0


@pytest.mark.integration
def test_transaction_cancellation_returns_old_item(ddb: DynamoDBLocal, table: str) -> None:
    """A failed condition in TransactWriteItems reports the item and writes nothing."""
    client = boto3_client(ddb.endpoint)
    item = {"pk": {"S": "tx"}, "balance": {"N": "5"}}
    client.put_item(TableName=table, Item=item)

    with pytest.raises(ClientError) as caught:
        client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": "tx"}},
                        "UpdateExpression": "SET balance = balance - :amount",
                        "ConditionExpression": "balance >= :amount",
                        "ExpressionAttributeValues": {":amount": {"N": "10"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": {"S": "tx-ledger"}, "amount": {"N": "10"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )

    response = caught.value.response
    assert response["Error"]["Code"] == "TransactionCanceledException"
    reasons = response["CancellationReasons"]
    assert [reason["Code"] for reason in reasons] == ["ConditionalCheckFailed", "None"]
    assert reasons[0]["Item"] == item
    assert "Item" not in reasons[1]
    assert _balance(client, table, "tx") == 5
    assert "Item" not in client.get_item(TableName=table, Key={"pk": {"S": "tx-ledger"}}, ConsistentRead=True)
