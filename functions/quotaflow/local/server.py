"""A small HTTP server that turns each request into an API Gateway v2 event for the API function.

Concurrency: Powertools' resolver keeps the current event in class state, so one process handles one request
at a time, exactly like a Lambda container. Embedded mode (moto in memory, not atomic under threads) runs
one in-process worker; with `--dynamodb-endpoint` a pool of worker processes serves requests in parallel."""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.config import Settings
from quotaflow.ledger.periods import parse_iso

BODY_READ_MAX = 1024 * 1024  # the API refuses bodies over 64 KiB with 413; past this the server stops reading
Invoke = Callable[[dict[str, Any]], dict[str, Any]]
# The scheduled functions `serve` runs on timers and on POST /_local/run/{job}: name -> seconds between runs
JOBS: dict[str, float] = {"sweeper": 5.0, "notifier": 2.0, "billing-export": 3600.0}
Job = Callable[[dict[str, Any]], dict[str, Any]]


def _bind_jobs(settings: Settings, client: Any) -> dict[str, Job]:
    """Each scheduled function's handler, called in this process (bound to the same table as the API). The
    notifier and the lake writer also get the table's stream, polled once for both: in AWS each has its own event
    source mapping, and each sees every record."""
    import boto3

    from quotaflow.handlers import billing_export, lake_writer, notifier, sweeper
    from quotaflow.local.events import LocalContext
    from quotaflow.local.streams import StreamPoller
    from quotaflow.store.connect import CLIENT_CONFIG

    def context(name: str) -> LambdaContext:
        return cast(LambdaContext, LocalContext(function_name=f"quotaflow-{name}"))

    streams = boto3.client(
        "dynamodbstreams", region_name=settings.region, endpoint_url=settings.dynamodb_endpoint, config=CLIENT_CONFIG
    )
    poller = StreamPoller(client, streams, settings.table_name)

    def notify(event: dict[str, Any]) -> dict[str, Any]:
        records = poller.poll()
        written = notifier.handler({"Records": records}, context("notifier")) if records else {}
        if records:
            lake_writer.handler({"Records": records}, context("lake-writer"))
        return {"stream_records": len(records), **written, **notifier.handler(event, context("notifier"))}

    return {
        "sweeper": lambda event: sweeper.handler(event, context("sweeper")),
        "notifier": notify,
        "billing-export": lambda event: billing_export.handler(event, context("billing-export")),
    }


WEBHOOK_PREFIX = "/v1/stripe/webhook/"  # routed to its own function, as API Gateway does in AWS


def _bind_api(settings: Settings, client: Any | None = None) -> tuple[Invoke, Any]:
    """Bind every function of this process to the table; returns the API's invoker and the DynamoDB client."""
    from quotaflow.handlers import api
    from quotaflow.handlers.runtime import Runtime, bind
    from quotaflow.local.events import LocalContext
    from quotaflow.store.connect import connect
    from quotaflow.store.table import Store

    store = Store(client, settings.table_name) if client is not None else connect(settings)
    store.create_table()
    bind(Runtime(store=store, settings=settings))

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        context = cast(LambdaContext, LocalContext())
        if str(event.get("rawPath", "")).startswith(WEBHOOK_PREFIX):
            from quotaflow.handlers import stripe_webhook

            return stripe_webhook.handler(event, context)
        return api.handler(event, context)

    return invoke, store.client


