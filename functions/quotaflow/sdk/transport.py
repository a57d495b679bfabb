"""What both clients share around a `Call`: where to send it, the HTTP request, and reading the answer."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from quotaflow import __version__
from quotaflow.sdk.calls import Call
from quotaflow.sdk.errors import ConnectionFailed, QuotaflowError, ServerError, error_for
from quotaflow.sdk.retry import Outcome, retry_after_seconds

T = TypeVar("T")
URL_ENV = "QUOTAFLOW_URL"
API_KEY_ENV = "QUOTAFLOW_API_KEY"
TIMEOUT_SECONDS_DEFAULT = 10.0
USER_AGENT = f"quotaflow-python/{__version__}"


@dataclass(frozen=True)
class Connection:
    base_url: str
    api_key: str = field(repr=False)

    @classmethod
    def resolve(cls, api_key: str | None, base_url: str | None, env: Mapping[str, str] | None = None) -> Connection:
        """Arguments first, then QUOTAFLOW_API_KEY and QUOTAFLOW_URL from the environment."""
        env = os.environ if env is None else env
        url = base_url or env.get(URL_ENV)
        key = api_key or env.get(API_KEY_ENV)
        if not url:
            raise ValueError(f"no quotaflow URL: pass base_url= or set {URL_ENV}")
        if not key:
            raise ValueError(f"no API key: pass api_key= or set {API_KEY_ENV}")
        return cls(base_url=url.rstrip("/"), api_key=key)


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def build_request(connection: Connection, call: Call[Any], idempotency_key: str) -> httpx.Request:
    """One request, sent as is on every attempt: a retry repeats the same Idempotency-Key."""
    headers = {
        "Authorization": f"Bearer {connection.api_key}",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    content: bytes | None = None
    if call.json_text is not None:
        headers["Content-Type"] = "application/json"
        content = call.json_text
    elif call.body is not None:
        headers["Content-Type"] = "application/json"
        content = json.dumps(call.body, separators=(",", ":")).encode()
    if call.is_write:
        headers["Idempotency-Key"] = idempotency_key
    if call.user_token is not None:
        headers["X-Quotaflow-User-Token"] = call.user_token
    url = connection.base_url + call.path
    return httpx.Request(call.method, url, params=dict(call.params or {}), headers=headers, content=content)


def read_result(call: Call[T], outcome: Outcome) -> T:
    """The typed result of a final outcome, or the typed error it stands for."""
    if isinstance(outcome, httpx.TransportError):
        raise ConnectionFailed(f"{call.method} {call.path}: {type(outcome).__name__}: {outcome}") from outcome
    if outcome.status_code >= 400:
        raise api_error(outcome)
    try:
        body = outcome.json() if outcome.content else None
    except ValueError:
        raise ServerError(
            f"{call.method} {call.path}: the response is not JSON", status_code=outcome.status_code
        ) from None
    return call.parse(body)


def api_error(response: httpx.Response) -> QuotaflowError:
    """`{"error": {"code", "message", "details"}}` as a typed error; anything else by its status."""
    error = _error_body(response)
    code = error.get("code")
    details = error.get("details")
    return error_for(
        response.status_code,
        code if isinstance(code, str) else None,
        str(error.get("message") or response.reason_phrase or f"HTTP {response.status_code}"),
        details if isinstance(details, dict) else {},
        retry_after_seconds(response),
    )


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}
