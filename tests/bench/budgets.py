"""DynamoDB calls and capacity per operation, through the API function on a warm container (steady state), plus
the costlier paths a production fleet also sees (another container, a new user, an Idempotency-Key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quotaflow.services.scope import ContainerCache
from quotaflow.store.table import Store
from tests.bench import capacity
from tests.bench.harness import (
    METER,
    RESERVE_BODY,
    TABLE_NAME,
    Api,
    bind_runtime,
    new_client,
)
from tests.conftest import dynamodb_calls

BUDGET_USER = "budget-user"
STEADY_OPS = ("reserve", "commit", "release", "event", "usage", "can_use")
STEADY_BUDGET = {"reserve": 1, "commit": 1, "release": 1, "event": 1, "usage": 1, "can_use": 1}
TARGET_OPS = ("reserve", "commit", "usage", "can_use")  # the "= 1 each in steady state"


@dataclass
class Budgets:
    calls: dict[str, list[str]] = field(default_factory=dict)  # op -> DynamoDB operations, in order
    ddb_local_units: dict[str, float] = field(default_factory=dict)  # op -> ConsumedCapacity DynamoDB Local reported
    ledger: capacity.Ledger = field(default_factory=capacity.Ledger)  # op -> items written, AWS's rule

    def count(self, op: str) -> int:
        return len(self.calls[op])

    def wcu_aws(self, op: str) -> int:
        return self.ledger.total_units(op)


def measure(endpoint: str, tenant_key: str) -> Budgets:
    """Each operation once on a warm container, counting calls with tests.conftest.dynamodb_calls."""
    store = Store(new_client(endpoint), TABLE_NAME)
    store.capacity_log = []
    runtime = bind_runtime(store)
    api = Api(tenant_key)
    api.subscribe(BUDGET_USER)
    api.cycle(BUDGET_USER)  # the first write of the period opens the counter; steady state starts after it
    api.call("GET", f"/v1/users/{BUDGET_USER}/usage", expect=200)
    calls = dynamodb_calls(store)
    meter = capacity.Meter(store.client, new_client(endpoint), capacity.index_partition_keys(store.client, TABLE_NAME))
    budgets = Budgets(ledger=meter.ledger)

    def run(op: str, action: Any) -> Any:
        calls.clear()
        store.capacity_log = []
        with meter.op(op):
            result = action()
        budgets.calls[op] = list(calls)
        budgets.ddb_local_units[op] = sum(units for _, units in store.capacity_log or [])
        return result

    user = f"/v1/users/{BUDGET_USER}"
    held = run("reserve", lambda: api.reserve(BUDGET_USER))
    run("commit", lambda: api.commit(held))
    held = api.reserve(BUDGET_USER)
    run("release", lambda: api.call("POST", f"/v1/reservations/{held}/release", expect=200))
    event = {"user_id": BUDGET_USER, "lines": [{"meter": METER, "amount": 800}]}
    run("event", lambda: api.call("POST", "/v1/events", event, expect=201))
    run("usage", lambda: api.call("GET", f"{user}/usage", expect=200))
    run("can_use", lambda: api.call("POST", f"{user}/can-use", {"meter": METER, "amount": 5}, expect=200))
    _costlier_paths(api, store, runtime, run)
    store.capacity_log = None
    return budgets


def _costlier_paths(api: Api, store: Store, warm: Any, run: Any) -> None:
    keyed = {"Idempotency-Key": "bench-reserve-1"}
    body = {"user_id": BUDGET_USER, **RESERVE_BODY}
    held = run("reserve_idempotent", lambda: api.call("POST", "/v1/reservations", body, expect=201, headers=keyed))
    api.commit(held["reservation_id"])
    # A commit served by another warm container: it knows the user's limits but not the reservation.
    held_here = api.reserve(BUDGET_USER)
    bind_runtime(store, cache=ContainerCache(limits=warm.cache.limits), key_cache=warm.key_cache)
    run("commit_other_container", lambda: api.commit(held_here))
    bind_runtime(store)  # a container that has served nothing yet: key, limits and reservation all unknown
    run("reserve_cold_container", lambda: api.reserve(BUDGET_USER))
    bind_runtime(store, cache=warm.cache, key_cache=warm.key_cache)
    api.subscribe("budget-new-user")
    new_event = {"user_id": "budget-new-user", "lines": [{"meter": METER, "amount": 1}]}
    run("event_first_of_user", lambda: api.call("POST", "/v1/events", new_event, expect=201))
