"""A user's limits and current counters: loading them, opening periods, and applying limit changes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from quotaflow.ledger.counters import Counter, PeriodOpening, open_period, retune, shard_limit
from quotaflow.ledger.credits import CreditBook
from quotaflow.ledger.errors import NotFound, Unavailable
from quotaflow.ledger.periods import Anchoring, Period, period_at
from quotaflow.ledger.plans import (
    EffectiveLimit,
    Plan,
    Subscription,
    effective_anchoring,
    effective_features,
    effective_limits,
)
from quotaflow.ledger.pools import check_resharding, check_shardable
from quotaflow.services.grants import add_rollover
from quotaflow.services.scope import Scope, UserLimits, pause_before_retry
from quotaflow.services.writes import add_entries
from quotaflow.store import items, keys
from quotaflow.store.table import Item, Transaction, TransactionCancelled

USER_PAGES_MAX = 2  # subscription + current counters fit one page; a second is the bound, not the norm
RESYNC_ATTEMPTS_MAX = 8


@dataclass(frozen=True)
class StoredCounter:
    counter: Counter
    rev: int  # bumped by every write: opening a period or retuning limits is optimistic on it
    exported: int = 0  # how much of `used` the billing export has sent to Stripe (its watermark)
    exporting: int | None = None  # what the export is sending from that watermark, if a send is under way
    # The newest closed period of this meter the export still has to flush, "" for none; None on a counter opened
    # before the export kept this (any closed period may be pending).
    export_closed: str | None = None
    pool_quota: int | None = None  # a sharded pool's shard 0: the whole allowance, once slices moved off it


@dataclass(frozen=True)
class UserState:
    user_id: str
    subscription_item: Item | None
    limits: UserLimits
    counters: dict[str, StoredCounter]
    books: dict[str, CreditBook] = field(default_factory=dict)  # meters that ever had a credit grant

    @property
    def subscription(self) -> Subscription | None:
        if self.subscription_item is None or self.subscription_item.get("implicit"):
            return None
        return items.subscription_from(self.subscription_item)


def stored_counter(item: Item) -> StoredCounter:
    return StoredCounter(
        items.counter_from(item),
        item["rev"],
        exported=item.get("exported", 0),
        exporting=item.get("exporting"),
        export_closed=item.get("export_closed"),
        pool_quota=item.get("pool_quota"),
    )


def get_plan(scope: Scope, plan_id: str) -> Plan:
    item = scope.store.get(keys.plan(scope.tenant_id, plan_id))
    if item is None:
        raise NotFound(f"plan {plan_id!r} does not exist", plan_id=plan_id)
    return items.plan_from(item)


def default_plan_id(scope: Scope) -> str | None:
    tenant = scope.store.get(keys.tenant(scope.tenant_id))
    return tenant.get("default_plan_id") if tenant else None


def load_user(scope: Scope, user_id: str) -> UserState:
    """One Query of the user's partition: subscription and current counters (plus two reads for a default-plan
    user seen for the first time). Refreshes the limits cache."""
    partition = keys.user_partition(scope.tenant_id, user_id)
    subscription_item, counters, books = None, {}, {}
    for item in scope.store.query_all(partition, keys.USER_CURRENT_PREFIX, pages_max=USER_PAGES_MAX):
        if item["sk"] == keys.SUBSCRIPTION_SK:
            subscription_item = item
        elif item["sk"].startswith(keys.CREDIT_BOOK_PREFIX):
            books[item["meter"]] = items.credit_book_from(item)
        else:
            counters[item["meter"]] = stored_counter(item)
    if subscription_item is not None:
        account_id = subscription_item["subscription"].get("account_id")
        limits = UserLimits(
            plan_id=subscription_item["subscription"]["plan_id"],
            limits=items.limits_from(subscription_item),
            limits_version=subscription_item["limits_version"],
            stored=True,
            above=keys.account_holder(account_id) if account_id else None,
            features=subscription_item.get("features", {}),
            anchoring=items.anchoring_from(subscription_item),
            pool_shards=subscription_item["subscription"].get("pool_shards") or 1,
        )
    else:
        plan_id = default_plan_id(scope)
        if plan_id is None:
            raise NotFound(f"user {user_id!r} has no subscription and the tenant has no default plan", user_id=user_id)
        plan = get_plan(scope, plan_id)
        limits = UserLimits(
            plan_id,
            effective_limits(plan, {}),
            0,
            stored=False,
            features=effective_features(plan, {}),
            anchoring=effective_anchoring(
                plan, Subscription(user_id=user_id, plan_id=plan_id), scope.now, None, scope.now
            ),
        )
    scope.cache.limits.put((scope.tenant_id, user_id), limits)
    return UserState(user_id, subscription_item, limits, counters, books)


def current_limits(scope: Scope, user_id: str) -> UserLimits:
    return scope.cache.limits.get((scope.tenant_id, user_id)) or load_user(scope, user_id).limits


def prepare(scope: Scope, user_id: str, meters: Iterable[str], *, shard: int = 0) -> None:
    """Make the counters of `meters` current (on shard `shard` of a sharded pool): store a default-plan user's
    subscription, open new periods, catch up on limit changes. Each step is optimistic; losing a race to a
    concurrent writer is success."""
    state = load_user(scope, user_id)
    if not state.limits.stored:
        resync(scope, user_id, get_plan(scope, state.limits.plan_id), implicit=True, only_if_missing=True)
        state = load_user(scope, user_id)
    version = state.limits.limits_version
    for meter in meters:
        limit = state.limits.limits.get(meter)
        if limit is None:
            continue  # the caller reports meters the plan lacks
        stored = state.counters.get(meter) if shard == 0 else _stored_shard(scope, user_id, meter, shard)
        period = period_at(limit.period, scope.now, state.limits.anchoring)
        tx = scope.store.transaction()
        if stored is None or stored.counter.period_key != period.key:
            anchoring = state.limits.anchoring
            opened_with = limit if shard == 0 else shard_limit(limit)
            opening = open_period(stored.counter if stored else None, opened_with, period, version, anchoring)
            cut = period.start is not None and period.start == anchoring.since
            ref = "period_cut" if cut else "period_open"
            _add_opening(tx, scope, user_id, stored, opening, ref=ref, shard=shard)
            add_rollover(tx, scope, user_id, state.books.get(meter), opening)
        elif stored.counter.limits_version != version:
            retuned = limit if shard == 0 else limit.model_copy(update={"quota": stored.counter.quota})
            _add_retune(tx, scope, user_id, stored, retuned, version, state.limits.anchoring, shard=shard)
        try:
            scope.store.transact(tx)
        except TransactionCancelled:
            scope.cache.limits.forget((scope.tenant_id, user_id))  # someone else moved first; the caller reloads


def _stored_shard(scope: Scope, holder: str, meter: str, shard: int) -> StoredCounter | None:
    item = scope.store.get(keys.counter_shard(scope.tenant_id, holder, meter, shard))
    return stored_counter(item) if item is not None else None


def _add_opening(
    tx: Transaction,
    scope: Scope,
    user_id: str,
    stored: StoredCounter | None,
    opening: PeriodOpening,
    ref: str,
    shard: int = 0,
) -> None:
    rev = stored.rev + 1 if stored else 0
    item = items.counter_item(scope.tenant_id, user_id, opening.current, rev=rev, shard=shard)
    closed = None
    if opening.closed is not None:
        closed = items.counter_item(scope.tenant_id, user_id, opening.closed, closed=True, shard=shard)
        closed["exported"] = stored.exported if stored else 0  # the export's final flush continues from here
        if stored is not None and stored.exporting is not None:
            closed["exporting"] = stored.exporting  # ... starting with the send it had under way
    marker = _export_closed(stored, closed)
    if marker is not None:
        item["export_closed"] = marker
    if stored is None:
        tx.put("counter:open", item, condition="attribute_not_exists(pk)")
    else:
        tx.put("counter:open", item, condition="rev = :rev", values={":rev": stored.rev})
    if closed is not None:
        tx.put("counter:closed", closed, condition="attribute_not_exists(pk)")
    postings = [replace(posting, shard=shard) for posting in opening.postings]  # in the shard's own ledger
    add_entries(tx, scope, user_id, postings, ref=ref)  # period_cut: the holder's anchoring changed


def _export_closed(stored: StoredCounter | None, closed: Item | None) -> str | None:
    """The new current counter's marker for the billing export: the period closing now if it holds usage not yet
    confirmed sent, else whatever the closing counter was still marked with. The export reads closed counters
    only when the mark is not "" (None: a counter opened before the mark existed; the export marks it once it
    has flushed its closed periods)."""
    if closed is not None and (closed["used"] > closed["exported"] or "exporting" in closed):
        return str(closed["period_key"])
    return stored.export_closed if stored is not None else ""


def _add_retune(
    tx: Transaction,
    scope: Scope,
    user_id: str,
    stored: StoredCounter,
    limit: EffectiveLimit | None,
    version: int,
    anchoring: Anchoring,
    shard: int = 0,
) -> None:
    """Apply new limits to a current counter (a quota change moves `available`); a counter whose period or
    meter no longer matches only learns the new version (and, if its period was cut short, its new end: the
    billing export stamps usage inside the period it belongs to), and its next write opens the right period.
    A sharded pool's quota change lands on shard 0, by the difference from the whole pool's old allowance."""
    key = keys.counter_shard(scope.tenant_id, user_id, stored.counter.meter, shard)
    period = period_at(limit.period, scope.now, anchoring) if limit is not None else None
    current = limit is not None and not limit.retired and period is not None and period.key == stored.counter.period_key
    # Conditioned on what the change was computed from, not on `rev`: reserves and commits running meanwhile
    # only ADD to used/reserved/available, which commutes with a quota change, so they never starve it.
    condition = "period_key = :pk AND limits_version = :old_v AND quota = :old_q"
    guard = {
        ":pk": stored.counter.period_key,
        ":old_v": stored.counter.limits_version,
        ":old_q": stored.counter.quota,
        ":v": version,
    }
    if not current or limit is None:
        tx.update(
            "counter:version",
            key,
            "SET limits_version = :v, period_end = :period_end ADD rev :one",
            condition=condition,
            values={**guard, ":one": 1, ":period_end": _cut_end(stored.counter, period)},
        )
        return
    updated, posting = retune(stored.counter, limit, version, stored.pool_quota)
    quota_delta = posting.delta.quota if posting else 0
    whole = ""
    if stored.pool_quota is not None:  # the pool's allowance moves with the plan's, its slices stay where they are
        whole = ", pool_quota = :pool_quota"
        condition += " AND pool_quota = :old_pool_quota"
        guard.update({":pool_quota": limit.quota, ":old_pool_quota": stored.pool_quota})
    tx.update(
        "counter:retune",
        key,
        "SET label = :label, enforcement = :enforcement, #period = :period, limits_version = :v, alerts = :alerts, "
        f"period_end = :period_end{whole} ADD quota :dq, available :dq, rev :one",
        condition=condition,
        names={"#period": "period"},
        values={
            **guard,
            ":label": updated.label,
            ":enforcement": updated.enforcement,
            ":period": updated.period,
            ":alerts": list(updated.alerts),
            ":period_end": period.end_iso if period else None,
            ":dq": quota_delta,
            ":one": 1,
        },
    )
    if posting:
        add_entries(tx, scope, user_id, [posting], ref="limits_change")


def _cut_end(counter: Counter, following: Period | None) -> str | None:
    """A counter's end once the period `following` is due: where that one starts, if that is sooner."""
    end, start = counter.period_end, following.start_iso if following else None
    if end is not None and start is not None and counter.period_key < start < end:
        return start
    return end


