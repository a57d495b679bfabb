"""Sharded GSI2 buckets (moto and DynamoDB Local): reservations of one minute, grants of one day and alerts due
land in many shards; one sweep (or one redelivery run) reads every shard and ends each exactly once, and a change
of shard count strands nothing.

A shard-count change is a new deployment: the tests set keys.EXPIRY_SHARDS / EXPIRY_SHARDS_READ as that
deployment's constants would be, then run the real writers and the real sweeper."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from quotaflow.ledger.alerts import THRESHOLD_CROSSED, Alert
from quotaflow.services import alerts, audit, credits, expiry, metering
from quotaflow.store import keys
from quotaflow.store.secret_box import LocalSecretBox
from quotaflow.store.table import Item, Store
from tests.conftest import Clock
from tests.store.helpers import PAYGO, Tenant, lines
from tests.support.webhook_receiver import SECRET, Receiver

pytestmark = pytest.mark.production_shards
RESERVATIONS_PER_DEPLOYMENT = 24


@pytest.fixture
def acme(store: Store, clock: Clock) -> Tenant:
    tenant = Tenant(store, clock)
    tenant.subscribe("u1", PAYGO, tokens=100_000)
    return tenant


def reserve_many(tenant: Tenant, count: int) -> list[str]:
    return [metering.reserve(tenant.scope, "u1", lines(tokens=10), 60, None).reservation_id for _ in range(count)]


def expiry_partitions(tenant: Tenant, reservation_ids: list[str]) -> set[str]:
    found = set()
    for reservation_id in reservation_ids:
        item = tenant.store.get(keys.reservation(tenant.tenant_id, reservation_id))
        assert item is not None
        found.add(item["gsi2pk"])
    return found


def expire_entries(tenant: Tenant) -> int:
    return sum(e.kind == "expire" for e in audit.ledger(tenant.scope, "u1", 200, None).entries)


def deploy(monkeypatch: pytest.MonkeyPatch, written: int, read: int, family: str = "EXPIRY") -> None:
    monkeypatch.setattr(keys, f"{family}_SHARDS", written)
    monkeypatch.setattr(keys, f"{family}_SHARDS_READ", read)


def items_with(store: Store, sk: str, prefix: bool = False) -> list[Item]:
    condition = "begins_with(sk, :sk)" if prefix else "sk = :sk"
    raw = store.client.scan(
        TableName=store.table_name, FilterExpression=condition, ExpressionAttributeValues={":sk": {"S": sk}}
    )
    return [{name: next(iter(value.values())) for name, value in item.items()} for item in raw["Items"]]


def test_one_sweep_expires_every_shard_of_a_minute_exactly_once(acme: Tenant, clock: Clock) -> None:
    held = reserve_many(acme, RESERVATIONS_PER_DEPLOYMENT)
    partitions = expiry_partitions(acme, held)
    minute = keys.expiry_minute(metering.get_reservation(acme.scope, held[0]).expires_at.isoformat())
    assert len(partitions) >= RESERVATIONS_PER_DEPLOYMENT // 2, "one minute's reservations spread over shards"
    assert partitions <= set(keys.bucket_shards(minute, keys.EXPIRY_SHARDS))
    clock.advance(seconds=61)
    watermark = acme.store.get(keys.SWEEP_WATERMARK)
    assert watermark is not None, "a new table starts its sweeps at its creation"
    report = expiry.sweep(acme.store, clock(), acme.cache)
    assert (report.expired, report.already_ended, report.more) == (RESERVATIONS_PER_DEPLOYMENT, 0, False)
    minutes = expiry.overdue_buckets(clock(), watermark["swept_to"])
    assert report.buckets_read == len(minutes) * keys.EXPIRY_SHARDS_READ
    assert expiry.sweep(acme.store, clock(), acme.cache).expired == 0, "a second run finds nothing"
    assert [metering.get_reservation(acme.scope, r).status for r in held] == ["expired"] * len(held)
    assert acme.counter("u1", "tokens")["reserved"] == 0
    assert expire_entries(acme) == RESERVATIONS_PER_DEPLOYMENT
    acme.assert_verified()


@pytest.mark.parametrize(("old", "new"), [(1, 16), (16, 4)], ids=["unsharded-to-16", "16-to-4"])
def test_a_shard_count_change_strands_no_reservation(
    acme: Tenant, clock: Clock, monkeypatch: pytest.MonkeyPatch, old: int, new: int
) -> None:
    deploy(monkeypatch, written=old, read=old)
    before = reserve_many(acme, RESERVATIONS_PER_DEPLOYMENT)
    deploy(monkeypatch, written=new, read=max(old, new))  # the transition rule of keys.py
    after = reserve_many(acme, RESERVATIONS_PER_DEPLOYMENT)
    minute = keys.expiry_minute(metering.get_reservation(acme.scope, before[0]).expires_at.isoformat())
    assert expiry_partitions(acme, before) <= set(keys.bucket_shards(minute, old))
    assert expiry_partitions(acme, after) <= set(keys.bucket_shards(minute, new))
    outside_new = expiry_partitions(acme, before + after) - set(keys.bucket_shards(minute, new))
    assert old == 1 or outside_new, "some items sit where a reader of only the new count would never look"
    if old == 1:
        assert expiry_partitions(acme, before) == {minute}, "the unsharded key is shard 0 of the sharded layout"
    clock.advance(seconds=61)
    report = expiry.sweep(acme.store, clock(), acme.cache)
    assert (report.expired, report.already_ended) == (2 * RESERVATIONS_PER_DEPLOYMENT, 0)
    assert acme.counter("u1", "tokens")["reserved"] == 0
    assert expire_entries(acme) == 2 * RESERVATIONS_PER_DEPLOYMENT
    acme.assert_verified()


def test_a_shard_with_more_than_a_run_reads_is_finished_by_the_next_run(
    acme: Tenant, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(monkeypatch, written=1, read=1)
    monkeypatch.setattr(expiry, "SWEEP_SHARD_ITEMS_MAX", 3)
    held = reserve_many(acme, 5)
    clock.advance(seconds=61)
    first = expiry.sweep(acme.store, clock(), acme.cache)
    assert (first.expired, first.more) == (3, True)
    second = expiry.sweep(acme.store, clock(), acme.cache)
    assert (second.expired, second.more) == (2, False)
    assert [metering.get_reservation(acme.scope, r).status for r in held] == ["expired"] * 5
    acme.assert_verified()


@pytest.mark.unit
def test_shards_are_stable_and_cover_the_range() -> None:
    assert keys.shard_of("rsv_a", 128) == keys.shard_of("rsv_a", 128)  # not Python's per-process salted hash
    assert {keys.shard_of(f"rsv_{n}", 16) for n in range(400)} == set(range(16))
    assert keys.bucket_shards("EXP#2026-11-27T10:01", 3) == [
        "EXP#2026-11-27T10:01",
        "EXP#2026-11-27T10:01#1",
        "EXP#2026-11-27T10:01#2",
    ]
    with pytest.raises(ValueError, match="at least one shard"):
        keys.shard_of("rsv_a", 0)


@pytest.mark.unit
def test_a_sweep_reads_every_minute_since_the_last_complete_run(clock: Clock) -> None:
    at = "2026-11-27T"  # clock: 10:00
    minutes = expiry.overdue_buckets(clock(), keys.expiry_minute(f"{at}09:59"))  # runs a minute apart
    assert minutes == [keys.expiry_minute(f"{at}09:59"), keys.expiry_minute(f"{at}10:00")]
    after_a_gap = expiry.overdue_buckets(clock(), keys.expiry_minute(f"{at}09:50"))
    assert after_a_gap == [keys.expiry_minute(f"{at}09:{m}") for m in range(50, 60)] + minutes[-1:]
    after_a_long_gap = expiry.overdue_buckets(clock(), keys.expiry_minute("2026-11-26T10:00"))
    assert (len(after_a_long_gap), after_a_long_gap[0]) == (91, keys.expiry_minute(f"{at}08:30"))
    assert expiry.overdue_buckets(clock(), None) == after_a_long_gap, "a table from before watermarks: all of it"
    ahead = expiry.overdue_buckets(clock(), keys.expiry_minute(f"{at}10:05"))
    assert ahead == minutes, "a watermark ahead of this run's clock still leaves the previous minute read"


GRANTED_USERS = 12


def test_grants_of_one_day_over_every_shard_and_two_shard_counts_expire_in_one_run(
    acme: Tenant, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    expires = clock() + timedelta(days=1)
    deploy(monkeypatch, written=1, read=1, family="GRANT_EXPIRY")  # the unsharded layout
    for user in range(GRANTED_USERS // 2):
        acme.subscribe(f"g{user}", PAYGO, tokens=1000)
        credits.grant(acme.scope, f"g{user}", "tokens", 100, expires, None)
    deploy(monkeypatch, written=16, read=16, family="GRANT_EXPIRY")
    for user in range(GRANTED_USERS // 2, GRANTED_USERS):
        acme.subscribe(f"g{user}", PAYGO, tokens=1000)
        credits.grant(acme.scope, f"g{user}", "tokens", 100, expires, None)
    buckets = {item["gsi2pk"] for item in items_with(acme.store, keys.GRANT_PREFIX, prefix=True)}
    assert keys.grant_expiry_day(expires.isoformat()) in buckets and len(buckets) >= GRANTED_USERS // 3
    clock.advance(days=1, minutes=1)
    # The grant half of a sweep alone: a whole sweep a day later would also read 91 minutes of 128 reservation
    # shards, which is another test's subject.
    assert credits.expire_due_grants(acme.store, clock(), acme.cache) == (GRANTED_USERS, 100 * GRANTED_USERS)
    assert credits.expire_due_grants(acme.store, clock(), acme.cache) == (0, 0)
    acme.assert_verified()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(failures=0)
    yield running
    running.close()


ALERTS_RECORDED = 20


def test_alerts_due_in_every_shard_are_delivered_once(store: Store, clock: Clock, receiver: Receiver) -> None:
    tenant = Tenant(store, clock)
    box = LocalSecretBox("sharded-alerts-root-secret")
    alerts.put_webhook(tenant.scope, box, alerts.WebhookBody(url=receiver.url, secret=SECRET), allow_loopback_http=True)
    for number in range(ALERTS_RECORDED):
        user = f"u{number}"
        alert = Alert(f"whe_{number:032d}", THRESHOLD_CROSSED, "acme", user, "tokens", "2026-11", 50, 100, 50, 50)
        assert alerts.record(store, alert, clock()) is not None
    assert len({item["gsi2pk"] for item in items_with(store, "ALERT")}) >= ALERTS_RECORDED // 2
    assert alerts.retry_due(store, box, clock(), alerts.http_post) == {"delivered": ALERTS_RECORDED}
    assert alerts.retry_due(store, box, clock(), alerts.http_post) == {}
    assert len(receiver.received) == ALERTS_RECORDED
