"""Credit grants as ledger objects: granted, spent after the allowance in burn order, expired or revoked."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from quotaflow.ledger.counters import Delta, Posting
from quotaflow.ledger.credits import CreditBook, Grant, GrantStatus, rebooked, remaining
from quotaflow.ledger.errors import Conflict, InvalidRequest, NotFound
from quotaflow.ledger.model import Model
from quotaflow.ledger.periods import iso, period_at
from quotaflow.services import engine
from quotaflow.services.grants import BookWrites, grant_item, meter_grants
from quotaflow.services.idempotency import IdempotencyClaim
from quotaflow.services.scope import ContainerCache, Scope, UserLimits
from quotaflow.services.users import UserState, load_user
from quotaflow.services.views import GrantView
from quotaflow.store import items, keys, shards
from quotaflow.store.table import Item, Store, Transaction, TransactionCancelled

EXPIRY_LOOKBACK_DAYS = 7  # a sweeper down for up to a week still expires every grant that came due
GRANTS_PER_SWEEP_MAX = 500


class AlreadyApplied(Exception):
    """The marker written with a grant already exists: this grant was made before (a redelivered event)."""


MARKER_TAG = "marker"


class GrantInfo(Model):
    grant_id: str
    meter: str
    amount: int
    remaining: int
    status: GrantStatus
    created_at: str
    expires_at: str | None


def grant(
    scope: Scope,
    user_id: str,
    meter: str,
    amount: int,
    expires_at: datetime | None,
    claim: IdempotencyClaim | None,
    source: dict[str, Any] | None = None,
    marker: Item | None = None,
) -> GrantView:
    """Add `amount` credits to the user's meter, as one grant; a given `expires_at` must lie ahead. A `marker`
    item is written in the same transaction, only if absent: a second grant with the same marker raises
    AlreadyApplied and changes nothing (how a Stripe event is applied at most once)."""
    if expires_at is not None and expires_at <= scope.now:
        raise InvalidRequest("expires_at must be in the future", field="expires_at")
    view = GrantView(grant_id=scope.new_id("grt"))
    record = Grant(view.grant_id, meter, amount, iso(scope.now), iso(expires_at) if expires_at else None)

    def build(limits: UserLimits) -> engine.Change:
        limit = limits.limits.get(meter)
        if limit is None or limit.retired:
            raise InvalidRequest(f"the user's plan has no meter {meter!r}", field="meter")
        if limits.pool_shards > 1:  # its counter is a sum of slices: credits are spent against one allowance
            raise Conflict(f"a pool with {limits.pool_shards} shards takes no credits", field="meter")
        posting = Posting(
            "grant", meter, period_at(limit.period, scope.now, limits.anchoring).key, Delta(credits=amount)
        )
        books = credit_events(scope, user_id, load_user(scope, user_id), [posting], added=record)

        def write_items(tx: Transaction) -> None:
            books.write(tx)
            tx.put("grant", grant_item(scope.tenant_id, user_id, record, source))
            if marker is not None:
                tx.put(MARKER_TAG, marker, condition="attribute_not_exists(pk)")

        return engine.Change([posting], view.grant_id, extra=write_items, revs=books.revs)

    def on_cancel(cancelled: TransactionCancelled) -> None:
        if cancelled.failed(MARKER_TAG):
            raise AlreadyApplied(view.grant_id)

    engine.write(scope, user_id, build, claim=claim, body=view.model_dump(mode="json"), on_cancel=on_cancel)
    return view


def credit_events(
    scope: Scope,
    user_id: str,
    state: UserState,
    postings: list[Posting],
    grants: dict[str, list[Grant]] | None = None,
    *,
    added: Grant | None = None,
    ended: str | None = None,
) -> BookWrites:
    """The books of the meters a credit event touches (a grant, a grant's end, a refund), rewritten from
    `state` (and `grants`, when the caller read them) to what they are after it. Meters that never had a grant
    have no book and need none; a counter that is not the current one (its period turned) writes nothing: the
    change is refused as stale and built again."""
    book_items: list[Item] = []
    versions: list[int] = []
    revs: dict[str, int] = {}
    for posting in postings:
        book = state.books.get(posting.meter)
        if book is None and added is None:
            continue
        stored = state.counters.get(posting.meter)
        if stored is None or stored.counter.period_key != posting.period_key:
            revs[posting.meter] = stored.rev if stored else -1
            continue
        book = book or CreditBook({})
        known = (grants or {}).get(posting.meter)
        if known is None:
            known = meter_grants(scope.store, scope.tenant_id, user_id, posting.meter) if book.left else []
        after = stored.counter.apply(posting.delta)
        rewritten = rebooked(known, book, stored.counter, after, added=added, ended=ended)
        book_items.append(items.credit_book_item(scope.tenant_id, user_id, posting.meter, rewritten))
        versions.append(book.version)
        revs[posting.meter] = stored.rev
    return BookWrites(book_items, versions, revs)


def list_grants(scope: Scope, user_id: str) -> list[GrantInfo]:
    """Every grant of the user, with what is left of each (derived from the meter's credit book)."""
    state = load_user(scope, user_id)
    infos: list[GrantInfo] = []
    for meter, book in sorted(state.books.items()):
        stored = state.counters.get(meter)
        grants = meter_grants(scope.store, scope.tenant_id, user_id, meter)
        left = remaining(grants, book, stored.counter) if stored else {}
        infos += [
            GrantInfo(
                grant_id=g.grant_id,
                meter=g.meter,
                amount=g.amount,
                remaining=left.get(g.grant_id, 0),
                status=g.status,
                created_at=g.created_at,
                expires_at=g.expires_at,
            )
            for g in grants
        ]
    return infos


class _Ended(Exception):
    """The grant had already ended (expired or revoked): nothing to take back."""


def end_grant(scope: Scope, user_id: str, meter: str, grant_id: str, status: GrantStatus, reason: str) -> int | None:
    """Take back what is left of a grant (expiry, or a refunded payment), exactly once: the grant's status flip,
    the counter change, the book and the `grant_expire` entry are one transaction, optimistic on the counter's
    `rev`. Returns the credits removed, or None if the grant had already ended."""
    taken_by_attempt: list[int] = []

    def build(limits: UserLimits) -> engine.Change:
        state = load_user(scope, user_id)
        grants = {g.grant_id: g for g in meter_grants(scope.store, scope.tenant_id, user_id, meter)}
        target = grants.get(grant_id)
        if target is None:
            raise NotFound(f"grant {grant_id!r} does not exist", grant_id=grant_id)
        stored, book = state.counters.get(meter), state.books.get(meter)
        if target.status != "active" or stored is None or book is None:
            raise _Ended(grant_id)
        taken = remaining(grants.values(), book, stored.counter)[grant_id]
        taken_by_attempt.append(taken)
        limit = limits.limits.get(meter)  # the current period's counter takes it; a dropped meter keeps its own
        period_key = period_at(limit.period, scope.now, limits.anchoring).key if limit else stored.counter.period_key
        posting = Posting("grant_expire", meter, period_key, Delta(credits=-taken))
        books = credit_events(scope, user_id, state, [posting], {meter: list(grants.values())}, ended=grant_id)

        def write_items(tx: Transaction) -> None:
            books.write(tx)
            tx.update(
                "grant",
                keys.grant(scope.tenant_id, user_id, meter, grant_id),
                "SET #status = :status, removed = :taken, ended_at = :now REMOVE gsi2pk, gsi2sk",
                condition="#status = :active",
                names={"#status": "status"},
                values={":status": status, ":taken": taken, ":now": iso(scope.now), ":active": "active"},
            )

        return engine.Change([posting], grant_id, {"reason": reason}, extra=write_items, revs=books.revs)

    def on_cancel(cancelled: TransactionCancelled) -> None:
        if cancelled.failed("grant"):
            raise _Ended(grant_id)

    try:
        engine.write(scope, user_id, build, claim=None, body={}, on_cancel=on_cancel)
    except _Ended:
        return None
    return taken_by_attempt[-1]


def expire_due_grants(store: Store, now: datetime, cache: ContainerCache) -> tuple[int, int]:
    """Expire grants whose time has come (sweeper). Returns (grants expired, credits removed)."""
    expired = removed = 0
    for back in range(EXPIRY_LOOKBACK_DAYS, -1, -1):
        day = keys.grant_expiry_day(iso(now - timedelta(days=back)))
        partitions = keys.bucket_shards(day, keys.GRANT_EXPIRY_SHARDS_READ)
        due = shards.read_due(store, partitions, f"{iso(now)}#~", GRANTS_PER_SWEEP_MAX).items
        for item in sorted(due, key=lambda found: found["gsi2sk"])[:GRANTS_PER_SWEEP_MAX]:
            tenant_id = item["gsi2sk"].split("#")[1]
            taken = end_grant(
                Scope(store, tenant_id, now, cache),
                item["user_id"],
                item["meter"],
                item["grant_id"],
                "expired",
                "expired",
            )
            if taken is not None:
                expired += 1
                removed += taken
    return expired, removed
