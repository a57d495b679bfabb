"""The boto3 calls. Every AWS error code becomes a domain or store error here, once."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from quotaflow.ledger.errors import InvalidRequest, Throttled, Unavailable
from quotaflow.store import keys

Item = dict[str, Any]
TRANSACT_ITEMS_MAX = 100  # DynamoDB's own limit per TransactWriteItems
QUERY_PAGE_MAX = 1000
BATCH_GET_KEYS_MAX = 100  # DynamoDB's own limit per BatchGetItem
BATCH_GET_ATTEMPTS_MAX = 5  # rounds for the keys DynamoDB left unprocessed (throttling), with backoff
BATCH_GET_BACKOFF_BASE_S = 0.05

_THROTTLING = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
}
_TRANSIENT = {"InternalServerError", "ServiceUnavailable", "TransactionInProgressException"}


def to_attr(value: Any) -> dict[str, Any]:
    """Python -> DynamoDB attribute value, for the few types quotaflow stores (ints only: no floats)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, list | tuple):
        return {"L": [to_attr(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: to_attr(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__}")


def from_attr(attr: dict[str, Any]) -> Any:
    if not attr:
        return {}  # DynamoDB Local's stream records carry an empty map as {} with its type dropped
    ((kind, value),) = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        return int(value)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "L":
        return [from_attr(v) for v in value]
    if kind == "M":
        return {k: from_attr(v) for k, v in value.items()}
    raise TypeError(f"unexpected attribute type {kind}")


def to_item(item: Item) -> dict[str, Any]:
    return {k: to_attr(v) for k, v in item.items()}


def from_item(raw: dict[str, Any]) -> Item:
    return {k: from_attr(v) for k, v in raw.items()}


class ConditionFailed(Exception):
    """A single conditional write failed; `item` is the item as it was (None if absent)."""

    def __init__(self, item: Item | None) -> None:
        super().__init__("condition failed")
        self.item = item


@dataclass(frozen=True)
class Reason:
    tag: str
    code: str  # "None", "ConditionalCheckFailed", "TransactionConflict", ...
    item: Item | None


class TransactionCancelled(Exception):
    """A transaction was refused; `reasons` holds one entry per write, tagged as the caller named it."""

    def __init__(self, reasons: list[Reason]) -> None:
        super().__init__(", ".join(f"{r.tag}:{r.code}" for r in reasons if r.code != "None"))
        self.reasons = reasons

    def failed(self, tag_prefix: str) -> list[Reason]:
        return [r for r in self.reasons if r.code == "ConditionalCheckFailed" and r.tag.startswith(tag_prefix)]

    @property
    def conflicted(self) -> bool:
        return any(r.code == "TransactionConflict" for r in self.reasons)


class SnapshotConflict(Exception):
    """A snapshot read (TransactGetItems) met a transaction in flight on one of its items."""


@dataclass
class Transaction:
    """One unit of work: writes collected by a use case and committed as a single TransactWriteItems."""

    table_name: str
    writes: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def _add(
        self,
        tag: str,
        op: str,
        body: dict[str, Any],
        condition: str | None,
        names: dict[str, str] | None,
        values: dict[str, Any] | None,
    ) -> None:
        if len(self.writes) >= TRANSACT_ITEMS_MAX:
            raise InvalidRequest(f"one request may change at most {TRANSACT_ITEMS_MAX} items", field="lines")
        body = {"TableName": self.table_name, **body}
        if condition:
            body["ConditionExpression"] = condition
            body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if names:
            body["ExpressionAttributeNames"] = names
        if values:
            body["ExpressionAttributeValues"] = {k: to_attr(v) for k, v in values.items()}
        self.writes.append({op: body})
        self.tags.append(tag)

    def put(
        self,
        tag: str,
        item: Item,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        self._add(tag, "Put", {"Item": to_item(item)}, condition, names, values)

    def update(
        self,
        tag: str,
        key: dict[str, str],
        update: str,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        self._add(tag, "Update", {"Key": to_item(key), "UpdateExpression": update}, condition, names, values)

    def check(
        self,
        tag: str,
        key: dict[str, str],
        *,
        condition: str,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        """A condition on an item the transaction does not change."""
        self._add(tag, "ConditionCheck", {"Key": to_item(key)}, condition, names, values)

    def delete(
        self,
        tag: str,
        key: dict[str, str],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        self._add(tag, "Delete", {"Key": to_item(key)}, condition, names, values)


@dataclass(frozen=True)
class Page:
    items: list[Item]
    cursor: str | None


class Store:
    """The table, through a boto3 DynamoDB client. Reads are strongly consistent: balances must not lag."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name
        # When a list, every write asks DynamoDB for its consumed capacity and appends (operation, units) here:
        # for benchmarks and cost notes, off in production (the extra response field is not free to parse).
        self.capacity_log: list[tuple[str, float]] | None = None

    def _capacity(self, kwargs: dict[str, Any]) -> None:
        if self.capacity_log is not None:
            kwargs["ReturnConsumedCapacity"] = "TOTAL"

    def _record(self, operation: str, raw: dict[str, Any]) -> None:
        if self.capacity_log is None:
            return
        consumed = raw.get("ConsumedCapacity")
        entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
        self.capacity_log.append((operation, sum(float(e.get("CapacityUnits", 0)) for e in entries)))

    def transaction(self) -> Transaction:
        return Transaction(self.table_name)

    def get(self, key: dict[str, str]) -> Item | None:
        with _mapped_errors():
            raw = self.client.get_item(TableName=self.table_name, Key=to_item(key), ConsistentRead=True)
        return from_item(raw["Item"]) if "Item" in raw else None

    def get_many(self, wanted: list[dict[str, str]]) -> list[Item | None]:
        """Strongly consistent reads of up to BATCH_GET_KEYS_MAX keys in one BatchGetItem (a key DynamoDB left
        unprocessed, under throttling, is asked again a bounded number of times), in the order asked."""
        if len(wanted) > BATCH_GET_KEYS_MAX:
            raise ValueError(f"a batch read takes at most {BATCH_GET_KEYS_MAX} keys, not {len(wanted)}")
        found: dict[tuple[str, str], Item] = {}
        pending = [to_item(key) for key in wanted]
        for attempt in range(BATCH_GET_ATTEMPTS_MAX):
            if not pending:
                break
            if attempt:
                time.sleep(BATCH_GET_BACKOFF_BASE_S * 2 ** (attempt - 1))
            request = {self.table_name: {"Keys": pending, "ConsistentRead": True}}
            with _mapped_errors():
                raw = self.client.batch_get_item(RequestItems=request)
            for raw_item in raw.get("Responses", {}).get(self.table_name, []):
                item = from_item(raw_item)
                found[(item["pk"], item["sk"])] = item
            pending = raw.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
        if pending:
            raise Throttled("the database left part of a batch read unprocessed; retry shortly")
        return [found.get((key["pk"], key["sk"])) for key in wanted]

    def get_snapshot(self, wanted: list[dict[str, str]]) -> list[Item | None]:
        """Up to TRANSACT_ITEMS_MAX items as of one moment (TransactGetItems: serialized with every transactional
        write), in the order asked: what a decision over several items must not read half before a change."""
        if len(wanted) > TRANSACT_ITEMS_MAX:
            raise ValueError(f"a snapshot read takes at most {TRANSACT_ITEMS_MAX} keys, not {len(wanted)}")
        request = [{"Get": {"TableName": self.table_name, "Key": to_item(key)}} for key in wanted]
        try:
            with _mapped_errors(passthrough=frozenset({"TransactionCanceledException"})):
                raw = self.client.transact_get_items(TransactItems=request)
        except ClientError as error:  # a write in flight on one of the items: the caller reads again
            raise SnapshotConflict("a snapshot read met a write in flight") from error
        return [from_item(found["Item"]) if "Item" in found else None for found in raw["Responses"]]

    def put(self, item: Item, *, condition: str | None = None, values: dict[str, Any] | None = None) -> None:
        kwargs: dict[str, Any] = {"TableName": self.table_name, "Item": to_item(item)}
        if condition:
            kwargs.update(ConditionExpression=condition, ReturnValuesOnConditionCheckFailure="ALL_OLD")
        if values:
            kwargs["ExpressionAttributeValues"] = {k: to_attr(v) for k, v in values.items()}
        with _mapped_errors():
            self.client.put_item(**kwargs)

    def update(
        self,
        key: dict[str, str],
        update: str,
        *,
        values: dict[str, Any],
        condition: str | None = None,
        names: dict[str, str] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": to_item(key),
            "UpdateExpression": update,
            "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
        }
        if condition:
            kwargs.update(ConditionExpression=condition, ReturnValuesOnConditionCheckFailure="ALL_OLD")
        if names:
            kwargs["ExpressionAttributeNames"] = names
        with _mapped_errors():
            self.client.update_item(**kwargs)

    def delete(self, key: dict[str, str]) -> None:
        with _mapped_errors():
            self.client.delete_item(TableName=self.table_name, Key=to_item(key))

    def query(
        self,
        pk: str,
        sk_prefix: str,
        *,
        limit: int,
        cursor: str | None = None,
        newest_first: bool = False,
        index: str | None = None,
        sk_below: str | None = None,
    ) -> Page:
        """One page of a partition, sk beginning with `sk_prefix`, or sorting below `sk_below` (on GSIs: the
        index's own keys)."""
        pk_name, sk_name = (f"{index}pk", f"{index}sk") if index else ("pk", "sk")
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": pk_name},
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "Limit": min(limit, QUERY_PAGE_MAX),
            "ScanIndexForward": not newest_first,
        }
        if sk_prefix:  # DynamoDB refuses begins_with on an empty string
            kwargs["KeyConditionExpression"] += " AND begins_with(#sk, :prefix)"
            kwargs["ExpressionAttributeNames"]["#sk"] = sk_name
            kwargs["ExpressionAttributeValues"][":prefix"] = {"S": sk_prefix}
        elif sk_below is not None:
            kwargs["KeyConditionExpression"] += " AND #sk < :below"
            kwargs["ExpressionAttributeNames"]["#sk"] = sk_name
            kwargs["ExpressionAttributeValues"][":below"] = {"S": sk_below}
        if index:
            kwargs["IndexName"] = index
        else:
            kwargs["ConsistentRead"] = True
        if cursor:
            kwargs["ExclusiveStartKey"] = _decode_cursor(cursor, pk_name, pk, sk_prefix, sk_name)
        self._capacity(kwargs)
        with _mapped_errors():
            raw = self.client.query(**kwargs)
        self._record("Query", raw)
        last = raw.get("LastEvaluatedKey")
        return Page([from_item(i) for i in raw["Items"]], _encode_cursor(last) if last else None)

    def cursor_at(self, pk: str, sk: str) -> str:
        """A `query` cursor that starts right after (pk, sk), whether or not such an item exists."""
        return _encode_cursor(to_item({"pk": pk, "sk": sk}))

    def query_all(self, pk: str, sk_prefix: str, *, pages_max: int, index: str | None = None) -> Iterator[Item]:
        """Every item of a prefix, page by page, failing fast past `pages_max` pages."""
        cursor: str | None = None
        for _ in range(pages_max):
            page = self.query(pk, sk_prefix, limit=QUERY_PAGE_MAX, cursor=cursor, index=index)
            yield from page.items
            cursor = page.cursor
            if cursor is None:
                return
        raise Unavailable(f"more than {pages_max} pages under {sk_prefix!r}: refusing an unbounded read")

    def transact(self, tx: Transaction, *, client_token: str | None = None) -> None:
        if not tx.writes:
            return
        kwargs: dict[str, Any] = {"TransactItems": tx.writes}
        if client_token:
            kwargs["ClientRequestToken"] = client_token
        self._capacity(kwargs)
        try:
            with _mapped_errors(frozenset({"TransactionCanceledException"})):
                raw = self.client.transact_write_items(**kwargs)
            self._record("TransactWriteItems", raw)
        except ClientError as error:
            raise _cancellation(error, tx.tags) from error

    def create_table(self) -> None:
        """Create the table and its indexes if missing (local mode and tests; CDK owns it in AWS)."""
        try:
            self.client.describe_table(TableName=self.table_name)
            return
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
        indexes = ("gsi1", "gsi2", "gsi3")
        string_keys = ["pk", "sk", *(f"{index}{part}" for index in indexes for part in ("pk", "sk"))]
        self.client.create_table(
            TableName=self.table_name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in string_keys],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": index,
                    "KeySchema": [
                        {"AttributeName": f"{index}pk", "KeyType": "HASH"},
                        {"AttributeName": f"{index}sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
                for index in indexes
            ],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        self.client.get_waiter("table_exists").wait(TableName=self.table_name)
        try:
            self.client.update_time_to_live(
                TableName=self.table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
            )
        except ClientError as error:  # DynamoDB Local versions without TTL support still serve everything else
            if error.response["Error"]["Code"] not in {"UnknownOperationException", "ValidationException"}:
                raise
        # Nothing in a new table is older than it: the sweeper's first run starts at this minute, not a lookback back
        self.put({**keys.SWEEP_WATERMARK, "swept_to": keys.expiry_minute(datetime.now(UTC).isoformat())})


@contextmanager
def _mapped_errors(passthrough: frozenset[str] = frozenset()) -> Iterator[None]:
    """Translate throttling and transient AWS failures into retryable domain errors."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in passthrough:
            raise
        if code == "ConditionalCheckFailedException":
            raw = error.response.get("Item")
            raise ConditionFailed(from_item(cast(dict[str, Any], raw)) if raw else None) from error
        if code in _THROTTLING:
            raise Throttled("the database is throttling requests; retry shortly") from error
        if code in _TRANSIENT:
            raise Unavailable("the database is temporarily unavailable; retry shortly") from error
        raise
    except BotoCoreError as error:  # connection failures and timeouts
        raise Unavailable("the database could not be reached; retry shortly") from error


def _cancellation(error: ClientError, tags: list[str]) -> Exception:
    raw_reasons = error.response.get("CancellationReasons") or []
    reasons = [
        Reason(tag, raw.get("Code", "None"), from_item(cast(dict[str, Any], raw["Item"])) if raw.get("Item") else None)
        for tag, raw in zip(tags, raw_reasons, strict=False)
    ]
    if any(r.code in _THROTTLING for r in reasons):
        return Throttled("the database is throttling requests; retry shortly")
    return TransactionCancelled(reasons)


def _encode_cursor(last_key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(from_item(last_key), sort_keys=True).encode()).decode()


def _decode_cursor(cursor: str, pk_name: str, pk: str, sk_prefix: str, sk_name: str) -> dict[str, Any]:
    """A cursor is only ever a key inside the partition and prefix being read: anything else is rejected."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidRequest("cursor is not one this API returned", field="cursor") from None
    if (
        not isinstance(key, dict)
        or key.get(pk_name) != pk
        or not isinstance(key.get(sk_name), str)
        or not key[sk_name].startswith(sk_prefix)
        or not all(isinstance(v, str) for v in key.values())
        or len(key) > 4
    ):
        raise InvalidRequest("cursor is not one this API returned", field="cursor")
    return to_item(key)
