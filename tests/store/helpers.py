"""Building blocks for store-level scenarios: a tenant with plans and subscribed users, a team on a sharded pool."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from quotaflow.ledger.amounts import Line
from quotaflow.ledger.errors import InsufficientQuota
from quotaflow.ledger.plans import Limit, LimitOverride, Plan
from quotaflow.services import accounts, audit, balances, metering, plans, pools
from quotaflow.services.scope import ContainerCache, Scope
from quotaflow.services.users import current_limits
from quotaflow.store.table import Store
from tests.conftest import Clock

PAYGO = Plan(
    plan_id="plan_paygo",
    name="Pay as you go",
    limits={
        "tokens": Limit(label="Tokens", quota=0, period="none", enforcement="hard"),
        "requests": Limit(label="Requests", quota=5, period="day", enforcement="soft"),
    },
)
MONTHLY = Plan(
    plan_id="plan_pro",
    name="Pro",
    limits={
        "tokens": Limit(label="Tokens", quota=1000, period="month", enforcement="hard"),
        "images": Limit(label="Images", quota=3, period="month", enforcement="hard"),
    },
)


class Tenant:
    """One tenant's view of a store, read at the clock's current time on every call."""

    def __init__(self, store: Store, clock: Clock, tenant_id: str = "acme") -> None:
        self.store, self.clock, self.tenant_id = store, clock, tenant_id
        self.cache = ContainerCache()

    @property
    def scope(self) -> Scope:
        return Scope(self.store, self.tenant_id, self.clock(), self.cache)

    def subscribe(self, user_id: str, plan: Plan, **custom_quotas: int) -> None:
        plans.put_plan(self.scope, plan)
        overrides = {meter: LimitOverride(quota=quota) for meter, quota in custom_quotas.items()}
        plans.put_subscription(self.scope, user_id, plan.plan_id, overrides, None)

    def counter(self, user_id: str, meter: str) -> dict[str, Any]:
        usage = balances.usage(self.scope, user_id)
        return next(c.model_dump() for c in usage.counters if c.meter == meter)

    def assert_verified(self, user_id: str | None = None) -> None:
        verdict = audit.verify(self.scope, user_id)
        assert verdict.ok, verdict.problems


def lines(**amounts: int) -> list[Line]:
    return [Line(meter=meter, amount=amount) for meter, amount in amounts.items()]


POOL_SEAT = Plan(plan_id="seat", name="Seat", limits={"tokens": Limit(label="Tokens", quota=10_000, period="month")})
TEAM = Plan(plan_id="team", name="Team", limits={"tokens": Limit(label="Tokens", quota=100, period="month")})
SHARDS = 4


def sharded_team(
    store: Store, clock: Clock, quota: int = 100, shards: int = SHARDS, members: int = 4, tenant_id: str = "acme"
) -> Tenant:
    tenant = Tenant(store, clock, tenant_id)
    for plan in (POOL_SEAT, TEAM):
        plans.put_plan(tenant.scope, plan)
    overrides = {"tokens": LimitOverride(quota=quota)}
    accounts.put_account(tenant.scope, "team", "Team", "team", overrides, None, None, pool_shards=shards)
    for index in range(members):
        plans.put_subscription(tenant.scope, f"m{index}", "seat", {}, None, "team")
    return tenant


def shard_items(tenant: Tenant) -> list[dict[str, int] | None]:
    limits = current_limits(tenant.scope, "A#team")
    found = pools.read_shards(tenant.scope, "A#team", {"tokens": limits.pool_shards}, start=0)["tokens"]
    return [
        None if item is None else {f: item[f] for f in ("quota", "used", "reserved", "available")} for item in found
    ]


RACING_CONTAINERS = 8


@dataclass(frozen=True)
class Race:
    admitted: int
    refused: int
    admitted_at_each_refusal: list[int]  # how many had been admitted when each refusal came back


def race_one_token_reserves(store: Store, clock: Clock, members: list[str], reserves: int) -> Race:
    """`reserves` 1-token, 600 s reserves by `members` in turn, from RACING_CONTAINERS threads, each its own
    container (its own cache), all at once."""
    containers = [Tenant(store, clock) for _ in range(RACING_CONTAINERS)]
    lock = threading.Lock()
    admitted = 0
    at_refusal: list[int] = []

    def reserve(index: int) -> bool:
        nonlocal admitted
        scope = containers[index % RACING_CONTAINERS].scope
        try:
            metering.reserve(scope, members[index % len(members)], lines(tokens=1), 600, None)
        except InsufficientQuota:
            with lock:
                at_refusal.append(admitted)
            return False
        with lock:
            admitted += 1
        return True

    with ThreadPoolExecutor(max_workers=RACING_CONTAINERS) as threads:
        outcomes = list(threads.map(reserve, range(reserves)))
    return Race(outcomes.count(True), outcomes.count(False), at_refusal)
