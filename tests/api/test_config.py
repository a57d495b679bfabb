"""Deployment settings: the admin key comes from Secrets Manager in AWS (moto's Secrets Manager here)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from quotaflow.config import Settings
from quotaflow.store.connect import read_admin_key

pytestmark = pytest.mark.unit


def test_settings_read_the_environment() -> None:
    settings = Settings.from_env(
        {"QUOTAFLOW_TABLE": "qf-prod", "AWS_REGION": "eu-west-1", "QUOTAFLOW_ADMIN_KEY_SECRET_ARN": "arn:secret"}
    )
    assert (settings.table_name, settings.region, settings.admin_key, settings.admin_key_secret_arn) == (
        "qf-prod",
        "eu-west-1",
        None,
        "arn:secret",
    )


def test_the_admin_key_is_read_from_its_secret_once_at_cold_start() -> None:
    with mock_aws():
        arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="quotaflow-admin", SecretString="qf_admin_from_secrets_manager_0123"
        )["ARN"]
        settings = read_admin_key(Settings(admin_key_secret_arn=arn))
    assert settings.admin_key == "qf_admin_from_secrets_manager_0123"
    assert read_admin_key(Settings(admin_key="qf_admin_given_directly_0123")).admin_key == (
        "qf_admin_given_directly_0123"
    )
