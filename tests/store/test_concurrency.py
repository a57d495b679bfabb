"""Concurrency on DynamoDB Local (AWS's own engine; moto loses conditional updates under threads).

Each test runs its clients as threads sharing one store, each with its own container cache, like separate
Lambda containers: the only coordination between them is DynamoDB's conditions and transactions."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from quotaflow.ledger.errors import InsufficientQuota, QuotaflowError
from quotaflow.ledger.plans import Limit, LimitOverride, Plan
from quotaflow.services import metering, plans
from quotaflow.services.idempotency import IdempotencyClaim, Replay
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import PAYGO, Tenant, lines

pytestmark = pytest.mark.integration
THREADS = 8


def run_parallel(count: int, work: Callable[[int], Any]) -> Tally[str]:
    """Run `work(i)` for i in range(count) on THREADS threads; tally outcomes by result or error class."""

    def outcome(index: int) -> str:
        try:
            work(index)
        except (QuotaflowError, Replay) as error:
            return type(error).__name__
        return "ok"

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return Tally(pool.map(outcome, range(count)))


def containers(store: Store, clock: Clock, count: int = THREADS) -> list[Tenant]:
    return [Tenant(store, clock) for _ in range(count)]


def test_parallel_reserves_admit_exactly_what_fits(ddb_store: Store, clock: Clock) -> None:
    setup = Tenant(ddb_store, clock)
    setup.subscribe("u1", PAYGO, tokens=300)
    pool = containers(ddb_store, clock)
    outcomes = run_parallel(400, lambda i: metering.reserve(pool[i % THREADS].scope, "u1", lines(tokens=1), 600, None))
    assert outcomes == Tally({"ok": 300, "InsufficientQuota": 100})
    counter = setup.counter("u1", "tokens")
    assert (counter["reserved"], counter["remaining"]) == (300, 0)
    setup.assert_verified()


def test_uneven_reserves_never_overshoot_and_refuse_only_when_full(ddb_store: Store, clock: Clock) -> None:
    setup = Tenant(ddb_store, clock)
    setup.subscribe("u1", PAYGO, tokens=1000)
    pool = containers(ddb_store, clock)
    refused_at: list[int] = []

    def reserve(i: int) -> None:
        try:
            metering.reserve(pool[i % THREADS].scope, "u1", lines(tokens=1 + i % 7), 600, None)
        except InsufficientQuota as error:
            refused_at.append(error.details["available"])
            raise

    outcomes = run_parallel(300, reserve)
    counter = setup.counter("u1", "tokens")
    assert counter["reserved"] <= 1000 and counter["reserved"] + counter["remaining"] == 1000
    assert outcomes["ok"] + outcomes["InsufficientQuota"] == 300
    assert all(available < 7 for available in refused_at), "a refusal while 7 or more were free is a false one"
    setup.assert_verified()


def test_parallel_commits_and_releases_each_end_once(ddb_store: Store, clock: Clock) -> None:
    setup = Tenant(ddb_store, clock)
    setup.subscribe("u1", PAYGO, tokens=10_000)
    held = [metering.reserve(setup.scope, "u1", lines(tokens=10), 600, None).reservation_id for _ in range(40)]
    pool = containers(ddb_store, clock)

    def end(i: int) -> None:  # every reservation is ended twice, by commit and by release, concurrently
        rid = held[i // 2]
        if i % 2:
            metering.commit(pool[i % THREADS].scope, rid, lines(tokens=4), None)
        else:
            metering.release_reservation(pool[i % THREADS].scope, rid, None)

    outcomes = run_parallel(80, end)
    assert outcomes["ok"] == 40 and outcomes["ReservationNotPending"] == 40
    counter = setup.counter("u1", "tokens")
    assert counter["reserved"] == 0
    assert counter["used"] % 4 == 0 and counter["used"] + counter["remaining"] == 10_000
    setup.assert_verified()


def test_a_new_default_plan_user_opens_once_under_a_burst(ddb_store: Store, clock: Clock) -> None:
    setup = Tenant(ddb_store, clock)
    plans.put_plan(
        setup.scope,
        Plan(
            plan_id="free",
            name="Free",
            limits={
                "tokens": Limit(quota=100, period="month"),
                "requests": Limit(quota=10, period="day", enforcement="soft"),
            },
        ),
    )
    plans.put_settings(setup.scope, allowed_origins=None, change_default_plan=True, default_plan="free")
    pool = containers(ddb_store, clock)
    outcomes = run_parallel(
        64, lambda i: metering.track(pool[i % THREADS].scope, "newcomer", lines(tokens=1, requests=1), None, None)
    )
    assert outcomes == Tally({"ok": 64})
    counter = setup.counter("newcomer", "tokens")
    assert (counter["quota"], counter["used"], counter["remaining"]) == (100, 64, 36)
    setup.assert_verified()


def test_concurrent_retries_with_one_key_apply_once(ddb_store: Store, clock: Clock) -> None:
    setup = Tenant(ddb_store, clock)
    setup.subscribe("u1", PAYGO, tokens=10_000)
    pool = containers(ddb_store, clock)
    claim = IdempotencyClaim("retry-storm", "same-body", 201)
    outcomes = run_parallel(
        32, lambda i: metering.reserve(pool[i % THREADS].scope, "u1", lines(tokens=100), 600, claim)
    )
    assert outcomes == Tally({"ok": 1, "Replay": 31})
    assert setup.counter("u1", "tokens")["reserved"] == 100
    setup.assert_verified()


def test_quota_changes_racing_reserves_keep_every_invariant(ddb_store: Store, clock: Clock) -> None:
    setup = Tenant(ddb_store, clock)
    setup.subscribe("u1", PAYGO, tokens=500)
    pool = containers(ddb_store, clock)
    quotas = [500 + 10 * step for step in range(1, 9)]

    def work(i: int) -> None:
        scope = pool[i % THREADS].scope
        if i % 10 == 0:
            plans.put_subscription(
                scope, "u1", "plan_paygo", {"tokens": LimitOverride(quota=quotas[i // 10 % 8])}, None
            )
        else:
            metering.reserve(scope, "u1", lines(tokens=3), 600, None)

    outcomes = run_parallel(200, work)
    assert set(outcomes) <= {"ok", "InsufficientQuota"}
    final = plans.get_subscription(setup.scope, "u1").custom_limits["tokens"]["quota"]
    counter = setup.counter("u1", "tokens")
    assert counter["quota"] == final
    assert counter["reserved"] == 3 * (outcomes["ok"] - 20)
    assert counter["reserved"] + counter["remaining"] <= final
    setup.assert_verified()