def resync(
    scope: Scope,
    user_id: str,
    plan: Plan,
    *,
    changes: dict[str, Any] | None = None,
    implicit: bool = False,
    only_if_missing: bool = False,
) -> Subscription:
    """Put the user on `plan` and apply the resulting limits to their current counters, in one transaction.

    `changes` replaces those fields of the stored subscription (overrides, customer id, anchor, the account it
    belongs to); what it leaves out is kept. Meters dropped from the plan stay, retired, while their counter still
    holds reservations, so those can still end."""
    for attempt in range(RESYNC_ATTEMPTS_MAX):
        pause_before_retry(attempt)
        state = _load_stored(scope, user_id)
        previous = state.subscription_item
        if previous is not None and only_if_missing:
            return items.subscription_from(previous)
        kept = items.subscription_from(previous).model_dump() if previous is not None else {"user_id": user_id}
        subscription = Subscription.model_validate({**kept, **(changes or {}), "plan_id": plan.plan_id})
        limits = _with_retired(effective_limits(plan, subscription.custom_limits), state)
        features = effective_features(plan, subscription.custom_features)
        started_at = items.started_from(previous, scope.now) if previous is not None else scope.now
        previous_anchoring = items.anchoring_from(previous) if previous is not None else None
        anchoring = effective_anchoring(plan, subscription, started_at, previous_anchoring, scope.now)
        version = state.limits.limits_version + 1
        tx = scope.store.transaction()
        _add_pool_shards(tx, scope, user_id, subscription, limits, state)
        item = items.subscription_item(
            scope.tenant_id,
            subscription,
            limits,
            version,
            implicit=implicit,
            updated_at=scope.now,
            features=features,
            anchoring=anchoring,
            started_at=started_at,
        )
        if previous is None:
            tx.put("subscription", item, condition="attribute_not_exists(pk)")
        else:
            tx.put(
                "subscription",
                item,
                condition="limits_version = :v",
                values={":v": state.limits.limits_version},
            )
        for meter, stored in state.counters.items():
            _add_retune(tx, scope, user_id, stored, limits.get(meter), version, anchoring)
        try:
            scope.store.transact(tx)
        except TransactionCancelled:
            continue
        finally:
            scope.cache.limits.forget((scope.tenant_id, user_id))
        return subscription
    raise Unavailable(f"limits of {user_id!r} kept changing under us; retry shortly")


