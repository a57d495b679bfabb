"""Injected faults through the API function: throttling, transaction conflicts, timeouts, and a crash after
DynamoDB applied a write but before the client heard back. Retryable failures are 429/503 with Retry-After,
never 500; a retry with the same Idempotency-Key applies once; `verify` is clean after each.

The faults are injected with botocore's own event hooks on the real client (moto behind it): DynamoDB cannot
be made to throttle or time out on demand here, so this is the one place the backend's answer is scripted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from quotaflow.handlers.runtime import Runtime
from quotaflow.services import metering, scope
from tests.api.conftest import Api

pytestmark = pytest.mark.unit
RESERVE = {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 4000}]}


@dataclass
class FakeHttp:
    status_code: int


class Faults:
    """Scripted failures for the next calls of one DynamoDB operation."""

    def __init__(self, runtime: Runtime) -> None:
        self.events = runtime.store.client.meta.events
        self.hooks: list[tuple[str, Any]] = []

    def fail(self, operation: str, times: int, code: str, **extra: Any) -> None:
        remaining = [times]

        def answer(**_: Any) -> Any:
            if remaining[0] <= 0:
                return None
            remaining[0] -= 1
            parsed = {
                "Error": {"Code": code, "Message": "injected"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
                **extra,
            }
            return FakeHttp(400), parsed

        self._register(f"before-call.dynamodb.{operation}", answer)

    def time_out(self, operation: str) -> None:
        def hang(**_: Any) -> None:
            raise ReadTimeoutError(endpoint_url="http://dynamodb")

        self._register(f"before-call.dynamodb.{operation}", hang)

    def crash_after(self, operation: str) -> None:
        """The write happens; then the process dies before anyone is told."""

        def die(**_: Any) -> None:
            raise SystemExit("process lost after the write")

        self._register(f"after-call.dynamodb.{operation}", die)

    def _register(self, event: str, handler: Any) -> None:
        self.events.register_first(event, handler)
        self.hooks.append((event, handler))

    def clear(self) -> None:
        for event, handler in self.hooks:
            self.events.unregister(event, handler)
        self.hooks.clear()


@pytest.fixture
def faults(runtime: Runtime) -> Iterator[Faults]:
    injected = Faults(runtime)
    yield injected
    injected.clear()


def reserved(qf: Api) -> int:
    return int(qf("GET", "/v1/users/u1/usage").body["counters"][1]["reserved"])


def assert_clean(qf: Api) -> None:
    assert qf("POST", "/v1/verify", {}).body["ok"] is True


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"]
)
def test_throttling_is_429_with_retry_after(qf: Api, faults: Faults, code: str) -> None:
    faults.fail("TransactWriteItems", times=1, code=code)
    refused = qf("POST", "/v1/reservations", RESERVE, headers={"Idempotency-Key": "t-1"})
    assert (refused.status, refused.body["error"]["code"], refused.headers.get("Retry-After")) == (
        429,
        "throttled",
        "1",
    )
    retried = qf("POST", "/v1/reservations", RESERVE, headers={"Idempotency-Key": "t-1"})
    assert retried.status == 201, "a 429 is not stored: the retry with the same key goes through"
    assert reserved(qf) == 4000
    assert_clean(qf)


def test_throttled_transaction_reasons_are_429(qf: Api, faults: Faults) -> None:
    faults.fail(
        "TransactWriteItems",
        times=1,
        code="TransactionCanceledException",
        CancellationReasons=[{"Code": "ThrottlingError"}, {"Code": "None"}, {"Code": "None"}],
    )
    assert qf("POST", "/v1/reservations", RESERVE).status == 429
    assert reserved(qf) == 0


def test_transaction_conflicts_are_retried_inside_and_never_surface(qf: Api, faults: Faults) -> None:
    conflict = [{"Code": "TransactionConflict"}, {"Code": "None"}, {"Code": "None"}]
    faults.fail("TransactWriteItems", times=3, code="TransactionCanceledException", CancellationReasons=conflict)
    created = qf("POST", "/v1/reservations", RESERVE)
    assert created.status == 201
    assert reserved(qf) == 4000
    assert_clean(qf)


def test_a_draw_outraced_more_times_than_the_attempt_count_still_lands(
    qf: Api, faults: Faults, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parallel steps on one reservation each win in turn: a loser keeps trying while the patience lasts, so a
    draw beaten more often than RESERVATION_WRITE_ATTEMPTS_MAX is still no 503 (the backoff is shortened to keep
    the test quick; the count of losses is what matters)."""
    monkeypatch.setattr(scope, "BACKOFF_MAX_S", 0.001)
    reservation_id = qf("POST", "/v1/reservations", RESERVE).body["reservation_id"]
    conflict = [{"Code": "TransactionConflict"}] + [{"Code": "None"}] * 4
    losses = metering.RESERVATION_WRITE_ATTEMPTS_MAX + 5
    faults.fail("TransactWriteItems", times=losses, code="TransactionCanceledException", CancellationReasons=conflict)
    drawn = qf("POST", f"/v1/reservations/{reservation_id}/draw", {"lines": [{"meter": "tokens", "amount": 100}]})
    assert (drawn.status, drawn.body["drawn"]) == (200, [{"meter": "tokens", "amount": 100}])
    assert_clean(qf)


def test_unavailable_and_timeouts_are_503_with_retry_after(qf: Api, faults: Faults) -> None:
    faults.fail("TransactWriteItems", times=1, code="InternalServerError")
    unavailable = qf("POST", "/v1/reservations", RESERVE)
    assert (unavailable.status, unavailable.headers.get("Retry-After")) == (503, "1")
    faults.time_out("Query")
    timed_out = qf("GET", "/v1/users/u1/usage")
    assert (timed_out.status, timed_out.body["error"]["code"]) == (503, "unavailable")
    faults.clear()
    assert reserved(qf) == 0
    assert_clean(qf)


def test_a_crash_after_the_write_is_answered_by_the_retry_with_the_same_key(qf: Api, faults: Faults) -> None:
    assert qf("POST", "/v1/events", {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 0}]}).status == 201
    faults.crash_after("TransactWriteItems")  # the counter is open: the next transaction is the reserve itself
    with pytest.raises(SystemExit):
        qf("POST", "/v1/reservations", RESERVE, headers={"Idempotency-Key": "crash-1"})
    faults.clear()
    assert reserved(qf) == 4000, "the write landed although nobody was told"
    retried = qf("POST", "/v1/reservations", RESERVE, headers={"Idempotency-Key": "crash-1"})
    assert retried.status == 201
    assert reserved(qf) == 4000, "the retry replayed the stored response instead of holding again"
    rid = retried.body["reservation_id"]
    faults.crash_after("TransactWriteItems")
    with pytest.raises(SystemExit):
        qf(
            "POST",
            f"/v1/reservations/{rid}/commit",
            {"lines": [{"meter": "tokens", "amount": 800}]},
            headers={"Idempotency-Key": "crash-2"},
        )
    faults.clear()
    again = qf(
        "POST",
        f"/v1/reservations/{rid}/commit",
        {"lines": [{"meter": "tokens", "amount": 800}]},
        headers={"Idempotency-Key": "crash-2"},
    )
    assert (again.status, again.body["refunded"]) == (200, [{"meter": "tokens", "amount": 3200}])
    usage = qf("GET", "/v1/users/u1/usage").body["counters"][1]
    assert (usage["used"], usage["reserved"]) == (800, 0)
    assert_clean(qf)
