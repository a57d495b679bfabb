"""The function registry: one line per Lambda function. Everything else (role, log group, alarms, failure queue,
trigger wiring) follows from the line, through `lambdas.QuotaflowFunction`.

Adding a function: write its handler module under `functions/quotaflow/handlers/`, then add (or enable) its line.
Entries marked `enabled=False` are wired already — trigger, permissions, alarms — and the infra tests synthesize
them, but they stay out of the deployable template until their handler module exists: flip the flag then.
`select_functions` refuses an enabled entry whose module is missing, so a deploy can never ship a function that
fails at import."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

HANDLER_PACKAGE = "quotaflow.handlers"
API_PATH = "/v1/{proxy+}"  # every v1 route; API Gateway prefers a more specific route where one exists
STRIPE_WEBHOOK_PATH = "/v1/stripe/webhook/{tenant_id}"
MEMORY_MB_DEFAULT = 1024  # Lambda CPU scales with memory; 1 GB keeps the ~1.5 s import-heavy cold start short
TIMEOUT_S_DEFAULT = 30
RETRY_ATTEMPTS_DEFAULT = 2


class Bundle(StrEnum):
    """Which extra of the quotaflow package a function ships with (`pip install "quotaflow[<extra>]"`).
    `stripe` costs ~0.7 s of import at cold start, so only the functions that talk to Stripe carry it."""

    SERVER = "server"
    STRIPE = "stripe"


class Access(Enum):
    """What a function may touch besides its own logs. Each maps to one CDK grant in `QuotaflowFunction._grant`."""

    TABLE = "read and write the table (grant_read_write_data)"
    ADMIN_KEY = "read the admin key secret"
    ALERT_BUS = "put events on the alert bus"
    TENANT_SECRETS = "encrypt and decrypt tenants' Stripe secrets with the stack's key"
    LAKE_WRITE = "put records on the usage lake's Firehose stream"
    LAKE_QUERY = "run usage queries over the lake in its Athena workgroup"
    EXPORT_QUEUE_SEND = "put billing export tasks on the export FIFO queue"


@dataclass(frozen=True)
class HttpRoute:
    method: str  # an `aws_apigatewayv2.HttpMethod` name: ANY, GET, POST, ...
    path: str


@dataclass(frozen=True)
class Every:
    """An EventBridge Scheduler rate. Invocations are asynchronous."""

    minutes: int
    # Oldest a scheduled invocation may be when Lambda gets to it (Scheduler and Lambda both accept >= 60 s).
    max_event_age_s: int = 3600


@dataclass(frozen=True)
class TableStream:
    """The table's stream (NEW_AND_OLD_IMAGES) through a Lambda event source mapping."""

    # Lambda event filter patterns (JSON); records matching none of them are dropped before any invocation.
    filters: tuple[Mapping[str, Any], ...] = ()
    # True: start at the oldest retained record (24 h) — for consumers whose work is idempotent and must not be missed.
    from_oldest: bool = False
    batch_size: int = 100


@dataclass(frozen=True)
class ExportTasks:
    """The billing export's FIFO queue (message group = customer+meter pair) through an SQS event source mapping.
    Lambda hands a group's messages to one invocation at a time, so a pair never has two Stripe calls in flight;
    `max_concurrency` bounds the pairs exported at once (a Stripe account takes 1,000 calls/s: at ~150 ms a call,
    100 invocations make ~670/s)."""

    batch_size: int = 10
    max_concurrency: int = 100
    # Past this many receives a task goes to the queue's dead-letter queue, whose depth alarms.
    max_receive_count: int = 5


Trigger = HttpRoute | Every | TableStream | ExportTasks


class Comparison(Enum):
    """Named as `aws_cloudwatch.ComparisonOperator` names them."""

    GREATER_THAN_OR_EQUAL_TO_THRESHOLD = ">="
    GREATER_THAN_THRESHOLD = ">"


@dataclass(frozen=True)
class AppMetricAlarm:
    """An alarm on a metric the function itself emits (Powertools Metrics, namespace `Quotaflow`)."""

    metric_name: str
    statistic: str
    threshold: int
    period_minutes: int
    comparison: Comparison = Comparison.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
    # True when silence itself is the failure: the metric is emitted on every run, so no data means no runs.
    missing_is_breaching: bool = False


