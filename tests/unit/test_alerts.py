"""Which writes cross an alert threshold: pure, from stream images."""

from __future__ import annotations

from typing import Any

import pytest

from quotaflow.ledger.alerts import CREDITS_EXHAUSTED, THRESHOLD_CROSSED, crossed, event_id

pytestmark = pytest.mark.unit


def image(
    used: int,
    *,
    reserved: int = 0,
    quota: int = 1000,
    credits: int = 0,
    period: str = "2026-11-01T00:00:00Z",
    enforcement: str = "hard",
    alerts: tuple[int, ...] = (50, 80, 100),
) -> dict[str, Any]:
    return {
        "meter": "tokens",
        "period_key": period,
        "quota": quota,
        "credits": credits,
        "used": used,
        "reserved": reserved,
        "available": quota + credits - used - reserved,
        "enforcement": enforcement,
        "alerts": list(alerts),
    }


def fired(old: dict[str, Any] | None, new: dict[str, Any]) -> list[tuple[str, int]]:
    return [(a.kind, a.threshold_percent) for a in crossed("acme", "u1", old, new)]


def test_each_threshold_fires_when_used_reaches_it() -> None:
    assert fired(image(0), image(499)) == []
    assert fired(image(499), image(500)) == [(THRESHOLD_CROSSED, 50)]
    assert fired(image(500), image(990)) == [(THRESHOLD_CROSSED, 80)]
    assert fired(image(0), image(1000)) == [
        (THRESHOLD_CROSSED, 50),
        (THRESHOLD_CROSSED, 80),
        (THRESHOLD_CROSSED, 100),
        (CREDITS_EXHAUSTED, 0),
    ]


def test_reservations_do_not_count_but_credits_widen_the_base() -> None:
    assert fired(image(100), image(100, reserved=800)) == []
    assert fired(image(0, credits=1000), image(600, credits=1000)) == []  # 600 of 2,000 is 30 %
    assert fired(image(0, quota=0), image(5, quota=0, enforcement="soft")) == [], "a zero quota never fires"


def test_a_new_period_starts_from_nothing_and_ids_are_stable() -> None:
    december = "2026-12-01T00:00:00Z"
    assert fired(image(900), image(600, period=december)) == [(THRESHOLD_CROSSED, 50)]
    (first,) = crossed("acme", "u1", image(0), image(500))
    assert first.event_id == event_id("acme", "u1", "tokens", "2026-11-01T00:00:00Z", 50)
    assert first.event_id != event_id("acme", "u1", "tokens", december, 50)


def test_exhaustion_is_only_for_hard_meters() -> None:
    assert (CREDITS_EXHAUSTED, 0) not in fired(image(900, enforcement="soft"), image(1000, enforcement="soft"))
    assert fired(image(900, alerts=()), image(960, reserved=40, alerts=())) == [(CREDITS_EXHAUSTED, 0)]
