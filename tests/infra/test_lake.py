"""The usage lake as the template has it: Firehose to Parquet by tenant and day, the Glue table the API's SQL
reads, the Athena workgroup, and the two functions' access to them (every registry entry wired, stub bundle)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from quotaflow.store.lake import COLUMNS, PARTITION_COLUMNS, record_from_item
from quotaflow.store.lake_query import athena_dialect
from quotaflow_infra.functions import LEDGER_INSERTS
from quotaflow_infra.lake import BYTES_SCANNED_CUTOFF, ENV_ATHENA_WORKGROUP, ENV_LAKE_STREAM, LAKE_TABLE
from tests.infra.conftest import Synth
from tests.infra.test_stack import actions_of, function_id, logical_id, statements, stream_mapping

pytestmark = pytest.mark.infra


def only(synth: Synth, resource_type: str) -> dict[str, Any]:
    (resource,) = synth.resources(resource_type).values()
    properties: dict[str, Any] = resource["Properties"]
    return properties


def arn_of(synth: Synth, path: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id(synth, path), "Arn"]}


def test_the_glue_table_has_the_columns_the_writer_writes(wired: Synth) -> None:
    table = only(wired, "AWS::Glue::Table")["TableInput"]
    assert table["Name"] == LAKE_TABLE
    columns = {column["Name"]: column["Type"] for column in table["StorageDescriptor"]["Columns"]}
    assert columns == COLUMNS
    assert {key["Name"]: key["Type"] for key in table["PartitionKeys"]} == PARTITION_COLUMNS
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    # and a record of a real ledger entry has exactly those columns and partition keys, nothing Firehose would drop
    record = record_from_item(
        {"pk": "T#acme#U#u1", "sk": "L#e1", "entry_id": "e1", "at": "2026-12-01T10:00:00Z", "kind": "event",
         "meter": "tokens", "period_key": "none", "du": 5, "dr": 0, "dc": 0, "dq": 0, "ref": "evt_1"}
    )  # fmt: skip
    assert record is not None
    assert set(record) == set(COLUMNS) | set(PARTITION_COLUMNS)


def test_tenant_partitions_are_projected_and_must_be_named_by_every_query(wired: Synth) -> None:
    parameters = only(wired, "AWS::Glue::Table")["TableInput"]["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.tenant_id.type"] == "injected"  # Athena refuses a query without tenant_id = ...
    assert parameters["projection.day.type"] == "date"
    assert parameters["projection.day.format"] == "yyyy-MM-dd"
    template = json.dumps(parameters["storage.location.template"])
    assert "ledger/tenant_id=${tenant_id}/day=${day}/" in template


def test_firehose_writes_parquet_partitioned_by_tenant_and_day_into_the_lake_bucket(wired: Synth) -> None:
    stream = only(wired, "AWS::KinesisFirehose::DeliveryStream")
    assert stream["DeliveryStreamType"] == "DirectPut"
    assert stream["DeliveryStreamEncryptionConfigurationInput"] == {
        "KeyType": "CUSTOMER_MANAGED_CMK",
        "KeyARN": arn_of(wired, "Key"),
    }
    s3 = stream["ExtendedS3DestinationConfiguration"]
    assert s3["BucketARN"] == arn_of(wired, "UsageLake/Bucket")
    assert s3["Prefix"] == "ledger/tenant_id=!{partitionKeyFromQuery:tenant_id}/day=!{partitionKeyFromQuery:day}/"
    assert s3["ErrorOutputPrefix"].startswith("errors/")
    assert s3["BufferingHints"]["SizeInMBs"] >= 64  # dynamic partitioning's minimum
    conversion = s3["DataFormatConversionConfiguration"]
    assert conversion["Enabled"] is True
    assert "OpenXJsonSerDe" in conversion["InputFormatConfiguration"]["Deserializer"]
    assert conversion["OutputFormatConfiguration"]["Serializer"] == {"ParquetSerDe": {"Compression": "SNAPPY"}}
    assert conversion["SchemaConfiguration"]["TableName"] == LAKE_TABLE
    database = only(wired, "AWS::Glue::Database")["DatabaseInput"]["Name"]
    assert conversion["SchemaConfiguration"]["DatabaseName"] == database
    assert s3["DynamicPartitioningConfiguration"]["Enabled"] is True
    (processor,) = s3["ProcessingConfiguration"]["Processors"]
    parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert processor["Type"] == "MetadataExtraction"
    assert parameters["MetadataExtractionQuery"] == "{tenant_id: .tenant_id,day: .day}"


def test_lake_and_results_buckets_are_private_encrypted_and_logged(wired: Synth) -> None:
    buckets = wired.resources("AWS::S3::Bucket")
    for path in ("UsageLake/Bucket", "UsageLake/AthenaResults"):
        props = buckets[logical_id(wired, path)]["Properties"]
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": arn_of(wired, "Key"),
        }
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["LoggingConfiguration"]["DestinationBucketName"] == {
            "Ref": logical_id(wired, "UsageLake/AccessLogs")
        }
    policies = json.dumps(wired.resources("AWS::S3::BucketPolicy"))
    assert policies.count('"aws:SecureTransport": "false"') >= 3  # every lake bucket refuses plain HTTP


def test_the_workgroup_encrypts_results_in_its_own_bucket_and_caps_each_scan(wired: Synth) -> None:
    workgroup = only(wired, "AWS::Athena::WorkGroup")
    config = workgroup["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == BYTES_SCANNED_CUTOFF
    assert config["EngineVersion"] == {"SelectedEngineVersion": "Athena engine version 3"}
    results = config["ResultConfiguration"]
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_KMS", "KmsKey": arn_of(wired, "Key")}
    assert json.dumps(results["OutputLocation"]).count(logical_id(wired, "UsageLake/AthenaResults")) == 1


def test_the_lake_writer_sees_only_ledger_inserts_and_can_only_put_to_the_stream(wired: Synth) -> None:
    mapping = stream_mapping(wired, "LakeWriter")
    (pattern,) = mapping["FilterCriteria"]["Filters"]
    assert json.loads(pattern["Pattern"]) == LEDGER_INSERTS
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    granted = statements(wired, "LakeWriter/Role")
    puts = [s for s in granted if "firehose:PutRecordBatch" in actions_of(s)]
    (stream_id,) = wired.resources("AWS::KinesisFirehose::DeliveryStream")
    assert [s["Resource"] for s in puts] == [{"Fn::GetAtt": [stream_id, "Arn"]}]
    assert not [s for s in granted if any(a.startswith(("dynamodb:Put", "dynamodb:Update")) for a in actions_of(s))]
    function = wired.resources("AWS::Lambda::Function")[function_id(wired, "LakeWriter")]
    assert ENV_LAKE_STREAM in function["Properties"]["Environment"]["Variables"]


def test_the_api_queries_in_the_workgroup_and_knows_the_table(wired: Synth) -> None:
    granted = statements(wired, "Api/Role")
    (athena,) = [s for s in granted if "athena:StartQueryExecution" in actions_of(s)]
    assert "workgroup/quotaflow-dev-analytics" in json.dumps(athena["Resource"])
    variables = wired.resources("AWS::Lambda::Function")[function_id(wired, "Api")]["Properties"]["Environment"]
    assert variables["Variables"][ENV_ATHENA_WORKGROUP] == "quotaflow-dev-analytics"
    database = only(wired, "AWS::Glue::Database")["DatabaseInput"]["Name"]
    # the names the API's SQL reads are names the dialect accepts
    assert athena_dialect(database, LAKE_TABLE).relation == f'"{database}"."{LAKE_TABLE}"'
