"""Browser fixtures: the API on `quotaflow serve` (embedded backend) in a thread, a second loopback server for
the "app page" (another origin, so CORS is really exercised), and headless Chromium from the OS packages driven by
Playwright. A missing Playwright or Chromium fails these tests; they never skip."""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

import quotaflow.handlers.web  # noqa: F401  (registers the web routes, as the API module does)
from quotaflow.handlers.runtime import runtime
from quotaflow.local.server import LocalServer, build_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = os.environ.get("QUOTAFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ADMIN_KEY = "qf_admin_browser_key_0123456789"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


class ServerClock:
    """The served API's clock: the real time unless a test pins it (to lay out a history over days)."""

    def __init__(self) -> None:
        self.pinned: datetime | None = None

    def __call__(self) -> datetime:
        return self.pinned or datetime.now(UTC)


@dataclass
class Api:
    server: LocalServer
    clock: ServerClock

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    """Per module: `serve` binds the process's one runtime, which other suites' servers rebind."""
    server = build_server(port=0, admin_key=ADMIN_KEY)
    clock = ServerClock()
    runtime().clock = clock  # build_server bound this process's runtime; Runtime.clock is the hook for tests
    server.start_in_thread()
    yield Api(server, clock)
    server.close()


@pytest.fixture
def server_clock(api: Api) -> Iterator[ServerClock]:
    yield api.clock
    api.clock.pinned = None


@dataclass
class AppSite:
    """The app's own web server: pages registered by path, served from another origin than the API."""

    httpd: ThreadingHTTPServer
    pages: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def page(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.origin + path


@pytest.fixture(scope="session")
def app_site() -> Iterator[AppSite]:
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0])
            payload = (body or "not found").encode()
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    yield AppSite(httpd, pages)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: Playwright's sync API keeps an event loop running in this thread while it is open, which
    would break other suites' asyncio.run()."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as missing:
        pytest.fail(f"the browser tests need Playwright: pip install -e '.[dev]' ({missing})", pytrace=False)
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context; `@pytest.mark.parametrize("page", [2], indirect=True)` for 2x screenshots."""
    scale = getattr(request, "param", 1)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=scale)
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@dataclass
class Tenant:
    tenant_id: str
    secret_key: str
    publishable_key: str
    client: httpx.Client

    def ok(self, method: str, path: str, body: dict[str, Any] | None = None, status: int = 200) -> Any:
        response = self.client.request(method, path, json=body)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        return response.json() if response.content else None


@pytest.fixture
def tenant(api: Api) -> Iterator[Tenant]:
    """A fresh tenant per test, so tests never see each other's users."""
    tenant_id = f"t{secrets.token_hex(4)}"
    created = httpx.post(
        f"{api.url}/v1/admin/tenants", json={"tenant_id": tenant_id}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert created.status_code == 201, created.text
    keys = created.json()
    with httpx.Client(
        base_url=api.url, headers={"Authorization": f"Bearer {keys['secret_key']}"}, timeout=30
    ) as client:
        yield Tenant(tenant_id, keys["secret_key"], keys["publishable_key"], client)
