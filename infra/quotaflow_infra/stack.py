"""`QuotaflowStack`: the table, its key, the admin key secret, the HTTP API, the alert bus, and one
`QuotaflowFunction` per registry entry. Per-function decisions live in `lambdas`; this file holds the shared ones."""

from __future__ import annotations

import json
from collections.abc import Sequence

import jsii
from aws_cdk import Annotations, Aws, CfnOutput, Duration, Stack, Tags
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from quotaflow_infra.bundling import BundleCodes
from quotaflow_infra.export_queue import ExportQueue
from quotaflow_infra.functions import STRIPE_WEBHOOK_PATH, ExportTasks, FunctionSpec, HttpRoute
from quotaflow_infra.lake import UsageLake
from quotaflow_infra.lambdas import ALARM_PERIOD_MINUTES, QuotaflowFunction, Shared, acknowledge, alarm, removal_policy
from quotaflow_infra.settings import LOG_RETENTION, BundleMode, StackSettings

# The table as functions/quotaflow/store/table.py `create_table` makes it (tests/infra compares the two).
PARTITION_KEY = "pk"
SORT_KEY = "sk"
GSI_NAMES = ("gsi1", "gsi2", "gsi3")  # each keyed on <name>pk / <name>sk, projecting all attributes
TTL_ATTRIBUTE = "ttl"
PITR_RECOVERY_DAYS = 35  # the maximum: a bad deploy or a bad script found weeks later can still be undone
KEY_PENDING_DAYS_PROTECTED = 30
KEY_PENDING_DAYS = 7
ADMIN_KEY_LENGTH = 48  # alphanumeric, ~285 bits; quotaflow requires at least 16 characters
# Stage-wide HTTP throttling. Well under Lambda's default account concurrency (1,000) at ~50 ms per request,
# and under what a new on-demand table absorbs at once (4,000 write units/s); raise both together.
API_RATE_LIMIT_RPS = 200
API_BURST_LIMIT = 400
API_STAGE_NAME = "$default"
STUB_BUNDLE_WARNING = "quotaflow:stub-bundle"
# One JSON object per request; never headers (they carry API keys) and never bodies.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "method": "$context.httpMethod",
    "route": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "bytes": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class JsonAccessLogs:
    """HTTP API access logs as `ACCESS_LOG_FORMAT` into a log group (a jsii interface: CDK wants an object here)."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT))


class QuotaflowStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        functions: Sequence[FunctionSpec],
        codes: BundleCodes,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            stack_name=settings.prefix,
            description=f"quotaflow usage metering, stage {settings.stage}",
        )
        self.settings = settings
        Tags.of(self).add("app", "quotaflow")
        Tags.of(self).add("stage", settings.stage)
        self.key = self._key()
        self.table = self._table()
        self.admin_key = self._admin_key()
        self.alert_bus = events.EventBus(self, "AlertBus", event_bus_name=f"{settings.prefix}-alerts")
        self.http_api, self.http_stage = self._http_api()
        self.lake = UsageLake(self, "UsageLake", settings=settings, key=self.key)
        consumers = [spec.trigger for spec in functions if isinstance(spec.trigger, ExportTasks)]
        export_tasks = consumers[0] if consumers else ExportTasks()
        self.export_queue = ExportQueue(self, "ExportQueue", tasks=export_tasks)
        shared = Shared(
            settings,
            codes,
            self.key,
            self.table,
            self.admin_key,
            self.alert_bus,
            self.http_api,
            self.lake,
            self.export_queue,
        )
        self.functions = [QuotaflowFunction(self, spec, shared) for spec in functions]
        server_errors = self.http_api.metric_server_error(
            period=Duration.minutes(ALARM_PERIOD_MINUTES), statistic="Sum"
        )
        alarms = [alarm(self, "HttpServerErrors", f"{settings.prefix}-http-5xx", server_errors)]
        alarms += [each for function in self.functions for each in function.alarms]
        self._forward_alarms(alarms)
        self._outputs(functions)
        if settings.bundling is BundleMode.STUB:
            Annotations.of(self).add_warning_v2(
                STUB_BUNDLE_WARNING,
                "Synthesized with -c bundling=stub: function code has no dependencies. Do not deploy this assembly.",
            )

    def _key(self) -> kms.Key:
        settings = self.settings
        key = kms.Key(
            self,
            "Key",
            alias=f"alias/{settings.prefix}",
            description=f"quotaflow {settings.stage}: the table, the admin key secret and the log groups at rest",
            enable_key_rotation=True,
            pending_window=Duration.days(KEY_PENDING_DAYS_PROTECTED if settings.protected else KEY_PENDING_DAYS),
            # The key goes (after its pending window) exactly when the data it protects goes.
            removal_policy=removal_policy(settings),
        )
        # CloudWatch Logs encrypts with the key itself, and only for this stage's log groups.
        log_groups = f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/{settings.prefix}/*"
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsOfThisStage",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
            )
        )
        return key

    def _table(self) -> dynamodb.Table:
        settings = self.settings
        table = dynamodb.Table(
            self,
            "Table",
            table_name=settings.table_name,
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True, recovery_period_in_days=PITR_RECOVERY_DAYS
            ),
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            time_to_live_attribute=TTL_ATTRIBUTE,
            deletion_protection=settings.protected,
            removal_policy=removal_policy(settings),
        )
        for index in GSI_NAMES:
            table.add_global_secondary_index(
                index_name=index,
                partition_key=dynamodb.Attribute(name=f"{index}pk", type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=f"{index}sk", type=dynamodb.AttributeType.STRING),
                projection_type=dynamodb.ProjectionType.ALL,
            )
        return table

    def _admin_key(self) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self,
            "AdminKey",
            description=f"quotaflow {self.settings.stage}: the admin key (Authorization: Bearer) for /v1/admin",
            encryption_key=self.key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=ADMIN_KEY_LENGTH, exclude_punctuation=True, include_space=False
            ),
            removal_policy=removal_policy(self.settings),
        )
        acknowledge(
            secret,
            {
                "AwsSolutions-SMG4": "Rotated by hand (put-secret-value, then new containers read it at cold start): "
                "the admin key is used by people creating tenants, and a rotation Lambda would cut them off mid-task.",
            },
        )
        return secret

    def _http_api(self) -> tuple[apigwv2.HttpApi, apigwv2.HttpStage]:
        settings = self.settings
        # CORS stays with the function (Powertools resolver): it answers OPTIONS for the browser-token routes.
        api = apigwv2.HttpApi(
            self, "HttpApi", api_name=settings.prefix, description="quotaflow v1", create_default_stage=False
        )
        access_logs = logs.LogGroup(
            self,
            "HttpAccessLogs",
            log_group_name=f"/{settings.prefix}/http-access",
            retention=LOG_RETENTION[settings.log_retention_days],
            encryption_key=self.key,
            removal_policy=removal_policy(settings),
        )
        stage = apigwv2.HttpStage(
            self,
            "HttpStage",
            http_api=api,
            stage_name=API_STAGE_NAME,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=API_RATE_LIMIT_RPS, burst_limit=API_BURST_LIMIT),
            access_log_settings=JsonAccessLogs(access_logs),
        )
        return api, stage

    def _forward_alarms(self, alarms: Sequence[cloudwatch.Alarm]) -> None:
        """Alarm state changes reach the alert bus, next to the app's own alerts: one place to subscribe to."""
        events.Rule(
            self,
            "AlarmsToAlertBus",
            description=f"quotaflow {self.settings.stage}: this stage's alarm state changes to its alert bus",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                resources=[each.alarm_arn for each in alarms],
            ),
            targets=[events_targets.EventBus(self.alert_bus)],
        )

    def _outputs(self, functions: Sequence[FunctionSpec]) -> None:
        url = self.http_stage.url
        CfnOutput(self, "ApiUrl", value=url, description="Base URL of the v1 API")
        CfnOutput(self, "TableName", value=self.table.table_name)
        CfnOutput(
            self, "AdminKeySecretArn", value=self.admin_key.secret_arn, description="get-secret-value for the key"
        )
        CfnOutput(self, "AlertBusName", value=self.alert_bus.event_bus_name)
        routes = {spec.trigger.path for spec in functions if isinstance(spec.trigger, HttpRoute)}
        if STRIPE_WEBHOOK_PATH in routes:
            CfnOutput(
                self,
                "StripeWebhookUrl",
                value=f"{url}{STRIPE_WEBHOOK_PATH.removeprefix('/')}",
                description="Paste into Stripe with {tenant_id} replaced by the tenant's id",
            )
