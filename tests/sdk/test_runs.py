"""Runs through the SDK against a real `quotaflow serve`: `with qf.run(...)`, draws, heartbeats, sync and async."""

from __future__ import annotations

import asyncio
import time

import pytest

from quotaflow.local.server import LocalServer
from quotaflow.sdk import AsyncClient, Client, InsufficientQuota, TenantCreated
from tests.sdk.support import FAST_RETRY

pytestmark = pytest.mark.unit


def tokens(qf: Client) -> tuple[int, int, int]:
    counter = qf.usage("u1").counter("tokens")
    return counter.used, counter.reserved, counter.remaining


def test_a_run_draws_each_step_and_gives_back_the_rest_when_the_block_ends(qf: Client) -> None:
    with qf.run("u1", {"tokens": 50_000}) as run:
        for step, used in (("plan", 1200), ("search", 3000), ("answer", 800)):
            drawn = run.draw({"tokens": used}, {"step": step})
        assert tokens(qf) == (5000, 45_000, 50_000)  # live while the run works
        assert drawn.held[0].amount == 45_000
    assert run.outcome is not None and run.outcome.status == "committed"
    assert tokens(qf) == (5000, 0, 95_000)
    assert [s.properties["step"] for s in run.steps().steps] == ["plan", "search", "answer"]
    assert qf.verify("u1").ok


def test_a_run_that_raises_releases_what_is_left_and_keeps_what_was_drawn(qf: Client) -> None:
    run = qf.run("u1", {"tokens": 10_000})

    def crashing_agent() -> None:
        with run:
            run.draw({"tokens": 400})
            raise RuntimeError("the agent crashed")

    with pytest.raises(RuntimeError):
        crashing_agent()
    assert run.outcome is not None and run.outcome.status == "released"
    assert tokens(qf) == (400, 0, 99_600)


def test_an_increase_that_does_not_fit_is_refused_and_the_run_goes_on(qf: Client) -> None:
    with qf.run("u1", {"tokens": 90_000}) as run:
        with pytest.raises(InsufficientQuota):
            run.increase({"tokens": 20_000})
        grown = run.increase({"tokens": 10_000})
        assert grown.lines[0].amount == 100_000 and run.lines == {"tokens": 100_000}
    assert tokens(qf) == (0, 0, 100_000)


def test_the_heartbeat_keeps_a_short_hold_alive(qf: Client) -> None:
    with qf.run("u1", {"tokens": 1000}, ttl_seconds=3, heartbeat_seconds=0.5) as run:
        first_deadline = run.expires_at
        time.sleep(4)  # longer than the hold's own ttl: only the heartbeat keeps it
        assert qf.get_reservation(run.id).status == "pending"
        assert run.expires_at > first_deadline
        run.draw({"tokens": 10})
    assert tokens(qf) == (10, 0, 99_990)


def test_async_run_with_a_heartbeat(server: LocalServer, tenant: TenantCreated, qf: Client) -> None:
    async def scenario() -> None:
        async with AsyncClient(api_key=tenant.secret_key, base_url=server.url, retry=FAST_RETRY) as aqf:
            async with aqf.run("u1", {"tokens": 2000}, ttl_seconds=3, heartbeat_seconds=0.5) as run:
                await asyncio.sleep(4)
                await run.draw({"tokens": 700}, {"step": "stream"})
            assert run.outcome is not None and run.outcome.status == "committed"

    asyncio.run(scenario())
    assert tokens(qf) == (700, 0, 99_300)
