"""What the stack promises, read off the synthesized template (every registry entry wired, stub bundle)."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import boto3
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match
from constructs import IConstruct
from moto import mock_aws

from quotaflow.observability import metrics
from quotaflow.store.table import Store
from quotaflow_infra.bundling import LAMBDA_RUNTIME
from quotaflow_infra.functions import (
    API_PATH,
    FUNCTIONS,
    STRIPE_WEBHOOK_PATH,
    TTL_REMOVALS,
    Access,
    Bundle,
    Every,
    HttpRoute,
    TableStream,
)
from quotaflow_infra.lambdas import ENV_ADMIN_KEY_SECRET_ARN, ENV_TABLE, METRICS_NAMESPACE, SERVICE_NAME
from quotaflow_infra.lambdas import logical_id as resource_id
from tests.infra.conftest import REPO_ROOT, Synth

pytestmark = pytest.mark.infra

SPECS = {spec.name: spec for spec in FUNCTIONS}


def logical_id(synth: Synth, path: str) -> str:
    """The template id of the resource at construct path `<stack>/<path>`."""
    node: IConstruct = synth.stack
    for part in path.split("/"):
        node = node.node.find_child(part)
    return resource_id(node)


def function_id(synth: Synth, name: str) -> str:
    return logical_id(synth, f"{name}/Function")


def statements(synth: Synth, role_path: str) -> list[dict[str, Any]]:
    policy_id = logical_id(synth, f"{role_path}/DefaultPolicy")
    policy = synth.resources("AWS::IAM::Policy")[policy_id]
    found: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


# --- the table ---------------------------------------------------------------------------------------------


def test_table_matches_what_the_store_creates_locally(wired: Synth) -> None:
    # Given the table as the store's own create_table makes it (moto stands in for DynamoDB)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        Store(client, "quotaflow").create_table()
        local = client.describe_table(TableName="quotaflow")["Table"]
        ttl = client.describe_time_to_live(TableName="quotaflow")["TimeToLiveDescription"]

    # Then the stack's table has the same keys, indexes, stream, TTL and billing
    (table,) = wired.resources("AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["KeySchema"] == local["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(local["AttributeDefinitions"], key=str)
    deployed_indexes = {
        index["IndexName"]: (index["KeySchema"], index["Projection"]) for index in props["GlobalSecondaryIndexes"]
    }
    local_indexes = {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in local["GlobalSecondaryIndexes"]}
    assert deployed_indexes == local_indexes
    assert props["StreamSpecification"] == {"StreamViewType": local["StreamSpecification"]["StreamViewType"]}
    assert props["TimeToLiveSpecification"] == {"AttributeName": ttl["AttributeName"], "Enabled": True}
    assert props["BillingMode"] == local["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_table_is_encrypted_with_the_stack_key_and_recoverable(wired: Synth) -> None:
    key_id = logical_id(wired, "Key")
    wired.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "SSESpecification": {
                "SSEEnabled": True,
                "SSEType": "KMS",
                "KMSMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]},
            },
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )
    wired.template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_a_dev_stage_cleans_up_after_itself(wired: Synth) -> None:
    wired.template.has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Delete"})
    wired.template.has_resource_properties("AWS::DynamoDB::Table", {"DeletionProtectionEnabled": False})


@pytest.mark.parametrize(
    "resource_type",
    ["AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::SecretsManager::Secret", "AWS::Logs::LogGroup"],
)
def test_the_prod_stage_keeps_its_data(prod: Synth, resource_type: str) -> None:
    for logical, resource in prod.resources(resource_type).items():
        assert (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")) == ("Retain", "Retain"), logical
    if resource_type == "AWS::DynamoDB::Table":
        prod.template.has_resource_properties(
            resource_type, {"DeletionProtectionEnabled": True, "TableName": "quotaflow-prod"}
        )


# --- functions: one set of defaults --------------------------------------------------------------------------


def test_the_runtime_is_the_newest_python_this_cdk_offers() -> None:
    offered = [
        getattr(lambda_.Runtime, name).name for name in dir(lambda_.Runtime) if re.fullmatch(r"PYTHON_3_\d+", name)
    ]
    newest = max(offered, key=lambda runtime: int(runtime.rsplit(".", 1)[1]))
    assert newest == LAMBDA_RUNTIME.name, f"aws-cdk-lib now offers {newest}: move LAMBDA_RUNTIME (bundling.py) to it"


def test_every_function_gets_the_same_defaults(wired: Synth) -> None:
    functions = wired.resources("AWS::Lambda::Function")
    assert len(functions) == len(FUNCTIONS)
    for logical, function in functions.items():
        props = function["Properties"]
        assert props["Runtime"] == LAMBDA_RUNTIME.name, logical
        assert props["Architectures"] == ["arm64"], logical
        assert props["TracingConfig"] == {"Mode": "Active"}, logical
        assert props["LoggingConfig"]["LogFormat"] == "JSON", logical
        assert props["LoggingConfig"]["LogGroup"]["Ref"] in wired.resources("AWS::Logs::LogGroup"), logical
        environment = props["Environment"]["Variables"]
        assert environment["POWERTOOLS_SERVICE_NAME"] == SERVICE_NAME, logical
        assert environment["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE, logical
        assert environment[ENV_TABLE] == {"Ref": logical_id(wired, "Table")}, logical
        assert environment["PYDANTIC_DISABLE_PLUGINS"] == "__all__", logical  # as tests/bench measures the import


def test_each_function_runs_the_handler_of_its_registry_line(wired: Synth) -> None:
    for spec in FUNCTIONS:
        wired.template.has_resource_properties(
            "AWS::Lambda::Function", {"Handler": spec.handler, "Timeout": spec.timeout_s, "MemorySize": spec.memory_mb}
        )


def test_log_groups_are_encrypted_and_expire(wired: Synth) -> None:
    key_arn = {"Fn::GetAtt": [logical_id(wired, "Key"), "Arn"]}
    for logical, group in wired.resources("AWS::Logs::LogGroup").items():
        assert group["Properties"]["KmsKeyId"] == key_arn, logical
        assert group["Properties"]["RetentionInDays"] == 30, logical
        assert group["Properties"]["LogGroupName"].startswith("/quotaflow-dev/"), logical
    # CloudWatch Logs may use the key, for this stage's log groups only
    wired.template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [Match.object_like({"Sid": "CloudWatchLogsOfThisStage", "Condition": Match.any_value()})]
                )
            }
        },
    )


def test_only_the_billing_export_reserves_concurrency(wired: Synth) -> None:
    reserved = {
        logical: function["Properties"]["ReservedConcurrentExecutions"]
        for logical, function in wired.resources("AWS::Lambda::Function").items()
        if "ReservedConcurrentExecutions" in function["Properties"]
    }
    assert reserved == {function_id(wired, "BillingExport"): 1}


def test_stripe_stays_out_of_functions_that_do_not_talk_to_stripe() -> None:
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any(requirement.startswith("stripe") for requirement in extras[Bundle.SERVER.value])
    assert any(requirement.startswith("stripe") for requirement in extras[Bundle.STRIPE.value])
    stripe_functions = {spec.name for spec in FUNCTIONS if spec.bundle is Bundle.STRIPE}
    assert stripe_functions == {"StripeWebhook", "BillingExport", "BillingExportWorker"}


# --- HTTP API ---------------------------------------------------------------------------------------------


def test_v1_routes_go_to_the_api_function_and_the_webhook_to_its_own(wired: Synth) -> None:
    integrations = wired.resources("AWS::ApiGatewayV2::Integration")
    targets = {
        route["Properties"]["RouteKey"]: integrations[route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]]
        for route in wired.resources("AWS::ApiGatewayV2::Route").values()
    }
    assert set(targets) == {f"ANY {API_PATH}", f"POST {STRIPE_WEBHOOK_PATH}"}
    api = targets[f"ANY {API_PATH}"]["Properties"]
    webhook = targets[f"POST {STRIPE_WEBHOOK_PATH}"]["Properties"]
    assert api["IntegrationUri"] == {"Fn::GetAtt": [function_id(wired, "Api"), "Arn"]}
    assert webhook["IntegrationUri"] == {"Fn::GetAtt": [function_id(wired, "StripeWebhook"), "Arn"]}
    assert api["PayloadFormatVersion"] == webhook["PayloadFormatVersion"] == "2.0"


def test_the_api_stage_is_throttled_and_logs_each_request_as_json(wired: Synth) -> None:
    (stage,) = wired.resources("AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "$default"
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] >= props["DefaultRouteSettings"]["ThrottlingRateLimit"]
    access = props["AccessLogSettings"]
    assert access["DestinationArn"] == {"Fn::GetAtt": [logical_id(wired, "HttpAccessLogs"), "Arn"]}
    fields = json.loads(access["Format"])
    assert fields["requestId"] == "$context.requestId"
    assert not [value for value in fields.values() if "header" in value.lower()], "headers carry API keys"


# --- streams and schedules -----------------------------------------------------------------------------------


def stream_mapping(synth: Synth, name: str) -> dict[str, Any]:
    (mapping,) = (
        resource["Properties"]
        for resource in synth.resources("AWS::Lambda::EventSourceMapping").values()
        if resource["Properties"]["FunctionName"] == {"Ref": function_id(synth, name)}
    )
    return dict(mapping)


@pytest.mark.parametrize("name", [spec.name for spec in FUNCTIONS if isinstance(spec.trigger, TableStream)])
def test_stream_consumers_split_failing_batches_and_park_what_still_fails(wired: Synth, name: str) -> None:
    mapping = stream_mapping(wired, name)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [logical_id(wired, "Table"), "StreamArn"]}
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["MaximumRetryAttempts"] == SPECS[name].retry_attempts
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [logical_id(wired, f"{name}/Failures"), "Arn"]
    }


def test_the_reaper_sees_only_ttl_removals_and_never_misses_one(wired: Synth) -> None:
    mapping = stream_mapping(wired, "Reaper")
    (only,) = mapping["FilterCriteria"]["Filters"]
    assert json.loads(only["Pattern"]) == TTL_REMOVALS
    assert TTL_REMOVALS == {
        "eventName": ["REMOVE"],
        "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]},
    }
    assert mapping["StartingPosition"] == "TRIM_HORIZON"


@pytest.mark.parametrize(("name", "expression"), [("Sweeper", "rate(1 minute)"), ("BillingExport", "rate(1 hour)")])
def test_scheduled_functions_run_on_their_rate_and_park_failed_runs(wired: Synth, name: str, expression: str) -> None:
    spec = SPECS[name]
    assert isinstance(spec.trigger, Every)
    function_arn = {"Fn::GetAtt": [function_id(wired, name), "Arn"]}
    queue_arn = {"Fn::GetAtt": [logical_id(wired, f"{name}/Failures"), "Arn"]}
    wired.template.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "ScheduleExpression": expression,
            "Target": {
                "Arn": function_arn,
                "DeadLetterConfig": {"Arn": queue_arn},
                "RetryPolicy": {
                    "MaximumRetryAttempts": spec.retry_attempts,
                    "MaximumEventAgeInSeconds": Match.any_value(),
                },
                "RoleArn": Match.any_value(),
            },
        },
    )
    wired.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": function_id(wired, name)},
            "MaximumRetryAttempts": spec.retry_attempts,
            "DestinationConfig": {"OnFailure": {"Destination": queue_arn}},
        },
    )


# --- secrets and permissions ---------------------------------------------------------------------------------


def test_only_the_api_function_can_read_the_admin_key_and_only_by_arn(wired: Synth) -> None:
    secret_ref = {"Ref": logical_id(wired, "AdminKey")}
    wired.template.has_resource_properties(
        "AWS::SecretsManager::Secret", {"KmsKeyId": {"Fn::GetAtt": [logical_id(wired, "Key"), "Arn"]}}
    )
    readers = set()
    for spec in FUNCTIONS:
        if any("secretsmanager:GetSecretValue" in actions_of(s) for s in statements(wired, f"{spec.name}/Role")):
            readers.add(spec.name)
    assert readers == {spec.name for spec in FUNCTIONS if Access.ADMIN_KEY in spec.access} == {"Api"}
    api = wired.resources("AWS::Lambda::Function")[function_id(wired, "Api")]
    environment = api["Properties"]["Environment"]["Variables"]
    assert environment[ENV_ADMIN_KEY_SECRET_ARN] == secret_ref
    assert "QUOTAFLOW_ADMIN_KEY" not in environment, "the key itself never goes into the environment"


# Actions AWS does not let a policy scope to a resource: the only statements allowed to name "*".
UNSCOPABLE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "dynamodb:ListStreams"}


def test_no_role_may_do_everything_or_act_everywhere(wired: Synth) -> None:
    for logical, policy in wired.resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = actions_of(statement)
            assert not [action for action in actions if action == "*" or action.endswith(":*")], (logical, actions)
            if statement["Resource"] == "*":
                assert set(actions) <= UNSCOPABLE_ACTIONS, (logical, actions)


def test_functions_use_their_own_roles_without_managed_policies(wired: Synth) -> None:
    for logical, role in wired.resources("AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], logical


def test_table_access_is_granted_only_through_the_table_grant(wired: Synth) -> None:
    table_arn = {"Fn::GetAtt": [logical_id(wired, "Table"), "Arn"]}
    for spec in FUNCTIONS:
        writes = [s for s in statements(wired, f"{spec.name}/Role") if "dynamodb:UpdateItem" in actions_of(s)]
        if Access.TABLE not in spec.access:
            assert writes == [], spec.name  # the lake writer reads the stream and never the table
            continue
        assert len(writes) == 1, spec.name
        assert table_arn in writes[0]["Resource"], spec.name


# --- alarms, alerts, outputs ----------------------------------------------------------------------------------


def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        alarm["Properties"]["AlarmName"]: alarm["Properties"]
        for alarm in synth.resources("AWS::CloudWatch::Alarm").values()
    }


def test_every_function_alarms_on_errors_and_on_parked_failures(wired: Synth) -> None:
    by_name = alarms(wired)
    for spec in FUNCTIONS:
        kebab = re.sub(r"(?<!^)(?=[A-Z])", "-", spec.name).lower()
        errors = by_name[f"quotaflow-dev-{kebab}-errors"]
        assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
        assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id(wired, spec.name)}}]
        if not isinstance(spec.trigger, HttpRoute):
            depth = by_name[f"quotaflow-dev-{kebab}-failures"]
            assert (depth["Namespace"], depth["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
            assert depth["Threshold"] == 1


@pytest.mark.parametrize(
    ("metric_name", "missing"),
    [("ExportFailures", "notBreaching"), ("OldestOverdueReservationAgeSeconds", "breaching")],
)
def test_app_metric_alarms_watch_the_metrics_the_app_emits(wired: Synth, metric_name: str, missing: str) -> None:
    (alarm,) = (props for props in alarms(wired).values() if props["MetricName"] == metric_name)
    assert alarm["Namespace"] == METRICS_NAMESPACE == metrics.namespace
    assert alarm["Dimensions"] == [{"Name": "service", "Value": SERVICE_NAME}]
    assert metrics.service == SERVICE_NAME, "Powertools' default dimension must match the alarm's exactly"
    assert alarm["TreatMissingData"] == missing


def test_alarm_state_changes_reach_the_alert_bus(wired: Synth) -> None:
    (rule,) = wired.resources("AWS::Events::Rule").values()
    props = rule["Properties"]
    alarm_arns = [{"Fn::GetAtt": [logical, "Arn"]} for logical in wired.resources("AWS::CloudWatch::Alarm")]
    assert sorted(props["EventPattern"]["resources"], key=str) == sorted(alarm_arns, key=str)
    assert props["EventPattern"]["detail-type"] == ["CloudWatch Alarm State Change"]
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(wired, "AlertBus"), "Arn"]}


def test_outputs_name_the_api_the_table_the_secret_and_the_webhook_url(wired: Synth) -> None:
    outputs = wired.template.to_json()["Outputs"]
    assert {"ApiUrl", "TableName", "AdminKeySecretArn", "AlertBusName", "StripeWebhookUrl"} <= set(outputs)
    assert outputs["TableName"]["Value"] == {"Ref": logical_id(wired, "Table")}
    assert outputs["AdminKeySecretArn"]["Value"] == {"Ref": logical_id(wired, "AdminKey")}
    webhook = outputs["StripeWebhookUrl"]["Value"]["Fn::Join"][1]
    assert webhook[-1].endswith(STRIPE_WEBHOOK_PATH.removeprefix("/"))
