"""The billing export fanned out by (customer, meter) pair, against the loopback Stripe server through the real
`stripe` SDK: pairs run in parallel, one pair never has two calls in flight, a crash in the middle resumes without
double billing, and in AWS's shape the planner's FIFO queue (moto's SQS) feeds the worker Lambda, whose partial
batch failures name only the records to redeliver."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.handlers import billing_export, billing_export_worker
from quotaflow.handlers.runtime import Runtime, bind
from quotaflow.local.events import LocalContext, scheduled_event
from quotaflow.services import billing_fanout
from quotaflow.store.table import Store
from quotaflow.stripe_gateway import MeterEvent, StripeGateway
from tests.api.conftest import Api, bind_with_stripe
from tests.conftest import Clock
from tests.support.stripe_stub import StripeStub

pytestmark = pytest.mark.unit
EXPORT = cast(LambdaContext, LocalContext(function_name="quotaflow-billing-export"))
WORKER = cast(LambdaContext, LocalContext(function_name="quotaflow-billing-export-worker"))
SOLO_CUSTOMERS = [f"cus_solo{index:02d}" for index in range(12)]
SHARED_CUSTOMER = "cus_shared"  # several users bill to it: one pair, many counters
SHARED_USERS = [f"family{index}" for index in range(5)]
EVENT_NAME = "llm_tokens"


@pytest.fixture
def stub(clock: Clock) -> Iterator[StripeStub]:
    # Overlapping calls for one customer+meter are counted (in_flight_max_by_slot), not refused with 429.
    with StripeStub(now_epoch_s=int(clock().timestamp()), one_call_per_customer_meter=False) as running:
        running.add_customers(SHARED_CUSTOMER, *SOLO_CUSTOMERS)
        running.add_meters(EVENT_NAME)
        yield running


@pytest.fixture
def runtime(moto_store: Store, clock: Clock, stub: StripeStub) -> Runtime:
    return bind_with_stripe(moto_store, clock, stub.url)


@pytest.fixture
def billed(qf: Api, stub: StripeStub) -> Api:
    """12 users with a customer each, 5 users sharing one customer; each has used 100 + its index tokens."""
    plan = {
        "name": "Post-paid",
        "limits": {"tokens": {"quota": 10**9, "period": "month", "enforcement": "none"}},
        "stripe": {"meter_event_names": {"tokens": EVENT_NAME}},
    }
    assert qf("PUT", "/v1/plans/plan_metered", plan).status == 200
    config = {"webhook_secret": "whsec_unused_0001", "api_key": stub.api_key}
    assert qf("PUT", "/v1/stripe/config", config).status == 200
    subscribers = [(f"solo{index:02d}", customer) for index, customer in enumerate(SOLO_CUSTOMERS)]
    subscribers += [(user, SHARED_CUSTOMER) for user in SHARED_USERS]
    for index, (user, customer) in enumerate(subscribers):
        body = {"plan_id": "plan_metered", "stripe_customer_id": customer}
        assert qf("PUT", f"/v1/users/{user}/subscription", body).status == 200
        use(qf, user, 100 + index)
    return qf


def use(qf: Api, user: str, amount: int) -> None:
    assert qf("POST", "/v1/events", {"user_id": user, "lines": [{"meter": "tokens", "amount": amount}]}).status == 201


def expected_usage() -> dict[str, int]:
    usage = {customer: 100 + index for index, customer in enumerate(SOLO_CUSTOMERS)}
    usage[SHARED_CUSTOMER] = sum(100 + len(SOLO_CUSTOMERS) + index for index in range(len(SHARED_USERS)))
    return usage


def billed_per_customer(stub: StripeStub) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for event in stub.meter_events:
        totals[event["payload"]["stripe_customer_id"]] += int(event["payload"]["value"])
    return dict(totals)


def assert_each_identifier_billed_once(stub: StripeStub) -> None:
    identifiers = Counter(event["identifier"] for event in stub.meter_events)
    assert identifiers and max(identifiers.values()) == 1


def run(clock: Clock) -> dict[str, Any]:
    return billing_export.handler(scheduled_event("billing-export", clock()), EXPORT)


def test_many_pairs_are_exported_in_parallel(billed: Api, clock: Clock, stub: StripeStub) -> None:
    stub.gather_meter_events(8)  # the first 8 calls wait until all 8 are in flight together
    report = run(clock)
    assert not stub.gather_broken, "8 pairs never had their calls in flight at once"
    assert stub.in_flight_max >= 8
    assert (report["pairs"], report["events_sent"], report["failed"]) == (13, 17, [])
    assert billed_per_customer(stub) == expected_usage()


def test_one_pair_never_has_two_calls_in_flight_even_across_overlapping_runs(
    billed: Api, clock: Clock, stub: StripeStub
) -> None:
    stub.latency_seconds = 0.02  # each call holds its customer+meter slot a while
    reports: list[dict[str, Any]] = []
    runs = [threading.Thread(target=lambda: reports.append(run(clock))) for _ in range(2)]
    for each in runs:
        each.start()
    for each in runs:
        each.join()
    assert stub.in_flight_max_by_slot[(SHARED_CUSTOMER, EVENT_NAME)] == 1
    assert set(stub.in_flight_max_by_slot.values()) == {1}
    assert sum(report["events_sent"] for report in reports) == 17, "the later run found each pair done"
    assert_each_identifier_billed_once(stub)
    assert billed_per_customer(stub) == expected_usage()


class CrashingGateway(StripeGateway):
    """A real gateway whose worker dies right after every third event Stripe accepted, before the watermark
    moves: the crash a Lambda timeout or an out-of-memory kill would leave (injected here; nothing else is)."""

    def __init__(self, api_key: str, api_base: str) -> None:
        super().__init__(api_key, api_base=api_base)
        self.accepted = 0
        self._lock = threading.Lock()

    def send_meter_event(self, event: MeterEvent) -> None:
        super().send_meter_event(event)
        with self._lock:
            self.accepted += 1
            crash = self.accepted % 3 == 0
        if crash:
            raise RuntimeError("worker killed after Stripe accepted the event")


def test_a_crash_in_the_middle_resumes_without_double_billing(
    billed: Api, runtime: Runtime, clock: Clock, stub: StripeStub
) -> None:
    crashing = CrashingGateway(stub.api_key, stub.url)
    first = billing_fanout.export(runtime.store, runtime.secret_box, clock(), lambda _key: crashing)
    assert first.failed and all(failure.retryable for failure in first.failed)
    assert "worker killed" in first.failed[0].error
    assert first.events_sent < 17, "the crashed events' watermarks did not move"
    accepted_before_resume = len(stub.meter_events)
    assert accepted_before_resume > first.events_sent, "Stripe holds events whose watermark never moved"

    resumed = run(clock)
    assert resumed["failed"] == []
    assert len(stub.meter_events) == 17, "the resend of each accepted identifier was refused as a duplicate"
    assert_each_identifier_billed_once(stub)
    assert billed_per_customer(stub) == expected_usage()
    assert run(clock)["events_sent"] == 0, "nothing is left pending"
    sent_ids = [r.params.get("identifier") for r in stub.requests if r.path == "/v1/billing/meter_events"]
    assert len(sent_ids) > len(set(sent_ids)), "the resumed run resent identifiers Stripe already held"
    assert billed("POST", "/v1/verify", {}).body["ok"] is True


@pytest.fixture
def export_queue(runtime: Runtime) -> Iterator[tuple[Any, str]]:
    """moto's SQS (inside the table's mock): a FIFO queue, and the functions bound to it as in AWS."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="export.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    bind(
        Runtime(
            store=runtime.store,
            clock=runtime.clock,
            settings=runtime.settings.model_copy(update={"export_queue_url": url}),
        )
    )
    yield sqs, url
    bind(runtime)


