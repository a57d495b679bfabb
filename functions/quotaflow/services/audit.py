"""The ledger as the API shows it, and `verify`: invariants 1 and 4 over stored state."""

from __future__ import annotations

from collections.abc import Iterator

from quotaflow.ledger.periods import NO_PERIOD
from quotaflow.ledger.verify import Problem, check_user, sum_entries
from quotaflow.services.plans import PLANS_PAGES_MAX, SUBSCRIBER_PAGES_MAX
from quotaflow.services.scope import Scope
from quotaflow.services.views import EntryView, LedgerView, ProblemView, VerifyView
from quotaflow.store import items, keys

LEDGER_PAGES_MAX = 1_000  # a million entries per user is the most one verify reads
COUNTER_PAGES_MAX = 20


def ledger(scope: Scope, user_id: str, limit: int, cursor: str | None) -> LedgerView:
    page = scope.store.query(
        keys.user_partition(scope.tenant_id, user_id),
        keys.LEDGER_PREFIX,
        limit=limit,
        cursor=cursor,
        newest_first=True,
    )
    entries = [items.entry_from(item) for item in page.items]
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
        next_cursor=page.cursor,
    )


def verify_user(scope: Scope, user_id: str) -> list[Problem]:
    partition = keys.user_partition(scope.tenant_id, user_id)
    counters = [
        items.counter_from(item)
        for prefix in (keys.COUNTER_CURRENT_PREFIX, keys.COUNTER_CLOSED_PREFIX)
        for item in scope.store.query_all(partition, prefix, pages_max=COUNTER_PAGES_MAX)
    ]
    entries = (
        items.entry_from(item)
        for item in scope.store.query_all(partition, keys.LEDGER_PREFIX, pages_max=LEDGER_PAGES_MAX)
    )
    return check_user(user_id, counters, sum_entries(entries))


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
