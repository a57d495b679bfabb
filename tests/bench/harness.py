"""What every measurement shares: the environment, an API caller that runs the real handler in this process, a
seeded tenant, and the raw floor (the store's own transactions, captured once and replayed through boto3)."""

from __future__ import annotations

import copy
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

REGION = "us-east-1"
TABLE_NAME = "quotaflow-bench"
TENANT_ID = "bench"
PLAN_ID = "plan_bench"
ADMIN_KEY = "qf_admin_bench_not_a_secret_0123"
METER = "tokens"
QUOTA_TOKENS = 10**15  # never the limit: every measurement here is of admitted work
RESERVE_TOKENS = 4_000
COMMIT_TOKENS = 800
RESERVATION_TTL_SECONDS = 300
PLAN_BODY: dict[str, Any] = {
    "name": "Bench",
    "limits": {
        METER: {"label": "Tokens", "quota": QUOTA_TOKENS, "period": "none", "enforcement": "hard"},
        "requests": {"label": "Requests", "quota": 10**9, "period": "day", "enforcement": "soft"},
    },
}
RESERVE_BODY: dict[str, Any] = {
    "lines": [{"meter": METER, "amount": RESERVE_TOKENS}],
    "ttl_seconds": RESERVATION_TTL_SECONDS,
}
COMMIT_BODY: dict[str, Any] = {"lines": [{"meter": METER, "amount": COMMIT_TOKENS}]}
# The production client's settings (quotaflow.store.connect.CLIENT_CONFIG), for the handler and the raw floor alike.
CLIENT_OPTIONS: dict[str, Any] = {
    "retries": {"mode": "standard", "total_max_attempts": 3},
    "connect_timeout": 2,
    "read_timeout": 5,
    "max_pool_connections": 32,
    "tcp_keepalive": True,
}


def prepare_environment() -> None:
    """Dummy credentials and a region for DynamoDB Local; call before anything creates a boto3 client."""
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
    )


def progress(message: str) -> None:
    print(f"  .. {message}", flush=True)


class LogSink:
    """Where the API function's request log goes during the bench: counted, not printed (Lambda ships it to
    CloudWatch Logs; its size is a cost line)."""

    def __init__(self) -> None:
        self.bytes_written = 0
        self.lines_written = 0

    def write(self, text: str) -> int:
        self.bytes_written += len(text.encode())
        self.lines_written += text.count("\n")
        return len(text)

    def flush(self) -> None:
        return None


def route_request_log(sink: LogSink) -> None:
    """Keep the request log on (INFO, as deployed) but send it to `sink`. Worker processes forked later inherit it."""
    from quotaflow.observability import logger

    logger.setLevel("INFO")
    logger.registered_handler.setStream(sink)


def bind_runtime(store: Any, *, settings: dict[str, Any] | None = None, **fields: Any) -> Any:
    """Bind the functions to `store` as a fresh container (its own caches unless `fields` hands some in)."""
    from quotaflow.config import Settings
    from quotaflow.handlers.runtime import Runtime, bind

    configured = Settings(table_name=TABLE_NAME, admin_key=ADMIN_KEY, **(settings or {}))
    runtime = Runtime(store=store, settings=configured, **fields)
    bind(runtime)
    return runtime


def new_client(endpoint: str) -> Any:
    from tests.support.ddb_local import boto3_client

    return boto3_client(endpoint, **CLIENT_OPTIONS)


class ApiError(RuntimeError):
    pass


@dataclass
class Api:
    """Calls the API function in this process with API Gateway v2 events, as Lambda would."""

    key: str

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        expect: int,
        headers: dict[str, str] | None = None,
    ) -> Any:
        from quotaflow.handlers import api
        from quotaflow.local.events import LocalContext, http_event

        sent = {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}", **(headers or {})}
        payload = json.dumps(body).encode() if body is not None else None
        response = api.handler(http_event(method, path, headers=sent, body=payload), LocalContext())
        text = response.get("body")
        if response["statusCode"] != expect:
            raise ApiError(f"{method} {path}: {response['statusCode']} (wanted {expect}): {text}")
        return json.loads(text) if text else None

    def subscribe(self, user_id: str) -> None:
        self.call("PUT", f"/v1/users/{user_id}/subscription", {"plan_id": PLAN_ID}, expect=200)

    def reserve(self, user_id: str) -> str:
        return str(
            self.call("POST", "/v1/reservations", {"user_id": user_id, **RESERVE_BODY}, expect=201)["reservation_id"]
        )

    def commit(self, reservation_id: str) -> None:
        self.call("POST", f"/v1/reservations/{reservation_id}/commit", COMMIT_BODY, expect=200)

    def cycle(self, user_id: str) -> None:
        self.commit(self.reserve(user_id))


def seed_tenant() -> Api:
    """The tenant, its secret key and the plan, through the admin and tenant routes."""
    admin = Api(ADMIN_KEY)
    created = admin.call("POST", "/v1/admin/tenants", {"tenant_id": TENANT_ID}, expect=201)
    tenant = Api(created["secret_key"])
    tenant.call("PUT", f"/v1/plans/{PLAN_ID}", PLAN_BODY, expect=200)
    return tenant