def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    """The queue's messages as Lambda's SQS event source hands them to the worker."""
    records = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=0
    ).get("Messages", []):
        for message in messages:
            records.append(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": message["Attributes"],
                    "messageAttributes": {},
                    "md5OfBody": message["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:export.fifo",
                    "awsRegion": "us-east-1",
                }
            )
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return records


def test_the_planner_queues_pairs_grouped_by_pair_and_the_worker_redelivers_only_what_failed(
    billed: Api, clock: Clock, stub: StripeStub, export_queue: tuple[Any, str]
) -> None:
    sqs, url = export_queue
    planned = run(clock)
    assert (planned["pairs"], planned["enqueued"], planned["events_sent"]) == (13, 13, 0)
    assert stub.meter_events == [], "the planner sends nothing itself"
    records = received(sqs, url)
    groups = {record["attributes"]["MessageGroupId"] for record in records}
    assert len(records) == len(groups) == 13, "one message per pair, each its own group"

    stub.fail_next(3, status=500, path="/v1/billing/meter_events", customer=SHARED_CUSTOMER)
    answer = billing_export_worker.handler({"Records": records}, WORKER)
    shared = [r["messageId"] for r in records if json.loads(r["body"])["customer_id"] == SHARED_CUSTOMER]
    assert answer["batchItemFailures"] == [{"itemIdentifier": shared[0]}]
    assert len(stub.meter_events) == 16, "the other 12 pairs went out, and the shared pair's later users"

    redelivered = [r for r in records if r["messageId"] == shared[0]]
    assert billing_export_worker.handler({"Records": redelivered}, WORKER)["batchItemFailures"] == []
    assert_each_identifier_billed_once(stub)
    assert billed_per_customer(stub) == expected_usage()


def test_usage_added_between_a_crash_and_the_resume_is_still_billed(
    billed: Api, runtime: Runtime, clock: Clock, stub: StripeStub
) -> None:
    """Workers die after Stripe accepted some events; 7 more tokens arrive for every solo user before the resume.
    The resume resends each recorded delta as it was (Stripe holds it: a duplicate) and the 7 as events of their own
    (folded into the resend, Stripe would drop them as part of a duplicate)."""
    crashing = CrashingGateway(stub.api_key, stub.url)
    billing_fanout.export(runtime.store, runtime.secret_box, clock(), lambda _key: crashing)
    for index in range(len(SOLO_CUSTOMERS)):
        use(billed, f"solo{index:02d}", 7)
    assert run(clock)["failed"] == []
    assert_each_identifier_billed_once(stub)
    expected = {
        customer: used + 7 if customer != SHARED_CUSTOMER else used for customer, used in expected_usage().items()
    }
    assert billed_per_customer(stub) == expected
