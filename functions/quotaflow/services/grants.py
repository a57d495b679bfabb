"""Writing credit grants: the grant item, the meter's credit book rewritten over the version it was read at,
and the rollover grant a period opening makes. Every grant, bought or rolled over, is written here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from quotaflow.ledger.counters import Delta, PeriodOpening
from quotaflow.ledger.credits import CreditBook, Grant, rebooked
from quotaflow.services.scope import Scope
from quotaflow.store import items, keys
from quotaflow.store.table import Item, Store, Transaction

GRANTS_PAGES_MAX = 10  # 10,000 grants per user and meter


@dataclass(frozen=True)
class BookWrites:
    """The credit books a change rewrites, and the counter revs they were computed from."""

    items: list[Item]
    versions: list[int]
    revs: dict[str, int]

    def write(self, tx: Transaction) -> None:
        for item, version in zip(self.items, self.versions, strict=True):
            tx.put(
                f"book:{item['meter']}",
                item,
                condition="attribute_not_exists(pk) OR version = :v",
                values={":v": version},
            )


def grant_item(tenant_id: str, user_id: str, record: Grant, source: dict[str, Any] | None) -> Item:
    item: Item = {
        **keys.grant(tenant_id, user_id, record.meter, record.grant_id),
        "grant_id": record.grant_id,
        "user_id": user_id,
        "meter": record.meter,
        "amount": record.amount,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "status": record.status,
        "removed": 0,
        "source": source or {},
    }
    if record.expires_at:
        identity = f"{tenant_id}#{user_id}#{record.meter}#{record.grant_id}"
        item["gsi2pk"] = keys.grant_expiry_bucket(record.expires_at, identity)
        item["gsi2sk"] = f"{record.expires_at}#{identity}"
    return item


def grant_from(item: Item) -> Grant:
    return Grant(
        item["grant_id"],
        item["meter"],
        item["amount"],
        item["created_at"],
        item.get("expires_at"),
        item["status"],
        item.get("removed", 0),
    )


def meter_grants(store: Store, tenant_id: str, user_id: str, meter: str) -> list[Grant]:
    partition = keys.user_partition(tenant_id, user_id)
    prefix = f"{keys.GRANT_PREFIX}{meter}#"
    return [grant_from(item) for item in store.query_all(partition, prefix, pages_max=GRANTS_PAGES_MAX)]


def rollover_id(meter: str, period_key: str) -> str:
    """One id per (meter, period): a second opening of the same period cannot make a second rollover."""
    digest = hashlib.sha256(f"{meter}|{period_key}".encode()).hexdigest()[:24]
    return f"rol_{digest}"


def add_rollover(tx: Transaction, scope: Scope, user_id: str, book: CreditBook | None, opening: PeriodOpening) -> None:
    """The opening's rollover grant: its item (only if absent) and the meter's book with the grant entered
    whole at the period's start, in the opening's transaction."""
    rollover, current = opening.rollover, opening.current
    if rollover is None:
        return
    record = Grant(
        rollover_id(current.meter, current.period_key),
        current.meter,
        rollover.amount,
        current.period_key,
        rollover.expires_at,
    )
    item = grant_item(scope.tenant_id, user_id, record, {"rollover_into_period": current.period_key})
    tx.put("grant", item, condition="attribute_not_exists(pk)")
    book = book or CreditBook({})
    grants = meter_grants(scope.store, scope.tenant_id, user_id, current.meter) if book.left else []
    before = current.apply(Delta(credits=-rollover.amount))
    rewritten = rebooked(grants, book, before, current, added=record)
    book_item = items.credit_book_item(scope.tenant_id, user_id, current.meter, rewritten)
    BookWrites([book_item], [book.version], {}).write(tx)
