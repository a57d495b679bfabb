"""Anchored periods through the client against a real `quotaflow serve`."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

import pytest

from quotaflow.sdk import Client

pytestmark = pytest.mark.unit


def test_a_subscription_anchor_sets_where_periods_start(qf: Client) -> None:
    qf.put_plan("plan_pro", "Pro", {"tokens": {"quota": 1000, "period": "month"}}, period_anchoring="calendar")
    anchor = datetime(2020, 1, 31, 9, 30, tzinfo=UTC)
    subscription = qf.upsert_subscription("u2", "plan_pro", period_anchor=anchor)
    assert subscription.period_anchor == anchor
    counter = qf.usage("u2").counter("tokens")
    assert counter.period_start is not None and counter.period_end is not None
    start, end = counter.period_start, counter.period_end
    assert start <= datetime.now(UTC) < end
    assert start.day == min(31, calendar.monthrange(start.year, start.month)[1]), "the 31st, clamped"
    assert end.day == min(31, calendar.monthrange(end.year, end.month)[1])
    assert (start.hour, start.minute, end.hour, end.minute) == (9, 30, 9, 30)
    assert qf.get_plan("plan_pro").period_anchoring == "calendar"
    with pytest.raises(ValueError, match="timezone"):
        qf.upsert_subscription("u2", "plan_pro", period_anchor=datetime(2020, 1, 31))