class InProcess:
    """One worker in this process: requests are served one at a time (moto needs that anyway)."""

    def __init__(
        self, settings: Settings, client: Any | None = None, on_close: Callable[[], None] | None = None
    ) -> None:
        self._invoke, bound_client = _bind_api(settings, client)
        self._jobs = _bind_jobs(settings, bound_client)
        self._lock = threading.Lock()
        self._on_close = on_close

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return self._invoke(event)

    def job(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return self._jobs[name](event)

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()


_worker_invoke: Invoke | None = None


def _worker_init(settings: Settings) -> None:
    global _worker_invoke
    _worker_invoke, _ = _bind_api(settings)


def _worker_call(event: dict[str, Any]) -> dict[str, Any]:
    assert _worker_invoke is not None
    return _worker_invoke(event)


class WorkerPool:
    """N worker processes, each one "container" with its own caches, for a real DynamoDB endpoint."""

    def __init__(self, settings: Settings, workers: int) -> None:
        # create the table once, before the workers start; scheduled jobs run in this process
        _, bound_client = _bind_api(settings)
        self._jobs = _bind_jobs(settings, bound_client)
        self._jobs_lock = threading.Lock()
        self._pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=(settings,))
        for future in [self._pool.submit(os.getpid) for _ in range(workers)]:
            future.result()

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        return self._pool.submit(_worker_call, event).result()

    def job(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        with self._jobs_lock:  # the stream poller keeps position: one job at a time in this process
            return self._jobs[name](event)

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def start_embedded_dynamodb() -> tuple[Any, Callable[[], None]]:
    """moto's DynamoDB, in this process's memory: a boto3 client bound to it, and how to stop it."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    from moto import mock_aws

    from quotaflow.store.connect import CLIENT_CONFIG

    mock = mock_aws()
    mock.start()
    import boto3

    return boto3.client("dynamodb", region_name="us-east-1", config=CLIENT_CONFIG), mock.stop


def _json(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def _error(status: int, code: str, message: str, **details: Any) -> dict[str, Any]:
    return _json(status, {"error": {"code": code, "message": message, "details": details}})


def local_route(
    functions: InProcess | WorkerPool,
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


def _handler_class(functions: InProcess | WorkerPool, admin_key: str) -> type[BaseHTTPRequestHandler]:
    from quotaflow.local.events import http_event

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "quotaflow"
        # headers and body go out in two writes: with Nagle on, the client's delayed ACK holds the body ~40 ms
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > BODY_READ_MAX:
                self._reply(
                    {
                        "statusCode": 413,
                        "headers": {"Content-Type": "application/json"},
                        "body": json.dumps(
                            {"error": {"code": "payload_too_large", "message": "body too large", "details": {}}}
                        ),
                    },
                    close=True,
                )
                return
            body = self.rfile.read(length) if length else None
            parts = urlsplit(self.path)
            if parts.path.startswith("/_local/"):
                self._reply(
                    local_route(functions, admin_key, self.command, parts.path, self.headers.get("Authorization"), body)
                )
                return
            event = http_event(
                self.command,
                parts.path,
                query=parts.query,
                headers=dict(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
            )
            try:
                response = functions(event)
            except Exception:  # a bug in the function: answer like API Gateway does, keep serving
                logging.getLogger("quotaflow.serve").exception("the API function failed")
                response = {
                    "statusCode": 500,
                    "headers": {"Content-Type": "application/json"},
                    "body": json.dumps({"error": {"code": "internal", "message": "internal error", "details": {}}}),
                }
            self._reply(response)

        def _reply(self, response: dict[str, Any], close: bool = False) -> None:
            payload = (response.get("body") or "").encode()
            self.send_response(int(response["statusCode"]))
            for name, value in (response.get("headers") or {}).items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(payload)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return  # the API function logs every request as structured JSON

    return Handler


class Timers:
    """Each scheduled function on its own timer, with the real clock, as EventBridge would call it."""

    def __init__(self, functions: InProcess | WorkerPool) -> None:
        self.functions = functions
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
            try:
                self.functions.job(name, scheduled_event(name, datetime.now(UTC)))
            except Exception:  # keep the timer alive; the function logged what went wrong
                logging.getLogger("quotaflow.serve").exception("scheduled %s failed", name)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)


@dataclass
class LocalServer:
    httpd: ThreadingHTTPServer
    invoke: InProcess | WorkerPool
    admin_key: str
    timers: Timers | None = None
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

    def close(self) -> None:
        if self.timers is not None:
            self.timers.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.invoke.close()
        if self.lake_scratch is not None:
            self.lake_scratch.cleanup()


def build_server(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    dynamodb_endpoint: str | None = None,
    table_name: str = "quotaflow",
    admin_key: str | None = None,
    workers: int = 4,
    timers: bool = False,
    lake_dir: str | None = None,
) -> LocalServer:
    """Create the table if missing, bind the API, listen. The port answers only once all of that is done.
    The usage lake goes to `lake_dir`, else to a fresh directory removed when the server closes."""
    admin_key = admin_key or os.environ.get("QUOTAFLOW_ADMIN_KEY") or "qf_admin_" + secrets.token_urlsafe(24)
    scratch = None if lake_dir else tempfile.TemporaryDirectory(prefix="quotaflow-lake-")
    settings = Settings(
        table_name=table_name,
        dynamodb_endpoint=dynamodb_endpoint,
        admin_key=admin_key,
        allow_loopback_webhooks=True,
        lake_dir=lake_dir or (scratch.name if scratch else None),
    )
    invoke: InProcess | WorkerPool
    if dynamodb_endpoint is None:
        client, stop = start_embedded_dynamodb()
        invoke = InProcess(settings, client, on_close=stop)
    elif workers <= 1:
        invoke = InProcess(settings)
    else:
        invoke = WorkerPool(settings, workers)
    httpd = ThreadingHTTPServer((host, port), _handler_class(invoke, admin_key))
    httpd.daemon_threads = True
    return LocalServer(httpd, invoke, admin_key, Timers(invoke) if timers else None, settings.lake_dir, scratch)
