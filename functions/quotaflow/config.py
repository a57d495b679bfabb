"""Deployment settings, parsed once per container from the environment and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import ConfigDict, Field

from quotaflow.ledger.model import Model


class Settings(Model):
    model_config = ConfigDict(frozen=True)

    table_name: str = Field(default="quotaflow", min_length=3, max_length=255)
    dynamodb_endpoint: str | None = None
    region: str = "us-east-1"
    admin_key: str | None = Field(default=None, min_length=16)
    admin_key_secret_arn: str | None = None  # in AWS the admin key lives in Secrets Manager, read at cold start
    kms_key_id: str | None = None  # encrypts tenants' Stripe secrets; without it they are sealed locally
    stripe_api_base: str | None = None  # where the Stripe SDK sends requests (a loopback server in tests)
    alert_bus: str | None = None  # the EventBridge bus alerts are also put on
    # The billing export's FIFO queue (AWS): the planner enqueues pairs there; without it they run in-process.
    export_queue_url: str | None = None
    allow_loopback_webhooks: bool = False  # `serve` only: http webhooks to 127.0.0.1 for local receivers
    # The usage lake: written to a local directory (`serve`) or a Firehose stream, read by DuckDB or Athena.
    lake_dir: str | None = None
    lake_stream: str | None = None
    lake_database: str | None = None
    lake_table: str | None = None
    athena_workgroup: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            table_name=env.get("QUOTAFLOW_TABLE", "quotaflow"),
            dynamodb_endpoint=env.get("QUOTAFLOW_DYNAMODB_ENDPOINT") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            admin_key=env.get("QUOTAFLOW_ADMIN_KEY") or None,
            admin_key_secret_arn=env.get("QUOTAFLOW_ADMIN_KEY_SECRET_ARN") or None,
            kms_key_id=env.get("QUOTAFLOW_KMS_KEY_ID") or None,
            stripe_api_base=env.get("QUOTAFLOW_STRIPE_API_BASE") or None,
            alert_bus=env.get("QUOTAFLOW_ALERT_BUS") or None,
            export_queue_url=env.get("QUOTAFLOW_EXPORT_QUEUE_URL") or None,
            lake_dir=env.get("QUOTAFLOW_LAKE_DIR") or None,
            lake_stream=env.get("QUOTAFLOW_LAKE_STREAM") or None,
            lake_database=env.get("QUOTAFLOW_LAKE_DATABASE") or None,
            lake_table=env.get("QUOTAFLOW_LAKE_TABLE") or None,
            athena_workgroup=env.get("QUOTAFLOW_ATHENA_WORKGROUP") or None,
        )
