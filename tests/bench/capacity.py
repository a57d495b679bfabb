"""Write units as AWS bills them, from the items a transaction actually wrote.

DynamoDB Local's `ConsumedCapacity` for TransactWriteItems does not follow AWS's rule: a transaction of several
small items reports 2.0 whatever the item count (measured here: 1 to 5 items of 100 B all report 2.0), so its
figures are printed as measured but the cost uses the rule below, applied to the real items:

- each item in a transaction: 2 write units per started KB of the larger of its before and after images;
- a single PutItem / UpdateItem / DeleteItem: 1 write unit per started KB of the same;
- each global secondary index the item enters, leaves or changes in: 1 write unit per started KB of the projected
  image (an assumption: index propagation is not part of the two-phase transaction; at 2 units it costs more,
  and the report says how much).

Item sizes follow AWS's documented rule (`quotaflow.store.sizes`, which also keeps reservation ids from costing
write units)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from quotaflow.store.sizes import KB, item_size

TRANSACTION_UNITS_PER_KB = 2
SINGLE_WRITE_UNITS_PER_KB = 1
INDEX_UNITS_PER_KB = 1  # the assumption above
WRITE_OPERATIONS = ("TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem")


def units(size_bytes: int, per_kb: int) -> int:
    return per_kb * max(1, math.ceil(size_bytes / KB)) if size_bytes else 0


@dataclass(frozen=True)
class Write:
    """One item written by a transaction, with the partitions it touched."""

    operation: str
    partition: str  # the table partition key value
    units: int
    index_writes: tuple[tuple[str, str, int], ...]  # (index, index partition key value, units)


@dataclass
class Ledger:
    """Every write of the operations run inside `Meter.op`, by operation name."""

    writes: dict[str, list[Write]] = field(default_factory=dict)

    def table_units(self, op: str) -> int:
        return sum(w.units for w in self.writes.get(op, []))

    def index_units(self, op: str) -> int:
        return sum(units for w in self.writes.get(op, []) for _, _, units in w.index_writes)

    def total_units(self, op: str) -> int:
        return self.table_units(op) + self.index_units(op)


class Meter:
    """Watches one client: before each write call it reads the before images with a separate probe client,
    after it the after images, and turns both into `Write`s under the current operation's name. A botocore event
    hook on the client: the store's code runs unchanged."""

    def __init__(self, client: Any, probe: Any, indexes: dict[str, str]) -> None:
        self.client, self.probe, self.indexes = client, probe, indexes  # indexes: name -> partition key attribute
        self.ledger = Ledger()
        self._op: str | None = None
        self._pending: list[tuple[str, dict[str, Any], dict[str, Any] | None, int]] = []

    @contextmanager
    def op(self, name: str) -> Iterator[None]:
        self._op = name
        self.ledger.writes.setdefault(name, [])
        for operation in WRITE_OPERATIONS:
            self.client.meta.events.register(f"provide-client-params.dynamodb.{operation}", self._before)
            self.client.meta.events.register(f"after-call.dynamodb.{operation}", self._after)
        try:
            yield
        finally:
            for operation in WRITE_OPERATIONS:
                self.client.meta.events.unregister(f"provide-client-params.dynamodb.{operation}", self._before)
                self.client.meta.events.unregister(f"after-call.dynamodb.{operation}", self._after)
            self._op = None

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self._pending = []
        if model.name != "TransactWriteItems":
            self._pending.append((model.name, params, self._read(params), SINGLE_WRITE_UNITS_PER_KB))
            return
        for write in params["TransactItems"]:
            ((operation, body),) = write.items()
            if operation != "ConditionCheck":
                self._pending.append((operation, body, self._read(body), TRANSACTION_UNITS_PER_KB))

    def _after(self, http_response: Any = None, **_: Any) -> None:
        if self._op is None or getattr(http_response, "status_code", 200) != 200:
            self._pending = []
            return
        for operation, body, before, units_per_kb in self._pending:
            after = self._read(body)
            size = max(item_size(before), item_size(after))
            indexed = tuple(self._index_writes(before, after))
            partition = _key_of(body)["pk"]["S"]
            self.ledger.writes[self._op].append(Write(operation, partition, units(size, units_per_kb), indexed))
        self._pending = []

    def _index_writes(
        self, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> Iterator[tuple[str, str, int]]:
        for index, key_attribute in self.indexes.items():
            had = (before or {}).get(key_attribute)
            has = (after or {}).get(key_attribute)
            if had is None and has is None:
                continue
            if had is not None and has is not None and had != has:  # moved: a delete and a put on the index
                yield index, had["S"], units(item_size(before), INDEX_UNITS_PER_KB)
            image = after if has is not None else before
            yield index, (has or had)["S"], units(item_size(image), INDEX_UNITS_PER_KB)

    def _read(self, body: dict[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.probe.get_item(
            TableName=body["TableName"], Key=_key_of(body), ConsistentRead=True
        ).get("Item")
        return found


def _key_of(body: dict[str, Any]) -> dict[str, Any]:
    if "Key" in body:
        return dict(body["Key"])
    return {"pk": body["Item"]["pk"], "sk": body["Item"]["sk"]}


def index_partition_keys(client: Any, table: str) -> dict[str, str]:
    """Each global secondary index of the table and its partition key attribute, as the table says."""
    described = client.describe_table(TableName=table)["Table"]
    found = {}
    for index in described.get("GlobalSecondaryIndexes", []):
        hash_key = next(k["AttributeName"] for k in index["KeySchema"] if k["KeyType"] == "HASH")
        found[index["IndexName"]] = hash_key
    return found


PARTITION_KINDS = (
    (re.compile(r"^T#[^#]+#U#[^#]+$"), "the user's partition"),
    (re.compile(r"^T#[^#]+#R#"), "the reservation's own partition"),
    (re.compile(r"^T#[^#]+#I#"), "the idempotency record's partition"),
    (re.compile(r"^EXP#"), "an expiry-minute bucket's shard (shared by every tenant)"),
)


def partition_kind(value: str) -> str:
    for pattern, kind in PARTITION_KINDS:
        if pattern.search(value):
            return kind
    return "other"


def units_by_partition(ledger: Ledger, ops: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Write units per partition kind over `ops`, table and each index apart: what one partition must absorb."""
    found: dict[str, dict[str, int]] = {}
    for op in ops:
        for write in ledger.writes.get(op, []):
            place = found.setdefault(f"table: {partition_kind(write.partition)}", {"items": 0, "units": 0})
            place["items"] += 1
            place["units"] += write.units
            for index, value, index_units in write.index_writes:
                place = found.setdefault(f"{index}: {partition_kind(value)}", {"items": 0, "units": 0})
                place["items"] += 1
                place["units"] += index_units
    return found
