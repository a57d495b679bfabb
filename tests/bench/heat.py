"""The partition-heat model: at what global rate does the hottest partition key reach DynamoDB's 1,000 WCU/s?

Every write of the real store code during sampled reserve+commit cycles on moto is captured by `capacity.Meter`
(a botocore event hook on the store's client): table and each GSI, partition key, write units by AWS's rule. Each
key's *scope* is the narrowest workload entity that covers every sampled cycle that wrote it:

- cycle: one cycle only (a reservation's own partition) — its load does not grow with the global rate;
- user: one user's cycles — it takes 1/users of the workload's cycles;
- tenant: one tenant's cycles (an account's pool, with one account per tenant) — 1/tenants of them;
- all: every tenant's. A hash-sharded bucket (keys.shard_family) spreads its family's units over its shard
  count, so one shard takes 1/shards of them (the long-run share; a uniform hash).

The sample is small and structured so that every scope shows: at least two tenants, two users per tenant and two
cycles per user where the workload has more than one (a tenant key written by one sampled user would pass for a
user key), in steady state (the first cycle of each user is a warm-up, unmetered); the workload's populations turn
the sampled units into the load per global cycle at each key. The ceiling is 1,000 / the hottest key's load."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.bench import capacity

PARTITION_WRITE_UNITS_PER_S = 1_000  # DynamoDB's per-partition (table or index) write ceiling
CYCLES_PER_USER = 3  # metered cycles per sampled user, after one warm-up cycle
HOTTEST_SHOWN = 4  # the hottest key of each scope, hottest first
SHARD_SUFFIX = re.compile(r"#\d+$")
RESERVE_TOKENS, COMMIT_TOKENS, TTL_S = 4_000, 800, 300
POOL_ACCOUNT = "org"
SAMPLE_AT = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)  # one clock: every sampled reservation shares a minute

FamilyOf = Callable[[str], "tuple[str, int] | None"]


@dataclass(frozen=True)
class KeyWrite:
    place: str  # "table" or the index name
    key: str  # the partition key value
    units: int


@dataclass(frozen=True)
class SampleCycle:
    tenant: str
    user: str
    writes: tuple[KeyWrite, ...]


@dataclass(frozen=True)
class Workload:
    """Cycles spread uniformly over `users` users in `tenants` tenants."""

    description: str
    tenants: int
    users: int


@dataclass(frozen=True)
class KeyHeat:
    place: str
    key: str
    scope: str
    units_per_cycle: float  # write units this key takes per cycle of the whole workload


@dataclass
class HeatReport:
    workload: Workload
    sampled_cycles: int
    keys: list[KeyHeat] = field(default_factory=list)  # hottest first; cycle-scoped keys last, at 0

    @property
    def ceiling_cycles_per_s(self) -> float:
        hottest = self.keys[0].units_per_cycle if self.keys else 0.0
        return PARTITION_WRITE_UNITS_PER_S / hottest if hottest else math.inf

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": {"tenants": self.workload.tenants, "users": self.workload.users},
            "sampled_cycles": self.sampled_cycles,
            "ceiling_cycles_per_s": _rounded(self.ceiling_cycles_per_s),
            "hottest": [
                {"place": k.place, "key": k.key, "scope": k.scope, "wcu_per_cycle": round(k.units_per_cycle, 6)}
                for k in self.hottest_by_scope()
            ],
        }

    def hottest_by_scope(self) -> list[KeyHeat]:
        """The hottest key of each scope (one shard stands for its equally loaded siblings), hottest first."""
        seen: dict[str, KeyHeat] = {}
        for heat in self.keys:
            seen.setdefault(heat.scope, heat)
        return list(seen.values())[:HOTTEST_SHOWN]


def _rounded(value: float) -> int | None:
    return None if math.isinf(value) else round(value)


def model(cycles: list[SampleCycle], workload: Workload, family_of: FamilyOf) -> HeatReport:
    """Each key's load per global cycle, from the sampled writes and the workload's populations."""
    sample = _Sample(cycles, family_of)
    heats = [sample.heat(place, key, workload) for place, key in sample.units]
    heats.sort(key=lambda heat: (-heat.units_per_cycle, heat.place, heat.key))
    return HeatReport(workload, len(cycles), heats)


class _Sample:
    """The sampled writes summed by key, who wrote each key, and each sharded family's total."""

    def __init__(self, cycles: list[SampleCycle], family_of: FamilyOf) -> None:
        self.cycles, self.family_of = cycles, family_of
        self.units: dict[tuple[str, str], int] = defaultdict(int)
        self.writers: dict[tuple[str, str], set[int]] = defaultdict(set)
        self.family_units: dict[tuple[str, str], int] = defaultdict(int)
        for index, cycle in enumerate(cycles):
            for write in cycle.writes:
                self.units[(write.place, write.key)] += write.units
                self.writers[(write.place, write.key)].add(index)
                if family_of(write.key) is not None:
                    self.family_units[(write.place, SHARD_SUFFIX.sub("", write.key))] += write.units

    def heat(self, place: str, key: str, workload: Workload) -> KeyHeat:
        family = self.family_of(key)
        if family is not None:
            _, shards = family
            spread = self.family_units[(place, SHARD_SUFFIX.sub("", key))] / len(self.cycles) / shards
            return KeyHeat(place, key, f"all, 1 of {shards} shards", spread)
        written_by = self.writers[(place, key)]
        if len(written_by) == 1:
            return KeyHeat(place, key, "cycle", 0.0)
        users = {(self.cycles[i].tenant, self.cycles[i].user) for i in written_by}
        tenants = {self.cycles[i].tenant for i in written_by}
        units = self.units[(place, key)]
        if len(users) == 1:
            own = sum(1 for c in self.cycles if (c.tenant, c.user) in users)
            return KeyHeat(place, key, "user", units / own / workload.users)
        if len(tenants) == 1:
            own = sum(1 for c in self.cycles if c.tenant in tenants)
            return KeyHeat(place, key, "tenant", units / own / workload.tenants)
        return KeyHeat(place, key, "all", units / len(self.cycles))


