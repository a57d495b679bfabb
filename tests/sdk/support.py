"""Fixtures for the SDK and CLI tests: a real `quotaflow serve` on loopback, a tenant on it, and a proxy in front
of it that fails on cue (before the request reaches the server, or after, losing only the answer)."""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from quotaflow.local.server import LocalServer, build_server
from quotaflow.sdk import Client, RetryPolicy, TenantCreated

ADMIN_KEY = "qf_admin_sdk_tests_0123456789"
FAST_RETRY = RetryPolicy(attempts_max=4, backoff_base_seconds=0.01, backoff_max_seconds=0.05)
PAYGO_LIMITS = {"tokens": {"label": "Tokens", "quota": 0, "period": "none", "enforcement": "hard"}}
UNAVAILABLE = b'{"error": {"code": "unavailable", "message": "injected by the test proxy", "details": {}}}'


@dataclass(frozen=True)
class Fault:
    """What the proxy does to one request instead of relaying the server's answer."""

    after_forwarding: bool  # True: the server saw and applied the request; only its answer is lost
    status: int | None = 503  # None: close the connection without answering
    retry_after: str | None = "0"
    body: bytes = UNAVAILABLE


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    idempotency_key: str | None


@dataclass
class FaultyProxy:
    upstream: str
    faults: deque[Fault] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)
    relayed: list[httpx.Response] = field(default_factory=list)  # the server's answers, lost ones included

    def __post_init__(self) -> None:
        self._forward = httpx.Client(base_url=self.upstream, timeout=30)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(self))
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        relayed = {k: v for k, v in headers.items() if k.lower() not in {"host", "content-length", "connection"}}
        response = self._forward.request(method, path, headers=relayed, content=body)
        self.relayed.append(response)
        return response

    def writes(self) -> list[Seen]:
        return [seen for seen in self.seen if seen.method != "GET"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._forward.close()


def _proxy_handler(proxy: FaultyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            proxy.seen.append(Seen(self.command, self.path, self.headers.get("Idempotency-Key")))
            fault = proxy.faults.popleft() if proxy.faults else None
            if fault is not None and not fault.after_forwarding:
                self._fail(fault)
                return
            response = proxy.forward(self.command, self.path, dict(self.headers.items()), body)
            if fault is not None:
                self._fail(fault)
                return
            headers = {"Content-Type": response.headers.get("content-type", "application/json")}
            if "retry-after" in response.headers:
                headers["Retry-After"] = response.headers["retry-after"]
            self._reply(response.status_code, response.content, headers)

        def _fail(self, fault: Fault) -> None:
            if fault.status is None:
                self.close_connection = True  # no answer at all: the client sees the connection drop
                return
            headers = {"Content-Type": "application/json"}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            self._reply(fault.status, fault.body, headers)

        def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _relay

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


# --- fixtures (imported by the conftest of tests/sdk and tests/cli) ---------------------------------------


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A fresh `quotaflow serve` (embedded DynamoDB) on a free loopback port."""
    running = build_server(port=0, admin_key=ADMIN_KEY)
    running.start_in_thread()
    yield running
    running.close()


@pytest.fixture
def tenant(server: LocalServer) -> TenantCreated:
    with Client(api_key=server.admin_key, base_url=server.url) as admin:
        return admin.create_tenant(f"t-{secrets.token_hex(4)}")


@pytest.fixture
def qf(server: LocalServer, tenant: TenantCreated) -> Iterator[Client]:
    """The tenant's secret key; plan_paygo, and user u1 on it with 100,000 tokens (the seed)."""
    with Client(api_key=tenant.secret_key, base_url=server.url, retry=FAST_RETRY) as client:
        client.put_plan("plan_paygo", "Pay as you go", PAYGO_LIMITS)
        client.upsert_subscription("u1", "plan_paygo", custom_limits={"tokens": {"quota": 100_000}})
        yield client


@pytest.fixture
def proxy(server: LocalServer) -> Iterator[FaultyProxy]:
    running = FaultyProxy(server.url)
    yield running
    running.close()