# DynamoDB TTL deletions arrive as REMOVE records made by the DynamoDB service itself; user deletes do not.
TTL_REMOVALS: Mapping[str, Any] = {
    "eventName": ["REMOVE"],
    "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]},
}
# Counter writes (the only records that can cross an alert threshold); everything else never invokes the notifier.
COUNTER_WRITES: Mapping[str, Any] = {
    "eventName": ["INSERT", "MODIFY"],
    "dynamodb": {"NewImage": {"sk": {"S": [{"prefix": "S#CTR#"}]}}},
}
# Ledger entries as they are written (entries are never changed): the usage lake's records.
LEDGER_INSERTS: Mapping[str, Any] = {
    "eventName": ["INSERT"],
    "dynamodb": {"NewImage": {"sk": {"S": [{"prefix": "L#"}]}}},
}
EXPORT_FAILURES = AppMetricAlarm("ExportFailures", "Sum", threshold=1, period_minutes=60)
# The sweeper runs every minute; a reservation overdue by 10 minutes means it is failing or falling behind.
OLDEST_OVERDUE_RESERVATION = AppMetricAlarm(
    "OldestOverdueReservationAgeSeconds",
    "Maximum",
    threshold=600,
    period_minutes=5,
    comparison=Comparison.GREATER_THAN_THRESHOLD,
    missing_is_breaching=True,
)
TABLE_ONLY = frozenset({Access.TABLE})
# A batch of 10 pairs, each up to 3 attempts of Stripe's 10 s timeout with backoff, fits well within this.
EXPORT_WORKER_TIMEOUT_S = 120


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # construct id, PascalCase
    handler: str  # module.function under functions/
    bundle: Bundle
    trigger: Trigger
    access: frozenset[Access] = TABLE_ONLY
    memory_mb: int = MEMORY_MB_DEFAULT
    timeout_s: int = TIMEOUT_S_DEFAULT
    # Only where concurrency must be capped for someone else's limit (Stripe's per-customer+meter and rate limits).
    reserved_concurrency: int | None = None
    # Asynchronous and stream invocations only; HTTP callers retry for themselves.
    retry_attempts: int = RETRY_ATTEMPTS_DEFAULT
    alarms: tuple[AppMetricAlarm, ...] = ()
    enabled: bool = True

    @property
    def module_file(self) -> Path:
        """The handler module's path relative to the source root (`functions/`)."""
        module, _, _ = self.handler.rpartition(".")
        return Path(*module.split(".")).with_suffix(".py")


# fmt: off
FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec("Api", f"{HANDLER_PACKAGE}.api.handler", Bundle.SERVER, HttpRoute("ANY", API_PATH), access=frozenset({Access.TABLE, Access.ADMIN_KEY, Access.TENANT_SECRETS, Access.LAKE_QUERY}), timeout_s=10),  # noqa: E501
    FunctionSpec("StripeWebhook", f"{HANDLER_PACKAGE}.stripe_webhook.handler", Bundle.STRIPE, HttpRoute("POST", STRIPE_WEBHOOK_PATH), access=frozenset({Access.TABLE, Access.TENANT_SECRETS}), timeout_s=10),  # noqa: E501
    # a failed minute is redone by the next, so no retries
    FunctionSpec("Sweeper", f"{HANDLER_PACKAGE}.sweeper.handler", Bundle.SERVER, Every(minutes=1, max_event_age_s=60), access=frozenset({Access.TABLE, Access.TENANT_SECRETS}), timeout_s=50, retry_attempts=0, alarms=(OLDEST_OVERDUE_RESERVATION,)),  # noqa: E501
    FunctionSpec("Reaper", f"{HANDLER_PACKAGE}.reaper.handler", Bundle.SERVER, TableStream(filters=(TTL_REMOVALS,), from_oldest=True), retry_attempts=5),  # noqa: E501
    # the planner: one run at a time enumerates the (customer, meter) pairs onto the export queue
    FunctionSpec("BillingExport", f"{HANDLER_PACKAGE}.billing_export.handler", Bundle.STRIPE, Every(minutes=60), access=frozenset({Access.TABLE, Access.TENANT_SECRETS, Access.EXPORT_QUEUE_SEND}), timeout_s=300, reserved_concurrency=1),  # noqa: E501
    # the workers: one pair per record, FIFO groups keep Stripe's one-call-per-customer-and-meter rule
    FunctionSpec("BillingExportWorker", f"{HANDLER_PACKAGE}.billing_export_worker.handler", Bundle.STRIPE, ExportTasks(), access=frozenset({Access.TABLE, Access.TENANT_SECRETS}), timeout_s=EXPORT_WORKER_TIMEOUT_S, alarms=(EXPORT_FAILURES,)),  # noqa: E501
    # the lake is at least once (readers dedupe by entry_id), so retries are safe
    FunctionSpec("LakeWriter", f"{HANDLER_PACKAGE}.lake_writer.handler", Bundle.SERVER, TableStream(filters=(LEDGER_INSERTS,), from_oldest=True), access=frozenset({Access.LAKE_WRITE}), memory_mb=256, retry_attempts=5),  # noqa: E501
    FunctionSpec("Notifier", f"{HANDLER_PACKAGE}.notifier.handler", Bundle.SERVER, TableStream(filters=(COUNTER_WRITES,)), access=frozenset({Access.TABLE, Access.ALERT_BUS, Access.TENANT_SECRETS}), retry_attempts=5),  # noqa: E501
)
# fmt: on


class MissingHandlerModule(RuntimeError):
    pass


def select_functions(specs: Iterable[FunctionSpec], source_root: Path) -> tuple[FunctionSpec, ...]:
    """The enabled entries, after checking each one's handler module exists under `source_root`."""
    enabled = tuple(spec for spec in specs if spec.enabled)
    missing = [
        f"{spec.name} ({spec.module_file})" for spec in enabled if not (source_root / spec.module_file).is_file()
    ]
    if missing:
        raise MissingHandlerModule(f"enabled functions without a handler module under {source_root}: {missing}")
    return enabled


def wire_all(specs: Iterable[FunctionSpec]) -> tuple[FunctionSpec, ...]:
    """Every entry enabled, handler modules or not: what the infra tests synthesize to prove the planned wiring."""
    return tuple(replace(spec, enabled=True) for spec in specs)
