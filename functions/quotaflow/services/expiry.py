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
from quotaflow.store import items, keys
from quotaflow.store.table import Item, Store

SWEEP_LOOKBACK_MINUTES = 90  # longer than the TTL grace: whatever TTL deletes was past the sweeper's reach
SWEEP_RESERVATIONS_PER_RUN_MAX = 1_000
SWEEP_PAGE_MAX = 100


class SweepReport(Model):
    now: str
    buckets_read: int
    expired: int
    already_ended: int
    oldest_overdue_age_seconds: int
    grants_expired: int = 0
    credits_removed: int = 0
    more: bool  # the per-run limit stopped this run; the next one continues


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def overdue_buckets(now: datetime) -> list[str]:
    """The expiry-index partitions that may hold overdue reservations, oldest first."""
    current = _minute(now)
    minutes = [current - timedelta(minutes=back) for back in range(SWEEP_LOOKBACK_MINUTES, -1, -1)]
    return [keys.expiry_bucket(iso(minute)) for minute in minutes]


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
    for bucket in overdue_buckets(now):
        report.buckets_read += 1
        cursor: str | None = None
        while True:
            page = store.query(
                bucket, "", index=keys.GSI_EXPIRY, sk_below=overdue_below, limit=SWEEP_PAGE_MAX, cursor=cursor
            )
            for item in page.items:
                if report.expired + report.already_ended >= SWEEP_RESERVATIONS_PER_RUN_MAX:
                    report.more = True
                    return report
                reservation = items.reservation_from(item)
                age_s = int((now - reservation.expires_at).total_seconds())
                report.oldest_overdue_age_seconds = max(report.oldest_overdue_age_seconds, age_s)
                if metering.expire(Scope(store, _tenant_of(item), now, cache), reservation):
                    report.expired += 1
                else:
                    report.already_ended += 1
            cursor = page.cursor
            if cursor is None:
                break
    return report


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