@dataclass(frozen=True)
class Scenario:
    name: str
    workload: Workload
    sample_tenants: int
    sample_users_per_tenant: int
    account_pool: bool  # every sampled user is a member of one account per tenant
    pool_shards: int = 1  # the account's pool shard count (services/pools.py)


POOL_SHARDS_SCALED = 16
SCENARIOS = (
    Scenario("table", Workload("10,000 users over 100 tenants, reserve+commit", 100, 10_000), 3, 2, False),
    Scenario("account_pool", Workload("one account of 1,000 members, 1 pool shard", 1, 1_000), 1, 3, True),
    Scenario(
        "account_pool_16_shards",
        Workload(f"one account of 1,000 members, {POOL_SHARDS_SCALED} pool shards", 1, 1_000),
        1,
        3,
        True,
        POOL_SHARDS_SCALED,
    ),
    Scenario("user", Workload("one user", 1, 1), 1, 1, False),
)


def measure() -> dict[str, HeatReport]:
    """Run every scenario's sample on a fresh moto table and model it. Call outside any other mock."""
    import boto3
    from moto import mock_aws

    from quotaflow.store.connect import CLIENT_CONFIG
    from quotaflow.store.table import Store

    reports = {}
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1", config=CLIENT_CONFIG)
        store = Store(client, "quotaflow-heat")
        store.create_table()
        probe = boto3.client("dynamodb", region_name="us-east-1", config=CLIENT_CONFIG)
        meter = capacity.Meter(client, probe, capacity.index_partition_keys(client, store.table_name))
        for scenario in SCENARIOS:
            cycles = _sample(store, meter, scenario)
            reports[scenario.name] = model(cycles, scenario.workload, _families(scenario))
    return reports


