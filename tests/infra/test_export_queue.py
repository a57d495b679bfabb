"""The billing export's fan-out in the template: a FIFO queue grouped by pair between the planner and the workers,
with a dead-letter queue, a bounded consumer that reports partial batch failures, and least-privilege roles."""

from __future__ import annotations

from typing import Any

import pytest

from quotaflow.config import Settings
from quotaflow_infra.export_queue import RETENTION_HOURS, VISIBILITY_TIMEOUT_S
from quotaflow_infra.functions import EXPORT_WORKER_TIMEOUT_S, FUNCTIONS, ExportTasks
from quotaflow_infra.lambdas import ENV_EXPORT_QUEUE_URL
from tests.infra.conftest import Synth
from tests.infra.test_stack import actions_of, function_id, logical_id, statements

pytestmark = pytest.mark.infra
WORKER = next(spec for spec in FUNCTIONS if isinstance(spec.trigger, ExportTasks))


def resources_of(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def queue(synth: Synth, path: str) -> dict[str, Any]:
    properties: dict[str, Any] = synth.resources("AWS::SQS::Queue")[logical_id(synth, path)]["Properties"]
    return properties


def test_the_export_queue_is_fifo_per_pair_and_parks_what_keeps_failing(wired: Synth) -> None:
    tasks = queue(wired, "ExportQueue/Tasks")
    assert tasks["FifoQueue"] is True
    assert (tasks["DeduplicationScope"], tasks["FifoThroughputLimit"]) == ("messageGroup", "perMessageGroupId")
    assert tasks["SqsManagedSseEnabled"] is True
    assert tasks["VisibilityTimeout"] == VISIBILITY_TIMEOUT_S >= 6 * EXPORT_WORKER_TIMEOUT_S
    assert tasks["MessageRetentionPeriod"] == RETENTION_HOURS * 3600 < 24 * 3600, "inside Stripe's identifier window"
    assert tasks["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [logical_id(wired, "ExportQueue/DeadLetters"), "Arn"]},
        "maxReceiveCount": WORKER.trigger.max_receive_count if isinstance(WORKER.trigger, ExportTasks) else None,
    }
    assert queue(wired, "ExportQueue/DeadLetters")["FifoQueue"] is True


def test_the_worker_consumes_the_queue_bounded_and_reports_failures_per_record(wired: Synth) -> None:
    assert WORKER.name == "BillingExportWorker" and WORKER.handler.endswith("billing_export_worker.handler")
    (mapping,) = (
        resource["Properties"]
        for resource in wired.resources("AWS::Lambda::EventSourceMapping").values()
        if resource["Properties"]["FunctionName"] == {"Ref": function_id(wired, WORKER.name)}
    )
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [logical_id(wired, "ExportQueue/Tasks"), "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 100}
    functions = wired.resources("AWS::Lambda::Function")
    assert functions[function_id(wired, WORKER.name)]["Properties"]["Timeout"] == EXPORT_WORKER_TIMEOUT_S


def test_only_the_planner_may_put_tasks_on_the_queue(wired: Synth) -> None:
    queue_arn = {"Fn::GetAtt": [logical_id(wired, "ExportQueue/Tasks"), "Arn"]}
    senders = {
        name
        for name in (spec.name for spec in FUNCTIONS)
        if any(
            "sqs:SendMessage" in actions_of(statement) and queue_arn in resources_of(statement)
            for statement in statements(wired, f"{name}/Role")
        )
    }
    assert senders == {"BillingExport"}
    planner = wired.resources("AWS::Lambda::Function")[function_id(wired, "BillingExport")]["Properties"]
    assert planner["Environment"]["Variables"][ENV_EXPORT_QUEUE_URL] == {"Ref": logical_id(wired, "ExportQueue/Tasks")}
    assert Settings.from_env({ENV_EXPORT_QUEUE_URL: "https://sqs/q.fifo"}).export_queue_url == "https://sqs/q.fifo"
    worker_receives = [
        statement
        for statement in statements(wired, f"{WORKER.name}/Role")
        if "sqs:ReceiveMessage" in actions_of(statement)
    ]
    assert [resources_of(statement) for statement in worker_receives] == [[queue_arn]]


def test_the_dead_letter_queue_depth_alarms(wired: Synth) -> None:
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in wired.resources("AWS::CloudWatch::Alarm").values()}
    depth = alarms["quotaflow-dev-billing-export-worker-failures"]
    assert depth["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [logical_id(wired, "ExportQueue/DeadLetters"), "QueueName"]}}
    ]
