"""Building the boto3 client: timeouts and retries chosen on purpose.

botocore's standard retry mode retries throttling and transient 5xx itself (3 attempts, jittered backoff);
the store never retries those again, and maps what remains to 429/503. Cancelled transactions are not
retried by botocore: the write loop reads their reasons and decides."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from quotaflow.config import Settings
from quotaflow.store.secret_box import KmsSecretBox, LocalSecretBox, SecretBox
from quotaflow.store.table import Store

CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=2,
    read_timeout=5,
    max_pool_connections=32,
    tcp_keepalive=True,
)


def dynamodb_client(settings: Settings) -> Any:
    kwargs: dict[str, Any] = {"region_name": settings.region, "config": CLIENT_CONFIG}
    if settings.dynamodb_endpoint:
        kwargs["endpoint_url"] = settings.dynamodb_endpoint
    return boto3.client("dynamodb", **kwargs)


def connect(settings: Settings) -> Store:
    return Store(dynamodb_client(settings), settings.table_name)


def read_admin_key(settings: Settings) -> Settings:
    """Settings with the admin key filled in from Secrets Manager when only its ARN is configured."""
    if settings.admin_key is not None or settings.admin_key_secret_arn is None:
        return settings
    secrets = boto3.client("secretsmanager", region_name=settings.region, config=CLIENT_CONFIG)
    value = secrets.get_secret_value(SecretId=settings.admin_key_secret_arn)["SecretString"]
    return settings.model_copy(update={"admin_key": value})


def secret_box(settings: Settings) -> SecretBox:
    if settings.kms_key_id:
        return KmsSecretBox(boto3.client("kms", region_name=settings.region, config=CLIENT_CONFIG), settings.kms_key_id)
    return LocalSecretBox(settings.admin_key or settings.table_name)


def events_client(settings: Settings) -> Any:
    return boto3.client("events", region_name=settings.region, config=CLIENT_CONFIG)