def _add_pool_shards(
    tx: Transaction,
    scope: Scope,
    holder: str,
    subscription: Subscription,
    limits: dict[str, EffectiveLimit],
    state: UserState,
) -> None:
    """A pool's shard count: refused where a shard could not keep a rule exactly, or where it would shrink; while
    sharded, no credit book may appear meanwhile (a grant racing this change is refused by it or refuses it)."""
    shards = subscription.pool_shards or 1
    check_resharding(state.limits.pool_shards, shards)
    check_shardable(limits, shards, subscription.stripe_customer_id, has_credits=bool(state.books))
    if shards == 1:
        return
    for meter in limits:
        tx.check(
            "pool:no_credits", keys.credit_book(scope.tenant_id, holder, meter), condition="attribute_not_exists(pk)"
        )


def _load_stored(scope: Scope, user_id: str) -> UserState:
    """The user's stored state; a user with no subscription item has no limits yet (version 0)."""
    try:
        state = load_user(scope, user_id)
    except NotFound:
        return UserState(user_id, None, UserLimits("", {}, 0, stored=False), {})
    if state.subscription_item is None:
        return UserState(user_id, None, UserLimits(state.limits.plan_id, {}, 0, stored=False), state.counters)
    return state


def _with_retired(limits: dict[str, EffectiveLimit], state: UserState) -> dict[str, EffectiveLimit]:
    merged = dict(limits)
    for meter, stored in state.counters.items():
        if meter not in merged and stored.counter.reserved > 0:
            counter = stored.counter
            merged[meter] = EffectiveLimit(
                meter=meter,
                label=counter.label,
                quota=counter.quota,
                period=counter.period,
                enforcement=counter.enforcement,
                retired=True,
            )
    return merged
