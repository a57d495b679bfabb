"""Balances as users, apps and browsers read them: usage per level, the effective remaining, and can-use.

Reads only: a counter whose period has ended is shown as the next period will open, without writing."""

from __future__ import annotations

from dataclasses import dataclass

from quotaflow.ledger.amounts import Line
from quotaflow.ledger.counters import Counter, open_period
from quotaflow.ledger.errors import InvalidRequest
from quotaflow.ledger.periods import NO_PERIOD, period_at
from quotaflow.ledger.plans import EffectiveLimit
from quotaflow.services import levels, pools
from quotaflow.services.scope import Scope, UserLimits
from quotaflow.services.users import load_user
from quotaflow.services.views import (
    AccountCountersView,
    AccountUsageView,
    CanUseLinesView,
    CanUseView,
    CounterView,
    EffectiveView,
    MeterAllowance,
    UsageView,
)
from quotaflow.store import keys


@dataclass(frozen=True)
class Balance:
    """One holder's current counters, with the limits they obey."""

    holder: str
    limits: UserLimits
    counters: dict[str, Counter]

    @property
    def label(self) -> str:
        account_id = keys.account_of(self.holder)
        return f"account:{account_id}" if account_id else "user"


def current_counters(scope: Scope, holder: str) -> Balance:
    """Each meter's counter as of now, from one Query (and one BatchGetItem for a sharded pool's other shards)."""
    state = load_user(scope, holder)
    counters: dict[str, Counter] = {}
    for meter, limit in state.limits.limits.items():
        if limit.retired:
            continue
        stored = state.counters.get(meter)
        period = period_at(limit.period, scope.now, state.limits.anchoring)
        if stored is not None and stored.counter.period_key == period.key:
            counters[meter] = stored.counter
        else:
            previous = stored.counter if stored else None
            counters[meter] = open_period(
                previous, limit, period, state.limits.limits_version, state.limits.anchoring
            ).current
    return Balance(holder, state.limits, pools.whole_pool(scope, holder, state.limits, counters))


def _chain(scope: Scope, user_id: str) -> list[Balance]:
    """The user's balance, then each account's above it (one Query each)."""
    user = current_counters(scope, user_id)
    return [user] + [current_counters(scope, level.holder) for level in levels.above(scope, user.limits)]


def _counter_views(balance: Balance) -> list[CounterView]:
    return [counter_view(balance.limits.limits[m], c) for m, c in balance.counters.items()]


def effective(chain: list[Balance]) -> dict[str, EffectiveView]:
    """Per meter, the least remaining over the levels that enforce it hard (the user's own when none does)."""
    meters = sorted({meter for balance in chain for meter in balance.counters})
    views: dict[str, EffectiveView] = {}
    for meter in meters:
        holding = [b for b in chain if meter in b.counters]
        hard = [b for b in holding if b.counters[meter].enforcement == "hard"] or holding[:1]
        tightest = min(hard, key=lambda b: b.counters[meter].remaining)
        views[meter] = EffectiveView(remaining=tightest.counters[meter].remaining, limited_by=tightest.label)
    return views


def usage(scope: Scope, user_id: str) -> UsageView:
    chain = _chain(scope, user_id)
    user = chain[0]
    return UsageView(
        user_id=user_id,
        plan_id=user.limits.plan_id,
        counters=_counter_views(user),
        accounts=[
            AccountCountersView(account_id=keys.account_of(b.holder) or b.holder, counters=_counter_views(b))
            for b in chain[1:]
        ],
        effective=effective(chain),
    )


def account_usage(scope: Scope, account_id: str) -> AccountUsageView:
    balance = current_counters(scope, keys.account_holder(account_id))
    return AccountUsageView(account_id=account_id, plan_id=balance.limits.plan_id, counters=_counter_views(balance))


def counter_view(limit: EffectiveLimit, counter: Counter) -> CounterView:
    return CounterView(
        meter=counter.meter,
        label=limit.label,
        period=limit.period,
        period_start=None if counter.period_key == NO_PERIOD else counter.period_key,
        period_end=counter.period_end,
        enforcement=counter.enforcement,
        quota=counter.quota,
        credits=counter.credits,
        used=counter.used,
        reserved=counter.reserved,
        remaining=counter.remaining,
    )


def can_use(scope: Scope, user_id: str, lines: list[Line], field: str) -> list[MeterAllowance]:
    """Whether each amount fits now at every level: `amount <= remaining` where a level enforces the meter hard,
    always otherwise. Consumes nothing."""
    chain = _chain(scope, user_id)
    room = effective(chain)
    allowances = []
    for index, line in enumerate(lines):
        if line.meter not in room:
            where = field if field == "meter" else f"{field}[{index}].meter"
            raise InvalidRequest(f"the user's plan has no meter {line.meter!r}", field=where)
        hard = any(b.counters[line.meter].enforcement == "hard" for b in chain if line.meter in b.counters)
        remaining = room[line.meter].remaining
        allowed = not hard or line.amount <= remaining
        allowances.append(MeterAllowance(meter=line.meter, allowed=allowed, remaining=remaining))
    return allowances


def can_use_one(scope: Scope, user_id: str, line: Line) -> CanUseView:
    (allowance,) = can_use(scope, user_id, [line], "meter")
    return CanUseView(allowed=allowance.allowed, remaining=allowance.remaining)


def can_use_lines(scope: Scope, user_id: str, lines: list[Line]) -> CanUseLinesView:
    meters = can_use(scope, user_id, lines, "lines")
    return CanUseLinesView(allowed=all(m.allowed for m in meters), meters=meters)
