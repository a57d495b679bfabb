"""The partition-heat model's arithmetic (tests/bench/heat.py) on a case small enough to compute by hand."""

from __future__ import annotations

import pytest

from tests.bench.heat import KeyWrite, SampleCycle, Workload, model

pytestmark = pytest.mark.unit


def four_shards(key: str) -> tuple[str, int] | None:
    return ("EXP", 4) if key.startswith("EXP#") else None


def cycle(tenant: str, user: str, number: int) -> SampleCycle:
    shard = f"EXP#m#{number % 4}" if number % 4 else "EXP#m"
    return SampleCycle(
        tenant,
        user,
        (
            KeyWrite("table", f"T#{tenant}#U#{user}", 4),  # the user's partition
            KeyWrite("table", f"T#{tenant}#R#{number}", 2),  # the reservation's own partition
            KeyWrite("table", f"T#{tenant}", 3),  # a tenant-wide key
            KeyWrite("table", "STATS", 1),  # a key every tenant shares, unsharded
            KeyWrite("gsi2", shard, 2),  # a 4-shard bucket
        ),
    )


def test_each_keys_load_per_global_cycle_follows_its_scope() -> None:
    sampled = [(tenant, user) for tenant in "AB" for user in ("u1", "u2") for _ in range(2)]
    sample = [cycle(tenant, user, number) for number, (tenant, user) in enumerate(sampled)]
    report = model(sample, Workload("2 tenants, 8 users", tenants=2, users=8), four_shards)
    load = {(heat.place, heat.key): (heat.scope, heat.units_per_cycle) for heat in report.keys}
    # a tenant key: 3 units per cycle of its tenant, whose cycles are 1/2 of all
    assert load[("table", "T#A")] == ("tenant", 1.5)
    assert load[("table", "T#B")] == ("tenant", 1.5)
    # a shared key: 1 unit per cycle of anyone
    assert load[("table", "STATS")] == ("all", 1.0)
    # a user key: 4 units per cycle of its user, whose cycles are 1/8 of all
    assert load[("table", "T#A#U#u1")] == ("user", 0.5)
    # a shard: 16 units over 8 cycles, spread over 4 shards
    assert load[("gsi2", "EXP#m#1")] == ("all, 1 of 4 shards", 0.5)
    assert load[("gsi2", "EXP#m")] == ("all, 1 of 4 shards", 0.5)
    # a reservation's own partition is written by one cycle: it never grows with the rate
    assert load[("table", "T#A#R#0")] == ("cycle", 0.0)
    assert [heat.key for heat in report.keys[:3]] == ["T#A", "T#B", "STATS"]
    assert report.sampled_cycles == 8
    assert report.ceiling_cycles_per_s == pytest.approx(1000 / 1.5)
    assert report.as_json()["ceiling_cycles_per_s"] == 667
    assert [(heat.key, heat.scope) for heat in report.hottest_by_scope()] == [
        ("T#A", "tenant"),
        ("STATS", "all"),
        ("EXP#m", "all, 1 of 4 shards"),
        ("T#A#U#u1", "user"),
    ]
