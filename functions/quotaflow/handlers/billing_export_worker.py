"""The billing export's worker (SQS FIFO event source, grouped by (customer, meter) pair): each record is one
`PairTask`, exported with the tenant's Stripe key. A record whose pair could not be finished (Stripe unavailable,
a crash) is reported failed on its own (Powertools' FIFO batch processor, skipping only the rest of its group),
so SQS redelivers it after the visibility timeout; the records and watermarks make the redelivery send only what
is pending, a recorded send exactly as recorded, under the identifiers Stripe already holds. A refusal (Stripe
rejects the event) is not retried: it is counted in `ExportFailures`, which alarms."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.handlers.billing_export import emit_export_metrics
from quotaflow.handlers.runtime import Runtime, runtime
from quotaflow.ledger.periods import iso
from quotaflow.observability import logger, metrics
from quotaflow.services.billing import ExportReport, PairTask, export_pair
from quotaflow.services.billing_fanout import TenantGateways
from quotaflow.stripe_gateway import StripeGateway, preload

preload()  # this function exists to talk to Stripe: pay the SDK's import in Lambda's init phase


class PairUnfinished(Exception):
    """Some of the pair's counters could not be sent for now: the record goes back to the queue."""


_gateways: tuple[Runtime, TenantGateways] | None = None  # per container: tenants' gateways, across invocations


def _tenant_gateways(bound: Runtime) -> TenantGateways:
    global _gateways
    if _gateways is None or _gateways[0] is not bound:
        built = TenantGateways(
            bound.store,
            bound.secret_box,
            lambda api_key: StripeGateway(api_key, api_base=bound.settings.stripe_api_base),
        )
        _gateways = (bound, built)
    return _gateways[1]


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bound = runtime()
    gateways = _tenant_gateways(bound)
    batch = ExportReport(now=iso(bound.clock()), dry_run=False)

    def export_record(record: SQSRecord) -> None:
        task = PairTask.model_validate_json(record.body)
        part = export_pair(bound.store, None if task.dry_run else gateways(task), task)
        batch.add(part)
        retryable = [failure for failure in part.failed if failure.retryable]
        if retryable:
            raise PairUnfinished(f"{len(retryable)} counters of pair {task.pair_id} still pending")

    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    response = process_partial_response(event=event, record_handler=export_record, processor=processor, context=context)
    emit_export_metrics(batch)
    logger.info("export pairs", extra={"records": len(event.get("Records", [])), "events_sent": batch.events_sent})
    return dict(response)
