"""Alerts under concurrent writes, on DynamoDB Local's real stream: each threshold is recorded exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import cast

import boto3
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from quotaflow.config import Settings
from quotaflow.handlers import notifier
from quotaflow.handlers.runtime import Runtime, bind
from quotaflow.ledger.plans import Limit, Plan
from quotaflow.local.events import LocalContext
from quotaflow.local.streams import StreamPoller
from quotaflow.services import metering, plans
from quotaflow.store import keys
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import Tenant, lines
from tests.support.ddb_local import DynamoDBLocal

pytestmark = pytest.mark.integration


def test_concurrent_writes_record_each_threshold_once(ddb_local: DynamoDBLocal, ddb_store: Store, clock: Clock) -> None:
    setup = Tenant(ddb_store, clock)
    plan = Plan(
        plan_id="alerting",
        name="Alerting",
        limits={"tokens": Limit(quota=1000, period="month", enforcement="soft", alerts=[25, 50, 75])},
    )
    plans.put_plan(setup.scope, plan)
    plans.put_subscription(setup.scope, "u1", "alerting", {}, None)
    containers = [Tenant(ddb_store, clock) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(lambda i: metering.track(containers[i % 8].scope, "u1", lines(tokens=10), None, None), range(80))
        )  # 800 of 1,000: crosses 25, 50 and 75 %, each in exactly one write
    bind(Runtime(store=ddb_store, settings=Settings(), clock=clock))
    streams = boto3.client(
        "dynamodbstreams",
        endpoint_url=ddb_local.endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    records = StreamPoller(ddb_store.client, streams, ddb_store.table_name).poll()
    context = cast(LambdaContext, LocalContext())
    for _ in range(2):  # the stream batch delivered twice, as Lambda may
        assert notifier.handler({"Records": records}, context) == {"batchItemFailures": []}
    recorded = ddb_store.client.scan(
        TableName=ddb_store.table_name,
        FilterExpression="sk = :alert",
        ExpressionAttributeValues={":alert": {"S": "ALERT"}},
    )["Items"]
    thresholds = sorted(int(item["payload"]["S"].split('"threshold_percent":')[1].split(",")[0]) for item in recorded)
    assert thresholds == [25, 50, 75]
    assert all(keys.ALERTS_DUE not in str(item) or item["status"]["S"] == "pending" for item in recorded)
