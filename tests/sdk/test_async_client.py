"""`AsyncClient` against a real `quotaflow serve`: the same calls, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from quotaflow.local.server import LocalServer
from quotaflow.sdk import AsyncClient, Client, InsufficientQuota, NotFound, ReservationNotPending, TenantCreated
from tests.sdk.support import FAST_RETRY, Fault, FaultyProxy

pytestmark = pytest.mark.unit
Scenario = Callable[[AsyncClient], Awaitable[None]]


def run(url: str, key: str, scenario: Scenario) -> None:
    async def main() -> None:
        async with AsyncClient(api_key=key, base_url=url, retry=FAST_RETRY) as qf:
            await scenario(qf)

    asyncio.run(main())


async def tokens(qf: AsyncClient) -> tuple[int, int, int]:
    counter = (await qf.usage("u1")).counter("tokens")
    return counter.used, counter.reserved, counter.remaining


def test_async_with_reserve_commits(server: LocalServer, tenant: TenantCreated, qf: Client) -> None:
    async def scenario(aqf: AsyncClient) -> None:
        async with aqf.reserve("u1", {"tokens": 4000}, ttl_seconds=300) as held:
            result = await held.commit({"tokens": 800})
        assert [(line.meter, line.amount) for line in result.refunded] == [("tokens", 3200)]
        assert await tokens(aqf) == (800, 0, 99_200)
        assert not (await aqf.can_use("u1", "tokens", 99_201)).allowed
        assert [e.kind async for e in aqf.ledger_entries("u1", page_size=1)] == ["commit", "reserve", "quota_change"]
        assert (await aqf.verify("u1")).ok

    run(server.url, tenant.secret_key, scenario)


def test_async_with_reserve_releases_on_exception_and_when_uncommitted(
    server: LocalServer, tenant: TenantCreated, qf: Client
) -> None:
    async def scenario(aqf: AsyncClient) -> None:
        with pytest.raises(TimeoutError):
            async with aqf.reserve("u1", {"tokens": 4000}) as failed:
                raise TimeoutError("the model timed out")
        async with aqf.reserve("u1", {"tokens": 4000}) as idle:
            assert await tokens(aqf) == (0, 4000, 96_000)
        assert (await aqf.get_reservation(failed.id)).status == "released"
        assert (await aqf.get_reservation(idle.id)).status == "released"
        assert await tokens(aqf) == (0, 0, 100_000)

    run(server.url, tenant.secret_key, scenario)


def test_an_awaited_reservation_is_committed_or_released_by_hand(
    server: LocalServer, tenant: TenantCreated, qf: Client
) -> None:
    async def scenario(aqf: AsyncClient) -> None:
        held = await aqf.reserve("u1", {"tokens": 100})
        assert held.is_open
        await held.release()
        with pytest.raises(ReservationNotPending):
            await aqf.commit(held.id, {"tokens": 1})
        with pytest.raises(InsufficientQuota) as refused:
            await aqf.reserve("u1", {"tokens": 100_001})
        assert (refused.value.meter, refused.value.available) == ("tokens", 100_000)
        with pytest.raises(NotFound):
            await aqf.get_subscription("nobody")

    run(server.url, tenant.secret_key, scenario)


def test_async_writes_cover_every_route(server: LocalServer, tenant: TenantCreated, qf: Client) -> None:
    async def scenario(aqf: AsyncClient) -> None:
        await aqf.put_plan("plan_free", "Free", {"tokens": {"quota": 50, "period": "day"}})
        await aqf.upsert_subscription("u2", "plan_free")
        assert (await aqf.get_subscription("u2")).plan_id == "plan_free"
        assert [p.plan_id for p in await aqf.list_plans()] == ["plan_free", "plan_paygo"]
        assert (await aqf.get_plan("plan_free")).limits["tokens"].quota == 50
        await aqf.track("u1", {"tokens": 10})
        await aqf.refund("u1", {"tokens": 4})
        await aqf.grant_credits("u1", "tokens", 100)
        assert await tokens(aqf) == (6, 0, 100_094)
        assert (await aqf.can_use_lines("u1", {"tokens": 100_095})).meters[0].allowed is False
        assert (await aqf.put_settings(default_plan_id=None)).default_plan_id is None
        assert (await aqf.get_settings()).default_plan_id is None
        assert (await aqf.user_token("u1")).token
        assert (await aqf.ledger("u1", limit=1)).next_cursor is not None
        assert (await aqf.health()).ok

    run(server.url, tenant.secret_key, scenario)


def test_async_admin_calls(server: LocalServer, tenant: TenantCreated) -> None:
    async def scenario(admin: AsyncClient) -> None:
        created = await admin.create_tenant("async-tenant")
        key = await admin.create_key(created.tenant_id, "publishable")
        assert key.key.startswith("qf_pk_")
        await admin.revoke_key(created.tenant_id, key.key_id)

    run(server.url, server.admin_key, scenario)


def test_async_writes_are_retried_with_the_same_key(tenant: TenantCreated, qf: Client, proxy: FaultyProxy) -> None:
    proxy.fail_next(Fault(after_forwarding=True))

    async def scenario(aqf: AsyncClient) -> None:
        async with aqf.reserve("u1", {"tokens": 4000}) as held:
            await held.commit({"tokens": 800})
        assert await tokens(aqf) == (800, 0, 99_200)

    run(proxy.url, tenant.secret_key, scenario)
    reserve_attempts = [seen for seen in proxy.writes() if seen.path == "/v1/reservations"]
    assert len(reserve_attempts) == 2 and reserve_attempts[0].idempotency_key == reserve_attempts[1].idempotency_key
