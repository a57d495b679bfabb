"""`meter(boto3.client("bedrock-runtime"))`: botocore's own client against a loopback server answering Converse (JSON)
and ConverseStream (AWS's binary event-stream framing, encoded by tests/support/provider_stubs.py), metered by a real
`quotaflow serve`."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from quotaflow.integrations import meter
from quotaflow.sdk import Client, InsufficientQuota
from tests.integrations.support import USER, commit_properties, settled
from tests.support.provider_stubs import BEDROCK_USAGE, ProviderStub

pytestmark = pytest.mark.unit
MODEL_ID = "anthropic.claude-sonnet-4-5-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "How do I meter this?"}]}]
TOTAL = BEDROCK_USAGE["totalTokens"]


def bedrock_client(provider: ProviderStub) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=provider.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_converse_commits_input_cache_reads_and_both_cache_write_classes(qf: Client, provider: ProviderStub) -> None:
    client = meter(bedrock_client(provider), qf, user_id=USER)
    response = client.converse(modelId=MODEL_ID, messages=MESSAGES, inferenceConfig={"maxTokens": 512})
    assert response["output"]["message"]["content"][0]["text"] == "Metering is one line now."
    assert settled(qf) == (TOTAL, 0)
    assert commit_properties(qf) == {"model": MODEL_ID, "estimated": False}


def test_converse_stream_decodes_the_event_stream_and_commits_its_metadata_usage(
    qf: Client, provider: ProviderStub
) -> None:
    client = meter(bedrock_client(provider), qf, user_id=USER)
    response = client.converse_stream(modelId=MODEL_ID, messages=MESSAGES)
    events = list(response["stream"])
    assert "ResponseMetadata" in response
    assert [next(iter(event)) for event in events][-1] == "metadata"
    assert settled(qf) == (TOTAL, 0)


def test_a_converse_stream_closed_early_commits_an_estimate(qf: Client, provider: ProviderStub) -> None:
    client = meter(bedrock_client(provider), qf, user_id=USER)
    stream = client.converse_stream(modelId=MODEL_ID, messages=MESSAGES, inferenceConfig={"maxTokens": 3000})["stream"]
    next(stream)
    next(stream)
    stream.close()
    used, reserved = settled(qf)
    assert 0 < used < 3000 and reserved == 0
    assert commit_properties(qf)["estimated"] is True


def test_a_provider_error_releases_and_a_refused_hold_never_calls(qf: Client, provider: ProviderStub) -> None:
    provider.fail_with(400, {"message": "Malformed input request"})
    client = meter(bedrock_client(provider), qf, user_id=USER)
    with pytest.raises(ClientError):
        client.converse(modelId=MODEL_ID, messages=MESSAGES)
    assert settled(qf) == (0, 0)
    qf.upsert_subscription(USER, "plan_paygo", custom_limits={"tokens": {"quota": 10}})
    with pytest.raises(InsufficientQuota):
        client.converse_stream(modelId=MODEL_ID, messages=MESSAGES)
    assert len(provider.seen) == 1
