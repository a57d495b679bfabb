"""The billing export function (EventBridge schedule, hourly; reserved concurrency 1, so one run at a time keeps
Stripe's one-call-per-customer-and-meter rule): push each billable counter's new usage to Stripe as a Billing
Meter Event. The scheduled event's `time` is the clock; `"dry_run": true` in the event reports without sending."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.handlers.runtime import runtime
from quotaflow.ledger.periods import parse_iso
from quotaflow.observability import logger, metrics
from quotaflow.services import billing
from quotaflow.stripe_gateway import StripeGateway, preload

preload()  # this function exists to talk to Stripe: pay the SDK's import in Lambda's init phase


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bound = runtime()
    now = parse_iso(event["time"]) if event.get("time") else bound.clock()
    gateways: dict[str, StripeGateway] = {}

    def gateway(api_key: str) -> StripeGateway:
        if api_key not in gateways:
            gateways[api_key] = StripeGateway(api_key, api_base=bound.settings.stripe_api_base)
        return gateways[api_key]

    report = billing.export(
        bound.store,
        bound.secret_box,
        now,
        gateway,
        dry_run=bool(event.get("dry_run")),
        progress=lambda line: logger.info(line),
    )
    # emitted on every run: the alarm fires on failures, not on silence
    metrics.add_metric(name="ExportFailures", unit=MetricUnit.Count, value=len(report.failed))
    metrics.add_metric(name="MeterEventsSent", unit=MetricUnit.Count, value=report.events_sent)
    logger.info(
        "export",
        extra={"events_sent": report.events_sent, "failed": len(report.failed), "skipped": len(report.skipped)},
    )
    return report.model_dump()
