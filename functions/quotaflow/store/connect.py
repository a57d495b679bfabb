"""Building the AWS clients: timeouts and retries chosen on purpose. Straight from botocore: boto3's resource
layer is never used, and skipping it saves ~12 ms of every cold start.

botocore's standard retry mode retries throttling and transient 5xx itself (3 attempts, jittered backoff);
the store never retries those again, and maps what remains to 429/503. Cancelled transactions are not
retried by botocore: the write loop reads their reasons and decides."""

from __future__ import annotations

from typing import Any

import botocore.session
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
# A local or custom endpoint (DynamoDB Local, moto, `serve`) has no account-id hosts: botocore >= 1.40 would send
# some calls (the table stream's) to `<account>.ddbstreams...`, which no emulator answers. Decided here in code,
# never left to the shell's AWS_ACCOUNT_ID_ENDPOINT_MODE.
LOCAL_CLIENT_CONFIG = CLIENT_CONFIG.merge(Config(account_id_endpoint_mode="disabled"))


def client_config(local: bool) -> Config:
    return LOCAL_CLIENT_CONFIG if local else CLIENT_CONFIG


_session: botocore.session.Session | None = None


def aws_client(service: str, settings: Settings, endpoint_url: str | None = None) -> Any:
    global _session
    if _session is None:
        _session = botocore.session.get_session()
    return _session.create_client(
        service, region_name=settings.region, config=client_config(endpoint_url is not None), endpoint_url=endpoint_url
    )


def dynamodb_client(settings: Settings) -> Any:
    return aws_client("dynamodb", settings, settings.dynamodb_endpoint)


def connect(settings: Settings) -> Store:
    return Store(dynamodb_client(settings), settings.table_name)


def read_admin_key(settings: Settings) -> Settings:
    """Settings with the admin key filled in from Secrets Manager when only its ARN is configured."""
    if settings.admin_key is not None or settings.admin_key_secret_arn is None:
        return settings
    secrets = aws_client("secretsmanager", settings)
    value = secrets.get_secret_value(SecretId=settings.admin_key_secret_arn)["SecretString"]
    return settings.model_copy(update={"admin_key": value})


def secret_box(settings: Settings) -> SecretBox:
    if settings.kms_key_id:
        return KmsSecretBox(aws_client("kms", settings), settings.kms_key_id)
    return LocalSecretBox(settings.admin_key or settings.table_name)


def events_client(settings: Settings) -> Any:
    return aws_client("events", settings)


def sqs_client(settings: Settings) -> Any:
    return aws_client("sqs", settings)
