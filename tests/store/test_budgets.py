"""DynamoDB calls per operation: deterministic, so a regression fails here (steady state = warm container)."""

from __future__ import annotations

import pytest

from quotaflow.ledger.errors import IdempotencyKeyReused
from quotaflow.services import balances, metering
from quotaflow.services.idempotency import IdempotencyClaim, Replay
from quotaflow.store.table import Store
from tests.conftest import Clock, dynamodb_calls
from tests.store.helpers import PAYGO, Tenant, lines, shard_items, sharded_team


@pytest.fixture
def warm(store: Store, clock: Clock) -> Tenant:
    """A tenant whose user has already been served once on this container."""
    tenant = Tenant(store, clock)
    tenant.subscribe("u1", PAYGO, tokens=100_000)
    held = metering.reserve(tenant.scope, "u1", lines(tokens=1, requests=1), 60, None)
    metering.commit(tenant.scope, held.reservation_id, [], None)
    return tenant


def test_steady_state_call_budget(warm: Tenant) -> None:
    calls = dynamodb_calls(warm.store)
    held = metering.reserve(warm.scope, "u1", lines(tokens=4000), 300, None)
    assert calls == ["TransactWriteItems"], "reserve"
    calls.clear()
    metering.commit(warm.scope, held.reservation_id, lines(tokens=800), None)
    assert calls == ["TransactWriteItems"], "commit"
    calls.clear()
    held = metering.reserve(warm.scope, "u1", lines(tokens=1), 300, None)
    calls.clear()
    metering.release_reservation(warm.scope, held.reservation_id, None)
    assert calls == ["TransactWriteItems"], "release"
    calls.clear()
    metering.track(warm.scope, "u1", lines(tokens=5, requests=1), None, None)
    assert calls == ["TransactWriteItems"], "event"
    calls.clear()
    balances.usage(warm.scope, "u1")
    assert calls == ["Query"], "usage"
    calls.clear()
    balances.can_use_one(warm.scope, "u1", lines(tokens=5)[0])
    assert calls == ["Query"], "can-use"


def another_container(warm: Tenant) -> Tenant:
    """A warm container that knows the user's limits but never saw the reservation."""
    other = Tenant(warm.store, warm.clock)
    other.cache.limits = warm.cache.limits
    return other


def test_commit_and_release_from_another_container_are_one_call(warm: Tenant) -> None:
    committed = metering.reserve(warm.scope, "u1", lines(tokens=10), 300, None)
    released = metering.reserve(warm.scope, "u1", lines(tokens=20, requests=1), 300, None)
    calls = dynamodb_calls(warm.store)
    metering.commit(another_container(warm).scope, committed.reservation_id, lines(tokens=3), None)
    assert calls == ["TransactWriteItems"], "commit"
    calls.clear()
    metering.release_reservation(another_container(warm).scope, released.reservation_id, None)
    assert calls == ["TransactWriteItems"], "release"
    assert (warm.counter("u1", "tokens")["used"], warm.counter("u1", "tokens")["reserved"]) == (3, 0)
    warm.assert_verified()


def test_a_hold_whose_id_cannot_carry_it_is_read_once(warm: Tenant) -> None:
    long_user = "u" * 100  # with a line, longer than an id may be: a plain id, read before it ends
    warm.subscribe(long_user, PAYGO, tokens=100)
    held = metering.reserve(warm.scope, long_user, lines(tokens=10), 300, None)
    assert held.reservation_id.startswith("rsv_") and len(held.reservation_id) == 28
    calls = dynamodb_calls(warm.store)
    metering.commit(another_container(warm).scope, held.reservation_id, lines(tokens=3), None)
    assert calls == ["GetItem", "TransactWriteItems"]


def test_first_write_of_a_new_user_opens_the_counter_in_bounded_calls(store: Store, clock: Clock) -> None:
    tenant = Tenant(store, clock)
    tenant.subscribe("u9", PAYGO)
    tenant.cache.limits.forget(("acme", "u9"))
    calls = dynamodb_calls(store)
    metering.track(tenant.scope, "u9", lines(requests=1), None, None)
    assert calls == ["Query", "TransactWriteItems", "Query", "TransactWriteItems", "TransactWriteItems"]


def test_a_retry_with_the_same_key_replays_and_changes_nothing(warm: Tenant) -> None:
    claim = IdempotencyClaim("key-1", "fingerprint-a", 201)
    first = metering.reserve(warm.scope, "u1", lines(tokens=4000), 300, claim)
    with pytest.raises(Replay) as replay:
        metering.reserve(warm.scope, "u1", lines(tokens=4000), 300, claim)
    assert replay.value.status == 201
    assert replay.value.body == first.model_dump(mode="json")
    assert warm.counter("u1", "tokens")["reserved"] == 4000
    with pytest.raises(IdempotencyKeyReused):
        metering.reserve(warm.scope, "u1", lines(tokens=1), 300, IdempotencyClaim("key-1", "fingerprint-b", 201))
    assert warm.counter("u1", "tokens")["reserved"] == 4000
    warm.assert_verified()


def test_idempotency_keys_are_scoped_per_tenant(store: Store, clock: Clock, warm: Tenant) -> None:
    other = Tenant(store, clock, tenant_id="globex")
    other.subscribe("u1", PAYGO, tokens=10)
    claim = IdempotencyClaim("shared-key", "fp", 201)
    metering.track(warm.scope, "u1", lines(tokens=1), None, claim)
    metering.track(other.scope, "u1", lines(tokens=1), None, claim)  # not a replay: another tenant
    assert other.counter("u1", "tokens")["used"] == 1


def test_a_sharded_pool_members_writes_are_one_call_when_its_shard_has_room(store: Store, clock: Clock) -> None:
    """A member of a 4-shard pool: reserve and commit (from another container too) stay 1 call once the chosen
    shard has room; the pool's usage is its Query plus one BatchGetItem for the other shards."""
    tenant = sharded_team(store, clock, quota=10_000)
    while any(item is None or item["available"] < 100 for item in shard_items(tenant)):
        metering.track(tenant.scope, "m0", lines(tokens=1), None, None)  # rebalancing spreads the room
    calls = dynamodb_calls(store)
    held = metering.reserve(tenant.scope, "m0", lines(tokens=10), 60, None)
    assert calls == ["TransactWriteItems"], "reserve"
    calls.clear()
    metering.commit(another_container(tenant).scope, held.reservation_id, lines(tokens=5), None)
    assert calls == ["TransactWriteItems"], "commit from another container"
    calls.clear()
    balances.account_usage(tenant.scope, "team")
    assert calls == ["Query", "BatchGetItem"], "the pool's usage: shard 0 with the account, the others in one batch"
