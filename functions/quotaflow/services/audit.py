"""The ledger as the API shows it, and `verify`: invariants 1 and 4 over stored state."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterable, Iterator

from quotaflow.ledger.counters import Counter, pooled
from quotaflow.ledger.entries import LedgerEntry
from quotaflow.ledger.errors import InvalidRequest
from quotaflow.ledger.periods import NO_PERIOD
from quotaflow.ledger.verify import Problem, check_user, sum_entries
from quotaflow.services.plans import PLANS_PAGES_MAX, SUBSCRIBER_PAGES_MAX
from quotaflow.services.scope import Scope
from quotaflow.services.views import EntryView, LedgerView, ProblemView, VerifyView
from quotaflow.store import items, keys
from quotaflow.store.table import Item

LEDGER_PAGES_MAX = 1_000  # a million entries per user is the most one verify reads
COUNTER_PAGES_MAX = 20


def ledger(scope: Scope, user_id: str, limit: int, cursor: str | None) -> LedgerView:
    shards = pool_shards(scope, user_id)
    if shards > 1:
        found, next_cursor = _merged_ledger(scope, user_id, shards, limit, cursor)
    else:
        page = scope.store.query(
            keys.user_partition(scope.tenant_id, user_id),
            keys.LEDGER_PREFIX,
            limit=limit,
            cursor=cursor,
            newest_first=True,
        )
        found, next_cursor = page.items, page.cursor
    entries = [items.entry_from(item) for item in found]
    return LedgerView(
        entries=[
            EntryView(
                entry_id=e.entry_id,
                at=e.at,
                kind=e.kind,
                meter=e.meter,
                period_start=None if e.period_key == NO_PERIOD else e.period_key,
                delta_used=e.delta_used,
                delta_reserved=e.delta_reserved,
                delta_credits=e.delta_credits,
                delta_quota=e.delta_quota,
                ref=e.ref,
                properties=e.properties,
            )
            for e in entries
        ],
        next_cursor=next_cursor,
    )


def pool_shards(scope: Scope, holder: str) -> int:
    """How many shards an account's pool has (1 for a user, who never reads more than its own partition)."""
    if keys.account_of(holder) is None:
        return 1
    item = scope.store.get(keys.subscription(scope.tenant_id, holder))
    return (item["subscription"].get("pool_shards") or 1) if item else 1


def _merged_ledger(
    scope: Scope, holder: str, shards: int, limit: int, cursor: str | None
) -> tuple[list[Item], str | None]:
    """A sharded pool's ledger, newest first: one Query per shard partition, merged by entry id (ids are
    time-ordered). The cursor is the last entry shown; each shard's next page starts below it."""
    below = _ledger_cursor_sk(cursor) if cursor else None
    found: list[Item] = []
    more = False
    for shard in range(shards):
        partition = keys.pool_shard_partition(scope.tenant_id, holder, shard)
        start = scope.store.cursor_at(partition, below) if below else None
        page = scope.store.query(partition, keys.LEDGER_PREFIX, limit=limit, cursor=start, newest_first=True)
        found.extend(page.items)
        more = more or page.cursor is not None
    found.sort(key=lambda item: item["sk"], reverse=True)
    shown = found[:limit]
    more = more or len(found) > limit
    next_cursor = base64.urlsafe_b64encode(shown[-1]["sk"].encode()).decode() if more and shown else None
    return shown, next_cursor


def _ledger_cursor_sk(cursor: str) -> str:
    try:
        sk = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        sk = ""
    if not sk.startswith(keys.LEDGER_PREFIX) or "#" in sk.removeprefix(keys.LEDGER_PREFIX):
        raise InvalidRequest("not a cursor of this ledger", field="cursor")
    return sk


def verify_user(scope: Scope, user_id: str) -> list[Problem]:
    """Invariants 1 and 4 for a holder; a sharded pool's shards of one period are checked each for invariant 1
    and together against its ledger (every shard partition's entries, rebalancing included)."""
    by_period: dict[tuple[str, str], list[Counter]] = {}
    sums: list[Iterable[LedgerEntry]] = []
    for shard in range(pool_shards(scope, user_id)):
        partition = keys.pool_shard_partition(scope.tenant_id, user_id, shard)
        prefixes = (keys.POOL_SHARD_PREFIX,) if shard else (keys.COUNTER_CURRENT_PREFIX, keys.COUNTER_CLOSED_PREFIX)
        for prefix in prefixes:
            for item in scope.store.query_all(partition, prefix, pages_max=COUNTER_PAGES_MAX):
                counter = items.counter_from(item)
                by_period.setdefault((counter.meter, counter.period_key), []).append(counter)
        sums.append(
            items.entry_from(item)
            for item in scope.store.query_all(partition, keys.LEDGER_PREFIX, pages_max=LEDGER_PAGES_MAX)
        )
    counters = [shards[0] if len(shards) == 1 else pooled(shards) for shards in by_period.values()]
    each_shard = [shard for shards in by_period.values() if len(shards) > 1 for shard in shards]
    entries = sum_entries(itertools.chain.from_iterable(sums))
    return check_user(user_id, each_shard, {}, ledger=False) + check_user(user_id, counters, entries)


def tenant_users(scope: Scope) -> Iterator[str]:
    """Every user with stored state: each has a subscription item, indexed under its plan."""
    pk, prefix = keys.plans_prefix(scope.tenant_id)
    seen: set[str] = set()
    plan_ids = {item["plan"]["plan_id"] for item in scope.store.query_all(pk, prefix, pages_max=PLANS_PAGES_MAX)}
    for plan_id in sorted(plan_ids):
        for item in scope.store.query_all(
            keys.plan_subscribers(scope.tenant_id, plan_id),
            "",
            pages_max=SUBSCRIBER_PAGES_MAX,
            index=keys.GSI_PLAN_SUBSCRIBERS,
        ):
            if item["gsi1sk"] not in seen:
                seen.add(item["gsi1sk"])
                yield item["gsi1sk"]


def verify(scope: Scope, user_id: str | None) -> VerifyView:
    users = [user_id] if user_id else list(tenant_users(scope))
    problems = [problem for user in users for problem in verify_user(scope, user)]
    return VerifyView(
        ok=not problems,
        checked=len(users),
        problems=[
            ProblemView(
                user_id=p.user_id,
                meter=p.meter,
                period_start=None if p.period_key == NO_PERIOD else p.period_key,
                message=p.message,
            )
            for p in problems
        ],
    )