def _families(scenario: Scenario) -> FamilyOf:
    """The hash-sharded families of a scenario: the shared GSI2 buckets, and a sharded pool's shard partitions
    (shard k > 0 is `<account partition>#<k>`, shard 0 the account's partition), which a member's writes take by a
    hash of the reservation id."""
    from quotaflow.store import keys

    def family_of(key: str) -> tuple[str, int] | None:
        if scenario.pool_shards > 1 and keys.without_pool_shard(key).endswith(f"#A#{POOL_ACCOUNT}"):
            return "POOL", scenario.pool_shards
        return keys.shard_family(key)

    return family_of


def _sample(store: Any, meter: capacity.Meter, scenario: Scenario) -> list[SampleCycle]:
    from quotaflow.ledger.amounts import Line
    from quotaflow.services import metering
    from quotaflow.services.scope import ContainerCache, Scope

    cache = ContainerCache()  # one warm container
    members = _seed(store, scenario, cache)
    cycles: list[SampleCycle] = []
    for tenant_id, user_id in members:
        scope = Scope(store, tenant_id, SAMPLE_AT, cache)
        for attempt in range(CYCLES_PER_USER + 1):
            name = f"heat:{scenario.name}:{tenant_id}:{user_id}:{attempt}"
            with meter.op(name):
                held = metering.reserve(scope, user_id, [Line(meter="tokens", amount=RESERVE_TOKENS)], TTL_S, None)
                metering.commit(scope, held.reservation_id, [Line(meter="tokens", amount=COMMIT_TOKENS)], None)
            written = meter.ledger.writes.pop(name)
            if attempt:  # the first cycle of a user opens its counters: steady state starts after it
                cycles.append(SampleCycle(tenant_id, user_id, tuple(_key_writes(written))))
    return cycles


def _key_writes(written: list[capacity.Write]) -> list[KeyWrite]:
    found = []
    for write in written:
        found.append(KeyWrite("table", write.partition, write.units))
        found.extend(KeyWrite(index, key, index_units) for index, key, index_units in write.index_writes)
    return found


def _seed(store: Any, scenario: Scenario, cache: Any) -> list[tuple[str, str]]:
    """The sampled tenants and users, subscribed to an unlimited plan (and members of one account if asked)."""
    from quotaflow.ledger.plans import Limit, Plan
    from quotaflow.services import accounts, plans
    from quotaflow.services.scope import Scope

    plan = Plan(
        plan_id="heat",
        name="Heat",
        limits={"tokens": Limit(label="Tokens", quota=10**15, period="none", enforcement="hard")},
    )
    members = []
    for t in range(scenario.sample_tenants):
        tenant_id = f"{scenario.name}-t{t}"
        scope = Scope(store, tenant_id, SAMPLE_AT, cache)
        plans.put_plan(scope, plan)
        account = POOL_ACCOUNT if scenario.account_pool else None
        if account:
            accounts.put_account(scope, account, "Org", plan.plan_id, {}, None, None, pool_shards=scenario.pool_shards)
        for u in range(scenario.sample_users_per_tenant):
            plans.put_subscription(scope, f"u{u}", plan.plan_id, {}, None, account)
            members.append((tenant_id, f"u{u}"))
    return members


def describe(name: str, report: HeatReport) -> list[str]:
    """The table rows for one scenario: its ceiling and hottest keys."""
    ceiling = report.ceiling_cycles_per_s
    shown = "unbounded" if math.isinf(ceiling) else f"{ceiling:,.0f} cycles/s"
    rows = [f"{name}: {report.workload.description} -> hottest key at 1,000 WCU/s at {shown}"]
    for heat in report.hottest_by_scope():
        rows.append(f"    {heat.place:<5} {heat.key:<44} {heat.scope:<20} {heat.units_per_cycle:.4f} WCU/cycle")
    return rows
