"""A small HTTP server that turns each request into an API Gateway v2 event for the API function.

It holds what a client can throw at it: a listen backlog and a cap on open connections (past it, new
connections wait in the kernel's queue instead of being reset), every method answered in the API's error
shape (those API Gateway routes go to the function, as in AWS; the others are 404 here), and a stop on
SIGTERM or SIGINT that drains what is in flight before the workers and timers end."""

from __future__ import annotations

import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from quotaflow.config import Settings
from quotaflow.ledger.periods import parse_iso
from quotaflow.local import logs
from quotaflow.local.workers import InProcess, Stopped, WorkerLost, WorkerPool, function_of, start_embedded_dynamodb

BODY_READ_MAX = 1024 * 1024  # the API refuses bodies over 64 KiB with 413; past this the server stops reading
LISTEN_BACKLOG = 1024  # socketserver's default of 5 resets clients that connect at once
CONNECTIONS_OPEN_MAX = 512  # one thread each; past it new connections wait in the listen backlog
CONNECTION_SLOT_WAIT_S = 0.2  # how often a full server checks whether it is stopping
IDLE_CONNECTION_SECONDS = 30  # a keep-alive connection with no request for this long is closed
DRAIN_SECONDS_MAX = 30.0  # on stop, how long requests in flight may take to finish
RETRY_AFTER_SECONDS = 1
# The methods an API Gateway `ANY` route passes to the function; API Gateway routes no others.
ROUTED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# The scheduled functions `serve` runs on timers and on POST /_local/run/{job}: name -> seconds between runs (a
# sweep reads every shard of two expiry minutes, ~0.5 s on the embedded DynamoDB: every 15 s, not every 5)
JOBS: dict[str, float] = {"sweeper": 15.0, "notifier": 2.0, "billing-export": 3600.0}
Functions = InProcess | WorkerPool


def _json(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body),
    }


def _error(status: int, code: str, message: str, **details: Any) -> dict[str, Any]:
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status in (429, 503) else None
    return _json(status, {"error": {"code": code, "message": message, "details": details}}, retry)


def local_route(
    functions: Functions,
    admin_key: str,
    method: str,
    path: str,
    authorization: str | None,
    body: bytes | None,
) -> dict[str, Any]:
    """`POST /_local/run/{job}` with an optional `{"now": "<ISO time>"}`: run a scheduled function at once, as if
    the clock read `now`. Admin key only; `serve` only (not routed in AWS)."""
    from quotaflow.local.events import scheduled_event

    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        return _error(401, "unauthenticated", "send Authorization: Bearer <admin key>")
    if not hmac.compare_digest(key.strip().encode(), admin_key.encode()):
        return _error(403, "forbidden", "only the admin key may run local jobs")
    job = path.removeprefix("/_local/run/")
    if method != "POST" or not path.startswith("/_local/run/") or job not in JOBS:
        return _error(404, "not_found", f"local routes: POST /_local/run/{{{'|'.join(JOBS)}}}")
    try:
        options = json.loads(body) if body else {}
        if not isinstance(options, dict) or set(options) - {"now", "dry_run"}:
            raise ValueError("only the fields now and dry_run are accepted")
        now = parse_iso(options["now"]) if options.get("now") else datetime.now(UTC)
        dry_run = options.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise ValueError("dry_run is true or false")
    except (ValueError, TypeError) as bad:
        return _error(
            400, "invalid_request", f'body must be {{"now": "<ISO time>", "dry_run": false}}: {bad}', field="now"
        )
    return _json(200, functions.job(job, {**scheduled_event(job, now), **({"dry_run": True} if dry_run else {})}))


class LocalHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most CONNECTIONS_OPEN_MAX at once, and a count of requests in flight."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True  # idle keep-alive connections never hold up a stop; requests in flight are drained

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(CONNECTIONS_OPEN_MAX)
        self.stopping = threading.Event()
        self.draining = False
        self.in_flight = 0
        self.idle = threading.Condition()

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self.slots.acquire(timeout=CONNECTION_SLOT_WAIT_S):
            if self.stopping.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def begin_request(self) -> bool:
        """Count a request in; False once the server drains (the request is then refused, retryable)."""
        with self.idle:
            if self.draining:
                return False
            self.in_flight += 1
            return True

    def end_request(self) -> None:
        with self.idle:
            self.in_flight -= 1
            self.idle.notify_all()

    def drain(self) -> int:
        """Refuse new requests and wait for those in flight; returns how many were still running at the end."""
        with self.idle:
            self.draining = True
            self.idle.wait_for(lambda: self.in_flight == 0, timeout=DRAIN_SECONDS_MAX)
            return self.in_flight