@contextmanager
def captured_transactions(client: Any) -> Iterator[list[dict[str, Any]]]:
    """The parameters of every TransactWriteItems `client` sends meanwhile, as the caller passed them."""
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(copy.deepcopy(params))

    event = "provide-client-params.dynamodb.TransactWriteItems"
    client.meta.events.register(event, record)
    try:
        yield sent
    finally:
        client.meta.events.unregister(event, record)


@dataclass
class RawCycle:
    """The reserve and commit transactions the store wrote for one cycle, as text with its ids marked, so the
    floor replays exactly the same items (same attributes, expressions and index keys) under fresh ids."""

    template: str
    user_id: str
    id_tokens: list[str] = field(default_factory=list)
    counter_item: dict[str, Any] = field(default_factory=dict)
    items_described: list[str] = field(default_factory=list)

    def instance(self, user_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(reserve params, commit params) for `user_id`, with fresh reservation and ledger entry ids."""
        text = self.template
        for token in self.id_tokens:  # before the user: a reservation id names its user
            text = text.replace(token, _fresh_like(token))
        text = text.replace(self.user_id, user_id)
        reserve, commit = json.loads(text)
        return reserve, commit

    def add_user(self, client: Any, user_id: str) -> None:
        """Give `user_id` a counter like the captured user's, so the replayed conditions hold."""
        item = json.loads(json.dumps(self.counter_item).replace(self.user_id, user_id))
        client.put_item(TableName=TABLE_NAME, Item=item)


def capture_raw_cycle(tenant: Api, store: Any, user_id: str) -> RawCycle:
    """Run one reserve+commit through the handler and keep what the store sent, ids marked for replacement."""
    from quotaflow.store import keys

    tenant.subscribe(user_id)
    tenant.cycle(user_id)  # opens the counter: the captured cycle is a steady-state one
    with captured_transactions(store.client) as sent:
        reservation_id = tenant.reserve(user_id)
        tenant.commit(reservation_id)
    if len(sent) != 2:
        raise RuntimeError(f"a warm reserve+commit sent {len(sent)} transactions, expected 2")
    for params in sent:
        params.pop("ReturnConsumedCapacity", None)
    tokens = [reservation_id]
    for params in sent:
        for write in params["TransactItems"]:
            ((_, body),) = write.items()
            sort_key = body.get("Item", {}).get("sk", {}).get("S", "")
            if sort_key.startswith(keys.LEDGER_PREFIX):
                tokens.append(sort_key.removeprefix(keys.LEDGER_PREFIX))
    counter_key = keys.counter_current(TENANT_ID, user_id, METER)
    counter = store.client.get_item(
        TableName=TABLE_NAME, Key={k: {"S": v} for k, v in counter_key.items()}, ConsistentRead=True
    )["Item"]
    return RawCycle(
        template=json.dumps(sent),
        user_id=user_id,
        id_tokens=tokens,
        counter_item=counter,
        items_described=[_describe(params) for params in sent],
    )


def _describe(params: dict[str, Any]) -> str:
    parts = []
    for write in params["TransactItems"]:
        ((operation, body),) = write.items()
        item = body.get("Item") or body.get("Key") or {}
        sort_key = item.get("sk", {}).get("S", "?")
        label = sort_key.split("#")[0] + "#" if "#" in sort_key else sort_key
        parts.append(f"{operation} {label}")
    return " + ".join(parts)


def _fresh_like(token: str) -> str:
    """A new unique id of the same shape: same prefix up to '_', same length."""
    prefix, _, rest = token.rpartition("_")
    fresh = secrets.token_hex(len(rest) // 2 + 1)[: len(rest)]
    return f"{prefix}_{fresh}" if prefix else fresh


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def timed(action: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def machine_load() -> float:
    """The 1-minute load average: other work on this 2-core machine shows up here, and in the ratios' noise."""
    try:
        with open("/proc/loadavg") as handle:
            return float(handle.read().split()[0])
    except OSError:
        return float("nan")


def python_version() -> str:
    return sys.version.split()[0]


CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: str) -> tuple[str, list[str]]:
    with open(f"/proc/{pid}/stat") as handle:
        head, _, tail = handle.read().rpartition(")")
    return head.partition("(")[2], tail.split()


def cpu_seconds_by_group() -> dict[str, float]:
    """CPU seconds used so far by this process and by its children, grouped: DynamoDB Local (the java child) and
    serve's workers (python children). Linux only; elsewhere just this process."""
    found = {"bench process": sum(os.times()[:2])}
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return found
    me = str(os.getpid())
    for pid in pids:
        try:
            command, fields = _stat_fields(pid)
        except OSError:
            continue
        if fields[1] != me:
            continue
        group = "DynamoDB Local" if command == "java" else "serve workers"
        found[group] = found.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S
    return found


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat; NaN where there is none."""
    try:
        with open("/proc/stat") as handle:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in handle.readline().split()[1:9])
    except (OSError, ValueError):
        return float("nan")
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_S
