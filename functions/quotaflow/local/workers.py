"""Where `serve` runs the functions: in this process, or in a supervised pool of worker processes.

Concurrency: Powertools' resolver keeps the current event in class state, so one process handles one request
at a time, exactly like a Lambda container. Embedded mode (moto in memory, not atomic under threads) runs
one in-process worker; with `--dynamodb-endpoint` a pool of worker processes serves requests in parallel.
A worker that dies is replaced (its request, which may or may not have taken effect, answers 503); workers
that keep dying stop the server with an error instead of leaving it half alive."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.config import Settings
from quotaflow.local import logs

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
Job = Callable[[dict[str, Any]], dict[str, Any]]
WEBHOOK_PREFIX = "/v1/stripe/webhook/"  # routed to its own function, as API Gateway does in AWS
POOL_REPLACEMENTS_MAX = 5  # within POOL_REPLACEMENT_WINDOW_S; past it the server stops with an error
POOL_REPLACEMENT_WINDOW_S = 60.0
PARENT_CHECK_INTERVAL_S = 1.0  # how soon a worker notices that `serve` itself is gone


class WorkerLost(Exception):
    """The worker process serving a request died: the request may or may not have taken effect."""


class Stopped(Exception):
    """The functions are closed (the server is stopping)."""


def function_of(path: str) -> str:
    """Which function serves a path: the Stripe webhook has its own, as in AWS."""
    return "stripe-webhook" if path.startswith(WEBHOOK_PREFIX) else "api"


def _context(function: str) -> LambdaContext:
    from quotaflow.local.events import LocalContext

    return cast(LambdaContext, LocalContext(function_name=f"quotaflow-{function}"))


def _bind_api(settings: Settings, client: Any | None = None) -> tuple[Invoke, Any]:
    """Bind every function of this process to the table; returns the API's invoker and the DynamoDB client."""
    from quotaflow.handlers import api
    from quotaflow.handlers.runtime import Runtime, bind
    from quotaflow.store.connect import connect
    from quotaflow.store.table import Store

    store = Store(client, settings.table_name) if client is not None else connect(settings)
    store.create_table()
    bind(Runtime(store=store, settings=settings))

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        if function_of(str(event.get("rawPath", ""))) == "stripe-webhook":
            from quotaflow.handlers import stripe_webhook

            return stripe_webhook.handler(event, _context("stripe-webhook"))
        return api.handler(event, _context("api"))

    return invoke, store.client


def _bind_jobs(settings: Settings, client: Any) -> dict[str, Job]:
    """Each scheduled function's handler, called in this process (bound to the same table as the API). The
    notifier and the lake writer also get the table's stream, polled once for both: in AWS each has its own event
    source mapping, and each sees every record."""
    import boto3

    from quotaflow.handlers import billing_export, lake_writer, notifier, sweeper
    from quotaflow.local.streams import StreamPoller
    from quotaflow.store.connect import LOCAL_CLIENT_CONFIG

    streams = boto3.client(
        "dynamodbstreams",
        region_name=settings.region,
        endpoint_url=settings.dynamodb_endpoint,
        config=LOCAL_CLIENT_CONFIG,
    )
    poller = StreamPoller(client, streams, settings.table_name)

    def notify(event: dict[str, Any]) -> dict[str, Any]:
        records = poller.poll()
        written = notifier.handler({"Records": records}, _context("notifier")) if records else {}
        if records:
            lake_writer.handler({"Records": records}, _context("lake-writer"))
        return {"stream_records": len(records), **written, **notifier.handler(event, _context("notifier"))}

    return {
        "sweeper": lambda event: sweeper.handler(event, _context("sweeper")),
        "notifier": notify,
        "billing-export": lambda event: billing_export.handler(event, _context("billing-export")),
    }


def start_embedded_dynamodb(region: str = "us-east-1") -> tuple[Any, Callable[[], None]]:
    """moto's DynamoDB, in this process's memory: a boto3 client bound to it, and how to stop it."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": region,
    }.items():
        os.environ.setdefault(name, value)
    from moto import mock_aws

    from quotaflow.store.connect import LOCAL_CLIENT_CONFIG

    mock = mock_aws()
    mock.start()
    import boto3

    return boto3.client("dynamodb", region_name=region, config=LOCAL_CLIENT_CONFIG), mock.stop


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


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_INTERVAL_S)
    os._exit(1)  # `serve` died without stopping us (SIGKILL): a worker never outlives its server


def _worker_init(settings: Settings, log_format: str | None) -> None:
    # Ctrl-C reaches the whole process group: the server decides when workers stop, after draining.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the server's handler, inherited through fork
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    if log_format is not None:
        logs.configure(log_format)
    global _worker_invoke
    _worker_invoke, _ = _bind_api(settings)


def _worker_call(event: dict[str, Any]) -> dict[str, Any]:
    assert _worker_invoke is not None
    return _worker_invoke(event)


class WorkerPool:
    """N worker processes, each one "container" with its own caches, for a real DynamoDB endpoint."""

    def __init__(self, settings: Settings, workers: int, log_format: str | None) -> None:
        # create the table once, before the workers start; scheduled jobs run in this process
        _, bound_client = _bind_api(settings)
        self._jobs = _bind_jobs(settings, bound_client)
        self._jobs_lock = threading.Lock()
        self._settings, self._workers, self._log_format = settings, workers, log_format
        self.on_fatal: Callable[[], None] = lambda: None  # the server's stop, set once it exists
        self._lock = threading.Lock()
        self._replaced_at: deque[float] = deque(maxlen=POOL_REPLACEMENTS_MAX)
        self._closed = False
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=self._workers, initializer=_worker_init, initargs=(self._settings, self._log_format)
        )
        for future in [pool.submit(os.getpid) for _ in range(self._workers)]:
            future.result()
        return pool

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """A new pool for one whose worker died (the executor has already ended the others)."""
        with self._lock:
            if self._closed:
                raise Stopped
            if self._pool is not broken:
                return self._pool  # another request replaced it first
            now = time.monotonic()
            if (
                len(self._replaced_at) == POOL_REPLACEMENTS_MAX
                and now - self._replaced_at[0] < POOL_REPLACEMENT_WINDOW_S
            ):
                logs.serve_log.error(
                    "workers died %d times in %.0f s: stopping", POOL_REPLACEMENTS_MAX, POOL_REPLACEMENT_WINDOW_S
                )
                self._closed = True
                self.on_fatal()
                raise Stopped
            self._replaced_at.append(now)
            broken.shutdown(wait=False, cancel_futures=True)
            logs.serve_log.warning("a worker process died: starting %d new workers", self._workers)
            self._pool = self._start()
            return self._pool

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        pool = self._pool
        try:
            future = pool.submit(_worker_call, event)
        except BrokenProcessPool:
            pool = self._replace(pool)
            future = pool.submit(_worker_call, event)  # it never ran: run it now
        except RuntimeError:  # "cannot schedule new futures after shutdown"
            raise Stopped from None
        try:
            return future.result()
        except BrokenProcessPool:
            self._replace(pool)
            raise WorkerLost from None

    def job(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        with self._jobs_lock:  # the stream poller keeps position: one job at a time in this process
            return self._jobs[name](event)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