def _handler_class(functions: Functions, admin_key: str, text_log: bool) -> type[BaseHTTPRequestHandler]:
    from quotaflow.local.events import http_event

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "quotaflow"
        timeout = IDLE_CONNECTION_SECONDS
        # headers and body go out in two writes: with Nagle on, the client's delayed ACK holds the body ~40 ms
        disable_nagle_algorithm = True
        server: LocalHTTPServer

        def __getattr__(self, name: str) -> Any:
            # every method reaches _serve (http.server answers an HTML 501 for any method without a do_ method)
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def _serve(self) -> None:
            started = time.perf_counter()
            parts = urlsplit(self.path)
            served_here = parts.path.startswith("/_local/") or self.command not in ROUTED_METHODS
            function = logs.SERVE if served_here else function_of(parts.path)
            body, refused = self._read_body()  # read even when refusing: unread bytes would reset the connection
            if refused is not None:
                response = refused
            elif not self.server.begin_request():
                response = _error(503, "unavailable", "the server is stopping")
                self.close_connection = True
            else:
                try:
                    response = self._respond(parts.path, parts.query, body)
                finally:
                    self.server.end_request()
            self._reply(response)
            status = int(response["statusCode"])
            logs.request(function, self.command, parts.path, status, (time.perf_counter() - started) * 1000, text_log)

        def _respond(self, path: str, query: str, body: bytes | None) -> dict[str, Any]:
            if self.command not in ROUTED_METHODS or not path.startswith("/"):
                return _error(404, "not_found", f"no route for {self.command} {path or self.path}")
            try:
                if path.startswith("/_local/"):
                    return local_route(
                        functions, admin_key, self.command, path, self.headers.get("Authorization"), body
                    )
                event = http_event(
                    self.command,
                    path,
                    query=query,
                    headers=dict(self.headers.items()),
                    body=body,
                    source_ip=self.client_address[0],
                )
                return functions(event)
            except WorkerLost:
                logs.serve_log.warning("the worker serving %s %s died", self.command, path)
                return _error(503, "unavailable", "the worker serving this request died; retry it")
            except Stopped:
                return _error(503, "unavailable", "the server is stopping")
            except Exception:  # a bug in the function: answer like API Gateway does, keep serving
                logs.serve_log.exception("the function serving %s %s failed", self.command, path)
                return _error(500, "internal", "internal error")

        def _read_body(self) -> tuple[bytes | None, dict[str, Any] | None]:
            """The body, or the answer that refuses it (the connection is closed: the rest cannot be framed)."""
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self.close_connection = True
                return None, _error(411, "invalid_request", "send the body with a Content-Length", field="body")
            raw = (self.headers.get("Content-Length") or "0").strip()
            if not raw.isdigit():
                self.close_connection = True
                return None, _error(400, "invalid_request", "Content-Length must be a whole number", field="body")
            length = int(raw)
            if length > BODY_READ_MAX:
                self.close_connection = True
                return None, _error(413, "payload_too_large", "body too large", field="body")
            return (self.rfile.read(length) if length else None), None

        def _reply(self, response: dict[str, Any]) -> None:
            payload = (response.get("body") or "").encode()
            self.send_response(int(response["statusCode"]))
            for name, value in (response.get("headers") or {}).items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """A request http.server cannot parse (bad request line, headers too long, unknown HTTP version):
            a 4xx in the API's error shape, never its HTML page."""
            status = code if 400 <= code < 500 else 400
            self.close_connection = True
            self.request_version = self.protocol_version  # unparsed, it reads "HTTP/0.9": no status line at all
            try:
                self._reply(_error(status, "invalid_request", message or "malformed request"))
            except OSError:
                return  # the client has gone

        def log_message(self, format: str, *args: Any) -> None:
            return  # serve logs each request itself (logs.request)

    return Handler


class Timers:
    """Each scheduled function on its own timer, with the real clock, as EventBridge would call it."""

    def __init__(self, functions: Functions, text_log: bool) -> None:
        self.functions = functions
        self.text_log = text_log
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, interval_s in JOBS.items():
            thread = threading.Thread(target=self._every, args=(name, interval_s), name=f"timer-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def _every(self, name: str, interval_s: float) -> None:
        from quotaflow.local.events import scheduled_event

        while not self.stopping.wait(interval_s):
            started = time.perf_counter()
            try:
                report = self.functions.job(name, scheduled_event(name, datetime.now(UTC)))
            except Exception:  # keep the timer alive; the function logged what went wrong
                logs.serve_log.exception("scheduled %s failed", name, extra={"function": name})
                continue
            logs.job(name, report, (time.perf_counter() - started) * 1000, self.text_log)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=DRAIN_SECONDS_MAX)


