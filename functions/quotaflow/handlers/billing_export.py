"""The billing export's planner (EventBridge schedule, hourly; reserved concurrency 1, one plan at a time): every
(customer, meter) pair with a Stripe customer, put on the export FIFO queue (`QUOTAFLOW_EXPORT_QUEUE_URL`) for
`billing_export_worker`, grouped by pair. Without a queue (`serve`, tests) the same planner and worker run here,
on a bounded thread pool with a lock per pair. The scheduled event's `time` is the clock; `"dry_run": true` in the
event reports without sending."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.handlers.runtime import runtime
from quotaflow.ledger.periods import iso, parse_iso
from quotaflow.observability import logger, metrics
from quotaflow.services import billing_fanout, billing_queue
from quotaflow.services.billing import ExportReport
from quotaflow.services.billing_plan import plan
from quotaflow.store.connect import sqs_client
from quotaflow.stripe_gateway import StripeGateway


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bound = runtime()
    now = parse_iso(event["time"]) if event.get("time") else bound.clock()
    dry_run = bool(event.get("dry_run"))
    queue_url = bound.settings.export_queue_url
    if queue_url:
        report = ExportReport(now=iso(now), dry_run=dry_run)
        tasks = plan(bound.store, bound.secret_box, now, report)
        report.enqueued = billing_queue.enqueue(sqs_client(bound.settings), queue_url, tasks)
        metrics.add_metric(name="ExportPairsEnqueued", unit=MetricUnit.Count, value=report.enqueued)
    else:
        report = billing_fanout.export(
            bound.store,
            bound.secret_box,
            now,
            lambda api_key: StripeGateway(api_key, api_base=bound.settings.stripe_api_base),
            dry_run=dry_run,
            progress=lambda line: logger.info(line),
        )
        emit_export_metrics(report)
    logger.info(
        "export",
        extra={
            "pairs": report.pairs,
            "enqueued": report.enqueued,
            "events_sent": report.events_sent,
            "failed": len(report.failed),
            "skipped": len(report.skipped),
        },
    )
    return report.model_dump()


def emit_export_metrics(report: ExportReport) -> None:
    # emitted on every run: the alarm fires on failures, not on silence
    metrics.add_metric(name="ExportFailures", unit=MetricUnit.Count, value=len(report.failed))
    metrics.add_metric(name="MeterEventsSent", unit=MetricUnit.Count, value=report.events_sent)
