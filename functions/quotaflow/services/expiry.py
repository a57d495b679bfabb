"""The sweeper and the TTL reaper: the two background layers of reservation expiry. Both end a reservation
through the same refund path as a lazy reclaim (`metering.expire` / `metering.reap_deleted`), each guarded
by a conditional write, so whichever layer comes first wins and the others do nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from quotaflow.ledger.model import Model
from quotaflow.ledger.periods import iso
from quotaflow.services import credits, metering
from quotaflow.services.scope import ContainerCache, Scope
from quotaflow.store import items, keys, shards
from quotaflow.store.table import Item, Store

SWEEP_LOOKBACK_MINUTES = 90  # longer than the TTL grace: whatever TTL deletes was past the sweeper's reach
# A run reads every minute since the last complete run (its watermark: the current minute it read), so runs a
# minute apart read 2 minutes x EXPIRY_SHARDS_READ (128) = 256 Queries, and a gap of any length up to the lookback
# is caught up at once. A run cut short leaves the watermark where it was; runs never overlap (the function's
# timeout is shorter than its schedule). With no watermark (a table from before it) a run reads the whole lookback.
SWEEP_RESERVATIONS_PER_RUN_MAX = 1_000
SWEEP_SHARD_ITEMS_MAX = 100  # read from one shard per minute per run: 128 x 100 items in memory at most


class SweepReport(Model):
    now: str
    buckets_read: int  # shard partitions queried
    expired: int
    already_ended: int
    oldest_overdue_age_seconds: int
    grants_expired: int = 0
    credits_removed: int = 0
    more: bool  # the per-run limit stopped this run; the next one continues


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def overdue_buckets(now: datetime, watermark: str | None) -> list[str]:
    """The expiry minutes this run reads (each in EXPIRY_SHARDS_READ shards), oldest first: from the last
    complete run's current minute (`watermark`), at most the lookback back, to now."""
    current = _minute(now)
    minutes = [
        keys.expiry_minute(iso(current - timedelta(minutes=back))) for back in range(SWEEP_LOOKBACK_MINUTES, -1, -1)
    ]
    since = minutes[0] if watermark is None else min(watermark, minutes[-2])  # the previous minute at least
    return [minute for minute in minutes if minute >= since]


def sweep(store: Store, now: datetime, cache: ContainerCache) -> SweepReport:
    """Expire due credit grants, then every overdue reservation in the lookback window, oldest first (bounded)."""
    grants_expired, credits_removed = credits.expire_due_grants(store, now, cache)
    report = _sweep_reservations(store, now, cache)
    return report.model_copy(update={"grants_expired": grants_expired, "credits_removed": credits_removed})


def _sweep_reservations(store: Store, now: datetime, cache: ContainerCache) -> SweepReport:
    report = SweepReport(
        now=iso(now), buckets_read=0, expired=0, already_ended=0, oldest_overdue_age_seconds=0, more=False
    )
    overdue_below = f"{iso(now)}#~"  # gsi2sk = <expires_at>#<tenant>#<id>: everything expiring at or before now
    watermark = store.get(keys.SWEEP_WATERMARK)
    minutes = overdue_buckets(now, watermark["swept_to"] if watermark else None)
    for minute in minutes:
        room = SWEEP_RESERVATIONS_PER_RUN_MAX - report.expired - report.already_ended
        if room <= 0:
            report.more = True
            return report
        partitions = keys.bucket_shards(minute, keys.EXPIRY_SHARDS_READ)
        report.buckets_read += len(partitions)
        read = shards.read_due(store, partitions, overdue_below, min(room, SWEEP_SHARD_ITEMS_MAX))
        report.more = report.more or read.truncated or len(read.items) > room
        for item in sorted(read.items, key=lambda found: found["gsi2sk"])[:room]:
            reservation = items.reservation_from(item)
            age_s = int((now - reservation.expires_at).total_seconds())
            report.oldest_overdue_age_seconds = max(report.oldest_overdue_age_seconds, age_s)
            if metering.expire(Scope(store, _tenant_of(item), now, cache), reservation):
                report.expired += 1
            else:
                report.already_ended += 1
    if not report.more:
        _advance_watermark(store, minutes[-1])
    return report


def _advance_watermark(store: Store, minute: str) -> None:
    """The next run starts at this run's current minute: what expires later in it is not overdue yet."""
    store.put({**keys.SWEEP_WATERMARK, "swept_to": minute})


def _tenant_of(reservation_item: Item) -> str:
    """T#<tenant>#R#<id> -> tenant (ids never contain '#')."""
    pk: str = reservation_item["pk"]
    return pk.split("#")[1]


@dataclass(frozen=True)
class ReapOutcome:
    reservation_id: str
    refunded: bool


def reap(store: Store, old_image: Item, now: datetime, cache: ContainerCache) -> ReapOutcome | None:
    """A reservation item that DynamoDB TTL deleted: refund what it still held. None if it was not pending
    (committed, released or already expired items are simply cleaned up)."""
    if old_image.get("sk") != "RSV" or old_image.get("status") != "pending":
        return None
    reservation = items.reservation_from(old_image)
    refunded = metering.reap_deleted(Scope(store, _tenant_of(old_image), now, cache), reservation)
    return ReapOutcome(reservation.reservation_id, refunded)
