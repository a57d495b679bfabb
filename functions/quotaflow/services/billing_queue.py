"""The export queue in AWS: an SQS FIFO queue whose message group is the (customer, meter) pair, so SQS and Lambda
never hand two tasks of one pair to workers at once — Stripe's one-call-per-customer-and-meter rule, kept by the
engine. The planner puts tasks on it here; `handlers/billing_export_worker.py` takes them off."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from quotaflow.services.billing import PairTask

SEND_BATCH_MAX = 10  # SendMessageBatch's limit
SEND_ATTEMPTS_MAX = 3  # per batch, for the entries SQS did not take


class EnqueueFailed(Exception):
    """Some tasks could not be put on the queue after every attempt: the run failed (a rerun re-plans them)."""


def deduplication_id(task: PairTask) -> str:
    """The same task of the same run is one message, however often the planner is retried within SQS's 5-minute
    deduplication window. Subjects are part of it: a pair split into several tasks has several messages."""
    subjects = ",".join(f"{subject.user_id}:{subject.meter}" for subject in task.subjects)
    return hashlib.sha256(f"{task.pair_id}|{task.now}|{task.dry_run}|{subjects}".encode()).hexdigest()


def enqueue(sqs: Any, queue_url: str, tasks: Iterable[PairTask]) -> int:
    """Put every task on the queue, ten per call; returns how many."""
    sent = 0
    for batch in _batches(iter(tasks)):
        entries = {
            str(index): {
                "Id": str(index),
                "MessageBody": task.model_dump_json(),
                "MessageGroupId": task.pair_id,
                "MessageDeduplicationId": deduplication_id(task),
            }
            for index, task in enumerate(batch)
        }
        for _ in range(SEND_ATTEMPTS_MAX):
            answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=list(entries.values()))
            for done in answer.get("Successful", []):
                entries.pop(done["Id"])
            if not entries:
                break
        if entries:
            raise EnqueueFailed(f"SQS refused {len(entries)} export tasks after {SEND_ATTEMPTS_MAX} attempts")
        sent += len(batch)
    return sent


def _batches(tasks: Iterator[PairTask]) -> Iterator[list[PairTask]]:
    while batch := list(islice(tasks, SEND_BATCH_MAX)):
        yield batch
