"""Reading every shard of a sharded GSI2 bucket (see keys.py): one Query per shard, a few at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from quotaflow.store import keys
from quotaflow.store.table import Item, Store

SHARD_READ_CONCURRENCY = 8  # Queries in flight at once: the sweeper's reads, not a burst on the table
SHARD_PAGES_MAX = 10  # pages per shard per read; the caller's item limit usually stops it first


@dataclass(frozen=True)
class ShardRead:
    items: list[Item]  # shard by shard, in the order the partitions were given
    truncated: bool  # some shard had more than the limit: a later run reads the rest


def read_due(store: Store, partitions: list[str], sk_below: str, items_max: int) -> ShardRead:
    """The index items of `partitions` sorting below `sk_below`, at most `items_max` from each (every partition is
    read, several at once)."""
    if not partitions:
        return ShardRead([], truncated=False)
    workers = min(SHARD_READ_CONCURRENCY, len(partitions))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shard-read") as pool:
        found = list(pool.map(lambda partition: _read_one(store, partition, sk_below, items_max), partitions))
    return ShardRead([item for shard_items, _ in found for item in shard_items], any(more for _, more in found))


def _read_one(store: Store, partition: str, sk_below: str, items_max: int) -> tuple[list[Item], bool]:
    read: list[Item] = []
    cursor: str | None = None
    for _ in range(SHARD_PAGES_MAX):
        page = store.query(
            partition, "", index=keys.GSI_EXPIRY, sk_below=sk_below, limit=items_max - len(read), cursor=cursor
        )
        read.extend(page.items)
        cursor = page.cursor
        if cursor is None or len(read) >= items_max:
            break
    return read, cursor is not None