@dataclass
class LocalServer:
    httpd: LocalHTTPServer
    invoke: Functions
    admin_key: str
    timers: Timers | None = None
    dynamodb_endpoint: str | None = None  # None: the embedded one
    failed: bool = False  # stopped because its workers kept dying: the command exits non-zero
    lake_dir: str | None = None  # where the usage lake's NDJSON files go
    lake_scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def serve_forever(self) -> None:
        if self.timers is not None and not self.timers.threads:
            self.timers.start()
        self.httpd.serve_forever(poll_interval=0.2)

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="quotaflow-serve", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask serve_forever to return (safe from a signal handler or a request thread)."""
        self.httpd.stopping.set()
        threading.Thread(target=self.httpd.shutdown, name="quotaflow-stop", daemon=True).start()

    def fail(self) -> None:
        self.failed = True
        self.stop()

    def close(self) -> None:
        """Stop accepting, stop the timers, drain the requests in flight, then end the workers."""
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.timers is not None:
            self.timers.stop()
        left = self.httpd.drain()
        if left:
            logs.serve_log.warning("%d requests still running after %.0f s: stopping anyway", left, DRAIN_SECONDS_MAX)
        self.invoke.close()
        if self.lake_scratch is not None:
            self.lake_scratch.cleanup()


def serve_settings(
    env: Mapping[str, str] | None = None,
    *,
    dynamodb_endpoint: str | None = None,
    table_name: str | None = None,
    admin_key: str | None = None,
) -> Settings:
    """What the Lambda functions read (`Settings.from_env`), with serve's flags on top of it, an admin key made
    up when none is configured, and loopback webhooks allowed (local receivers)."""
    from quotaflow.store.connect import read_admin_key

    base = Settings.from_env(os.environ if env is None else env)
    flags = {"dynamodb_endpoint": dynamodb_endpoint, "table_name": table_name, "admin_key": admin_key}
    settings = read_admin_key(
        Settings.model_validate({**base.model_dump(), **{name: value for name, value in flags.items() if value}})
    )
    made_up = "qf_admin_" + secrets.token_urlsafe(24)
    return Settings.model_validate(
        {**settings.model_dump(), "admin_key": settings.admin_key or made_up, "allow_loopback_webhooks": True}
    )


def build_server(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    dynamodb_endpoint: str | None = None,
    table_name: str | None = None,
    admin_key: str | None = None,
    workers: int = 4,
    timers: bool = False,
    log_format: str | None = None,
    env: Mapping[str, str] | None = None,
    lake_dir: str | None = None,
) -> LocalServer:
    """Create the table if missing, bind the functions, listen. The port answers only once all of that is done.
    Settings come from the environment (`env`, default os.environ) as in Lambda; the arguments override them.
    `log_format` (`text` or `json`) sets up this process's output, as the command does; None leaves it alone
    (a server embedded in another program, such as a test). The usage lake goes to `lake_dir` (or the
    setting), else to a fresh directory removed when the server closes."""
    settings = serve_settings(env, dynamodb_endpoint=dynamodb_endpoint, table_name=table_name, admin_key=admin_key)
    lake_dir = lake_dir or settings.lake_dir
    scratch = None if lake_dir else tempfile.TemporaryDirectory(prefix="quotaflow-lake-")
    settings = settings.model_copy(update={"lake_dir": lake_dir or (scratch.name if scratch else None)})
    assert settings.admin_key is not None
    if log_format is not None:
        logs.configure(log_format)
    text_log = log_format == "text"
    functions: Functions
    if settings.dynamodb_endpoint is None:
        client, stop = start_embedded_dynamodb(settings.region)
        functions = InProcess(settings, client, on_close=stop)
    elif workers <= 1:
        functions = InProcess(settings)
    else:
        functions = WorkerPool(settings, workers, log_format)
    httpd = LocalHTTPServer((host, port), _handler_class(functions, settings.admin_key, text_log))
    server = LocalServer(
        httpd,
        functions,
        settings.admin_key,
        Timers(functions, text_log) if timers else None,
        settings.dynamodb_endpoint,
        lake_dir=settings.lake_dir,
        lake_scratch=scratch,
    )
    if isinstance(functions, WorkerPool):
        functions.on_fatal = server.fail
    return server
