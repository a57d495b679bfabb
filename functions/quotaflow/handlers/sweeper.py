"""The sweeper function (EventBridge schedule, every minute): expires overdue reservations through the expiry
index and reports what it did. The scheduled event's `time` is the clock, so a rerun or a local trigger with
an explicit time behaves exactly as the schedule would have."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.handlers.runtime import runtime
from quotaflow.ledger.periods import parse_iso
from quotaflow.observability import logger, metrics
from quotaflow.services import alerts, expiry


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bound = runtime()
    now = parse_iso(event["time"]) if event.get("time") else bound.clock()
    report = expiry.sweep(bound.store, now, bound.cache)
    redelivered = alerts.retry_due(bound.store, bound.secret_box, now, alerts.http_post)  # webhook retries, too
    metrics.add_metric(name="ReservationsExpired", unit=MetricUnit.Count, value=report.expired)
    # emitted on every run, 0 when nothing is overdue: a missing datapoint means the sweeper is not running
    metrics.add_metric(
        name="OldestOverdueReservationAgeSeconds", unit=MetricUnit.Seconds, value=report.oldest_overdue_age_seconds
    )
    logger.info("sweep", extra={**report.model_dump(), "alerts_redelivered": redelivered})
    return {**report.model_dump(), "alerts_redelivered": redelivered}
