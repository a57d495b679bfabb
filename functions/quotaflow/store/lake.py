"""The usage lake: ledger entries as flat, columnar-friendly records, written off the table's stream and read back
by an SQL engine (DuckDB over a local directory under `serve`, Athena over S3 in AWS).

Layout, the same in S3 and on disk (so BI tools can point at either):

    <root>/tenant_id=<tenant>/day=<YYYY-MM-DD>/<file>     Parquet in S3 (Firehose), NDJSON locally

Each record has the columns of `COLUMNS`. The lake is at-least-once: a stream record delivered twice lands twice,
so every reader deduplicates by `entry_id` (an entry is immutable, so copies are identical)."""

from __future__ import annotations

import json
import os
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quotaflow.config import Settings
from quotaflow.store import keys
from quotaflow.store.table import Item

# Column name -> type, in Glue / Hive terms (infra builds the Glue table from the same list; tests/infra compares).
# `tenant_id` and `day` are the partition columns: in S3 they live in the path, locally in the record too.
COLUMNS: dict[str, str] = {
    "entry_id": "string",
    "occurred_at": "string",  # the entry's `at`, ISO 8601 UTC to the second (`2026-11-27T10:00:00Z`): sorts as text
    "user_id": "string",
    "account_id": "string",  # the account whose counter the entry changed; null on a user's own counters
    "meter": "string",
    "kind": "string",
    "period_key": "string",
    "delta_used": "bigint",
    "delta_reserved": "bigint",
    "delta_credits": "bigint",
    "delta_quota": "bigint",
    "ref": "string",
    "model": "string",  # the event's `model` property, else the model of the entry's `from_model` line
    "properties": "map<string,string>",
}
PARTITION_COLUMNS: dict[str, str] = {"tenant_id": "string", "day": "string"}  # day: YYYY-MM-DD of occurred_at
PROPERTY_VALUE_LENGTH_MAX = 256  # what the API admits for a property value


def record_from_item(item: Item) -> dict[str, Any] | None:
    """The lake record of a ledger entry item (a stream record's new image, decoded); None for any other item."""
    if not str(item.get("sk", "")).startswith(keys.LEDGER_PREFIX):
        return None
    # T#<tenant>#U#<user> (or #A#<account> for an account's counters, #A#<account>#<k> for a pool shard's)
    partition = keys.without_pool_shard(str(item["pk"])).split("#")
    if len(partition) != 4 or partition[0] != "T":
        return None
    _, tenant_id, holder_kind, holder_id = partition
    raw_properties = item.get("properties") or {}
    at = str(item["at"])
    return {
        "tenant_id": tenant_id,
        "day": at[:10],
        "entry_id": item["entry_id"],
        "occurred_at": at,
        "user_id": holder_id if holder_kind == "U" else item.get("user_id"),
        "account_id": holder_id if holder_kind == "A" else item.get("account_id"),
        "meter": item["meter"],
        "kind": item["kind"],
        "period_key": item.get("period_key"),
        "delta_used": int(item.get("du", 0)),
        "delta_reserved": int(item.get("dr", 0)),
        "delta_credits": int(item.get("dc", 0)),
        "delta_quota": int(item.get("dq", 0)),
        "ref": item.get("ref"),
        "model": _model(raw_properties, str(item["meter"])),
        "properties": _scalar_properties(raw_properties),
    }


def _model(properties: dict[str, Any], meter: str) -> str | None:
    """The property `model`; else the model that priced this meter's `from_model` line; else, when every priced
    line of the write names one model, that one (the tokens entry of an event whose cents were priced)."""
    named = properties.get("model")
    if isinstance(named, str):
        return named
    pricing = properties.get("pricing")
    if not isinstance(pricing, dict):
        return None
    own = pricing.get(meter)
    if isinstance(own, dict) and isinstance(own.get("model"), str):
        return str(own["model"])
    models = {line.get("model") for line in pricing.values() if isinstance(line, dict)}
    return str(models.pop()) if len(models) == 1 and None not in models else None


def _scalar_properties(properties: dict[str, Any]) -> dict[str, str]:
    """Scalar properties as text (a map of strings in Parquet); nested values (the pricing record) stay out."""
    scalars: dict[str, str] = {}
    for name, value in properties.items():
        if isinstance(value, bool):
            scalars[name] = "true" if value else "false"
        elif isinstance(value, str | int):
            scalars[name] = str(value)[:PROPERTY_VALUE_LENGTH_MAX]
    return scalars


# --- writers ------------------------------------------------------------------------------------------------


class LocalLakeWriter:
    """NDJSON files under `root`, one per (tenant, day) per batch, each written whole and renamed into place, so a
    reader never sees half a file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, records: Sequence[dict[str, Any]]) -> list[int]:
        """Write every record (or raise); nothing is refused one by one here."""
        by_partition: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            by_partition[(record["tenant_id"], record["day"])].append(record)
        for (tenant_id, day), batch in by_partition.items():
            directory = self.root / f"tenant_id={tenant_id}" / f"day={day}"
            directory.mkdir(parents=True, exist_ok=True)
            name = f"{batch[0]['entry_id']}-{secrets.token_hex(4)}"
            staged = directory / f".{name}.tmp"
            staged.write_text("".join(json.dumps(record, separators=(",", ":")) + "\n" for record in batch))
            os.replace(staged, directory / f"{name}.ndjson")
        return []

    def files(self) -> list[Path]:
        return sorted(self.root.glob("tenant_id=*/day=*/*.ndjson"))


FIREHOSE_RECORDS_PER_CALL_MAX = 500  # PutRecordBatch's limits
FIREHOSE_BYTES_PER_CALL_MAX = 4 * 1024 * 1024


@dataclass(frozen=True)
class FirehoseLakeWriter:
    """Records to a Firehose delivery stream, which converts them to Parquet and partitions them by tenant and day."""

    client: Any
    stream_name: str

    def write(self, records: Sequence[dict[str, Any]]) -> list[int]:
        """Send every record; returns the indexes of those Firehose refused (the caller retries them)."""
        failed: list[int] = []
        for batch in _batches([json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records]):
            answer = self.client.put_record_batch(
                DeliveryStreamName=self.stream_name, Records=[{"Data": data} for _, data in batch]
            )
            if answer.get("FailedPutCount", 0):
                failed += [
                    index
                    for (index, _), result in zip(batch, answer["RequestResponses"], strict=True)
                    if "ErrorCode" in result
                ]
        return failed


def _batches(payloads: Iterable[bytes]) -> Iterable[list[tuple[int, bytes]]]:
    batch: list[tuple[int, bytes]] = []
    size = 0
    for index, data in enumerate(payloads):
        if batch and (len(batch) == FIREHOSE_RECORDS_PER_CALL_MAX or size + len(data) > FIREHOSE_BYTES_PER_CALL_MAX):
            yield batch
            batch, size = [], 0
        batch.append((index, data))
        size += len(data)
    if batch:
        yield batch


LakeWriter = LocalLakeWriter | FirehoseLakeWriter


def open_writer(settings: Settings) -> LakeWriter | None:
    """Firehose when the deployment names a stream, else the local directory; None: no lake here."""
    if settings.lake_stream:
        from quotaflow.store.connect import aws_client

        return FirehoseLakeWriter(aws_client("firehose", settings), settings.lake_stream)
    if settings.lake_dir:
        return LocalLakeWriter(Path(settings.lake_dir))
    return None
