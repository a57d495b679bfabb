"""The retry rule and error parsing on their own: pure functions, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from quotaflow.sdk import InsufficientQuota, InvalidRequest, QuotaflowError, RetryPolicy, ServerError, Unavailable
from quotaflow.sdk.reservation import step_key
from quotaflow.sdk.retry import is_retryable, retry_after_seconds
from quotaflow.sdk.transport import api_error

pytestmark = pytest.mark.unit
POLICY = RetryPolicy(attempts_max=4, backoff_base_seconds=0.5, backoff_max_seconds=2.0, retry_after_max_seconds=30)


def answer(status: int, body: object = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers={k.replace("_", "-"): v for k, v in headers.items()})


def error_body(code: str, **details: object) -> dict[str, object]:
    return {"error": {"code": code, "message": f"{code} happened", "details": details}}


def test_backoff_grows_with_jitter_and_stays_under_its_cap() -> None:
    busy = answer(503)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0)]:
        delays = [POLICY.delay_seconds(attempt, busy) for _ in range(200)]
        assert all(d is not None and 0 <= d <= ceiling for d in delays)
        assert max(d for d in delays if d is not None) > ceiling / 2, "full jitter spreads over the range"


def test_attempts_are_bounded() -> None:
    assert POLICY.delay_seconds(3, answer(503)) is None
    assert RetryPolicy(attempts_max=1).delay_seconds(0, answer(503)) is None
    with pytest.raises(ValueError, match="attempts_max"):
        RetryPolicy(attempts_max=0)


def test_retry_after_is_honored_in_seconds_or_as_a_date() -> None:
    assert POLICY.delay_seconds(0, answer(429, retry_after="3")) == 3.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    delay = POLICY.delay_seconds(0, answer(503, retry_after=later))
    assert delay is not None and 8 <= delay <= 10
    assert POLICY.delay_seconds(0, answer(503, retry_after="120")) is None, "too long a wait: give up now"
    assert retry_after_seconds(answer(503, retry_after="soon")) is None


def test_what_is_retryable() -> None:
    assert is_retryable(httpx.ConnectError("refused"))
    assert is_retryable(httpx.ReadTimeout("slow"))
    assert all(is_retryable(answer(status)) for status in (429, 502, 503, 504))
    assert is_retryable(answer(409, error_body("conflict"), retry_after="1")), "a duplicate still in flight"
    assert not is_retryable(answer(409, error_body("conflict")))
    assert not is_retryable(answer(409, error_body("reservation_expired"), retry_after="1"))
    assert not any(is_retryable(answer(status)) for status in (400, 401, 402, 403, 404, 500))


def test_error_responses_become_typed_errors() -> None:
    refused = api_error(answer(402, error_body("insufficient_quota", meter="tokens", requested=5, available=2)))
    assert isinstance(refused, InsufficientQuota) and (refused.meter, refused.requested, refused.available) == (
        "tokens",
        5,
        2,
    )
    invalid = api_error(answer(400, error_body("invalid_request", field="lines[0].amount")))
    assert isinstance(invalid, InvalidRequest) and invalid.field == "lines[0].amount"
    busy = api_error(answer(503, error_body("unavailable"), retry_after="2"))
    assert isinstance(busy, Unavailable) and busy.retry_after_seconds == 2.0
    internal = api_error(answer(500, error_body("internal")))
    assert isinstance(internal, ServerError) and internal.code == "internal"
    novel = api_error(answer(418, error_body("teapot")))
    assert type(novel) is QuotaflowError and novel.code == "teapot" and "HTTP 418" in str(novel)
    page = api_error(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert isinstance(page, ServerError) and page.status_code == 502


def test_insufficient_quota_can_be_raised_by_hand() -> None:
    error = InsufficientQuota("tokens", 10, 3)
    assert (error.code, error.status_code, error.details["available"]) == ("insufficient_quota", 402, 3)


def test_step_keys_stay_within_the_contracts_length() -> None:
    assert step_key("call-42", "commit") == "call-42:commit"
    long_key = "k" * 255
    assert len(step_key(long_key, "release")) <= 255 and step_key(long_key, "release") != step_key("k", "release")
