"""Retries against a server that fails once: the write goes again with the same Idempotency-Key and the server
applies it exactly once, even when the first attempt did reach it and only the answer was lost."""

from __future__ import annotations

import pytest

from quotaflow.sdk import (
    Client,
    ConnectionFailed,
    InsufficientQuota,
    QuotaflowError,
    ServerError,
    TenantCreated,
    Throttled,
    Unavailable,
)
from tests.sdk.support import FAST_RETRY, Fault, FaultyProxy

pytestmark = pytest.mark.unit

LOST_ANSWER = Fault(after_forwarding=True)
REFUSED_AT_THE_DOOR = Fault(after_forwarding=False)
DROPPED_CONNECTION = Fault(after_forwarding=True, status=None)


@pytest.fixture
def via_proxy(proxy: FaultyProxy, tenant: TenantCreated, qf: Client) -> Client:
    """The seeded tenant, reached through the proxy."""
    return Client(api_key=tenant.secret_key, base_url=proxy.url, retry=FAST_RETRY)


def events_in_ledger(qf: Client) -> int:
    return sum(entry.kind == "event" for entry in qf.ledger_entries("u1"))


@pytest.mark.parametrize("fault", [REFUSED_AT_THE_DOOR, LOST_ANSWER, DROPPED_CONNECTION], ids=lambda f: repr(f)[:40])
def test_a_failed_write_is_retried_with_the_same_key_and_applied_once(
    fault: Fault, via_proxy: Client, proxy: FaultyProxy, qf: Client
) -> None:
    proxy.fail_next(fault)
    recorded = via_proxy.track("u1", {"tokens": 10})
    attempts = proxy.writes()
    assert len(attempts) == 2
    assert attempts[0].idempotency_key is not None and attempts[0].idempotency_key == attempts[1].idempotency_key
    assert qf.usage("u1").counter("tokens").used == 10
    assert events_in_ledger(qf) == 1
    if fault.after_forwarding:
        first_answer = proxy.relayed[0].json()
        assert first_answer == {"event_id": recorded.event_id}, "the retry replays the first answer"


def test_a_reserve_block_survives_lost_answers_on_reserve_and_commit(
    via_proxy: Client, proxy: FaultyProxy, qf: Client
) -> None:
    proxy.fail_next(LOST_ANSWER)
    with via_proxy.reserve("u1", {"tokens": 4000}) as held:
        proxy.fail_next(LOST_ANSWER)
        held.commit({"tokens": 800})
    counter = qf.usage("u1").counter("tokens")
    assert (counter.used, counter.reserved, counter.remaining) == (800, 0, 99_200)
    kinds = [entry.kind for entry in qf.ledger_entries("u1")]
    assert kinds == ["commit", "reserve", "quota_change"]
    assert len(proxy.writes()) == 4


def test_a_given_idempotency_key_is_the_one_sent(via_proxy: Client, proxy: FaultyProxy) -> None:
    proxy.fail_next(REFUSED_AT_THE_DOOR)
    via_proxy.grant_credits("u1", "tokens", 5, idempotency_key="grant-2026-11")
    assert [seen.idempotency_key for seen in proxy.writes()] == ["grant-2026-11", "grant-2026-11"]


def test_reads_are_retried_too(via_proxy: Client, proxy: FaultyProxy) -> None:
    proxy.fail_next(REFUSED_AT_THE_DOOR, DROPPED_CONNECTION)
    assert via_proxy.usage("u1").counter("tokens").remaining == 100_000
    assert [seen.method for seen in proxy.seen] == ["GET"] * 3
    assert proxy.seen[0].idempotency_key is None


@pytest.mark.parametrize(("status", "error"), [(503, Unavailable), (429, Throttled)])
def test_retries_stop_after_the_policys_attempts(
    status: int, error: type[QuotaflowError], via_proxy: Client, proxy: FaultyProxy, qf: Client
) -> None:
    body = b'{"error": {"code": "%s", "message": "busy", "details": {}}}' % error.code.encode()
    proxy.fail_next(*[Fault(after_forwarding=False, status=status, body=body)] * 10)
    with pytest.raises(error) as refused:
        via_proxy.track("u1", {"tokens": 10})
    assert len(proxy.writes()) == FAST_RETRY.attempts_max
    assert refused.value.retry_after_seconds == 0
    assert qf.usage("u1").counter("tokens").used == 0


def test_a_dead_server_raises_connection_failed(via_proxy: Client, proxy: FaultyProxy) -> None:
    proxy.fail_next(*[Fault(after_forwarding=False, status=None)] * 10)
    with pytest.raises(ConnectionFailed) as failed:
        via_proxy.usage("u1")
    assert len(proxy.seen) == FAST_RETRY.attempts_max
    assert failed.value.__cause__ is not None


def test_a_gateway_page_that_is_not_json_raises_server_error(via_proxy: Client, proxy: FaultyProxy) -> None:
    page = Fault(after_forwarding=False, status=502, retry_after=None, body=b"<html>Bad Gateway</html>")
    proxy.fail_next(*[page] * 10)
    with pytest.raises(ServerError) as failed:
        via_proxy.usage("u1")
    assert failed.value.status_code == 502 and len(proxy.seen) == FAST_RETRY.attempts_max


def test_final_answers_are_not_retried(via_proxy: Client, proxy: FaultyProxy) -> None:
    with pytest.raises(InsufficientQuota):
        via_proxy.reserve("u1", {"tokens": 100_001})
    assert len(proxy.writes()) == 1
