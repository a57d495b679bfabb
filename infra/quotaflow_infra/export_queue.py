"""The billing export's FIFO queue: the planner puts one task per (customer, meter) pair on it, grouped by pair, and
the worker function consumes it. A task that keeps failing ends in the dead-letter queue (its depth alarms); the
next hourly plan re-creates the work anyway, and the watermarks make any resend bill once."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from quotaflow_infra.functions import EXPORT_WORKER_TIMEOUT_S, ExportTasks
from quotaflow_infra.lambdas import acknowledge

# AWS's guidance for an SQS event source: at least six times the function's timeout, so a message is not handed
# out again while a slow invocation (with its own retries) may still hold it.
VISIBILITY_TIMEOUT_S = 6 * EXPORT_WORKER_TIMEOUT_S
# Shorter than Stripe's 24 h identifier window and longer than the hourly plan: a task older than this is stale.
RETENTION_HOURS = 4
DEAD_LETTER_RETENTION_DAYS = 14  # SQS maximum: time to read a failure before it is gone


class ExportQueue(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, tasks: ExportTasks) -> None:
        super().__init__(scope, construct_id)
        # SQS-managed encryption: tasks carry ids (tenant, user, customer, meter), never a secret or an amount.
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            fifo=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(DEAD_LETTER_RETENTION_DAYS),
        )
        self.queue = sqs.Queue(
            self,
            "Tasks",
            fifo=True,
            # high-throughput FIFO: deduplication and throughput limits per message group (= pair), not per queue
            deduplication_scope=sqs.DeduplicationScope.MESSAGE_GROUP,
            fifo_throughput_limit=sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(VISIBILITY_TIMEOUT_S),
            retention_period=Duration.hours(RETENTION_HOURS),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=tasks.max_receive_count),
        )
        acknowledge(
            self.dead_letters,
            {
                "AwsSolutions-SQS3": "This queue is itself the export queue's dead-letter queue; nothing consumes "
                "it, its depth alarms.",
            },
        )
