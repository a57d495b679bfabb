"""The one defaults factory: every Lambda function of the stack is a `QuotaflowFunction` built from its registry
line. Runtime, architecture, memory, timeout, JSON logs, tracing, Powertools settings, log retention, the role,
the grants, the failure queue, the alarms and the trigger wiring are decided here once, never per function."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, Aws, CfnElement, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk.aws_apigatewayv2_integrations import HttpLambdaIntegration
from constructs import Construct, IConstruct

from quotaflow_infra.bundling import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, BundleCodes
from quotaflow_infra.functions import Access, AppMetricAlarm, Every, ExportTasks, FunctionSpec, HttpRoute, TableStream
from quotaflow_infra.settings import LOG_RETENTION, StackSettings

if TYPE_CHECKING:
    from quotaflow_infra.export_queue import ExportQueue
    from quotaflow_infra.lake import UsageLake

# Must match functions/quotaflow/observability.py: Powertools adds `service` as the one default dimension,
# and an alarm matches a metric only with exactly the same dimensions (tests/infra checks both values).
METRICS_NAMESPACE = "Quotaflow"
SERVICE_NAME = "quotaflow"
LOG_LEVEL = "INFO"
ALARM_PERIOD_MINUTES = 5
FAILURE_QUEUE_RETENTION_DAYS = 14  # SQS maximum: time to read a failure before it is gone
ENV_TABLE = "QUOTAFLOW_TABLE"
ENV_ADMIN_KEY_SECRET_ARN = "QUOTAFLOW_ADMIN_KEY_SECRET_ARN"  # noqa: S105 (a variable name, not a secret)
ENV_ALERT_BUS = "QUOTAFLOW_ALERT_BUS"
ENV_KMS_KEY_ID = "QUOTAFLOW_KMS_KEY_ID"
ENV_EXPORT_QUEUE_URL = "QUOTAFLOW_EXPORT_QUEUE_URL"
# The functions use no pydantic plugin: without this, the first model pydantic builds (Powertools builds one at
# import) scans every installed distribution's entry points for plugins. tests/bench measures the same setting.
PYDANTIC_PLUGINS = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}


@dataclass(frozen=True)
class Shared:
    """What the stack owns and the functions use."""

    settings: StackSettings
    codes: BundleCodes
    key: kms.IKey
    table: dynamodb.Table
    admin_key: secretsmanager.ISecret
    alert_bus: events.IEventBus
    http_api: apigwv2.HttpApi
    lake: UsageLake
    export_queue: ExportQueue


def kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def acknowledge(scope: Construct, findings: dict[str, str]) -> None:
    """cdk-nag v3: one acknowledgment per finding id, each with its reason."""
    Validations.of(scope).acknowledge(*(Acknowledgment(id=rule, reason=reason) for rule, reason in findings.items()))


class QuotaflowFunction(Construct):
    def __init__(self, scope: Construct, spec: FunctionSpec, shared: Shared) -> None:
        super().__init__(scope, spec.name)
        self.spec = spec
        self.shared = shared
        settings = shared.settings
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/{settings.prefix}/{kebab(spec.name)}",
            retention=LOG_RETENTION[settings.log_retention_days],
            encryption_key=shared.key,
            removal_policy=removal_policy(settings),
        )
        # An own role instead of CDK's default: AWSLambdaBasicExecutionRole may write to any log group ("*").
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"quotaflow {settings.stage}: {spec.handler}",
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            handler=spec.handler,
            code=shared.codes.code(spec.bundle),
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            # Active tracing: Lambda records each invocation in X-Ray without the X-Ray SDK's ~0.5 s import.
            tracing=lambda_.Tracing.ACTIVE,
            environment=self._environment(),
            reserved_concurrent_executions=spec.reserved_concurrency,
        )
        self._grant()
        # Asynchronous and stream invocations that fail for good land in a queue; HTTP callers see their error.
        self.failure_queue = self._wire()
        self.alarms = self._alarms()
        self._acknowledge()

    def _environment(self) -> dict[str, str]:
        shared = self.shared
        environment = {
            ENV_TABLE: shared.table.table_name,
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": LOG_LEVEL,
            **PYDANTIC_PLUGINS,
        }
        if Access.ADMIN_KEY in self.spec.access:
            # The ARN, never the value: the function reads the key from Secrets Manager at cold start.
            environment[ENV_ADMIN_KEY_SECRET_ARN] = shared.admin_key.secret_arn
        if Access.ALERT_BUS in self.spec.access:
            environment[ENV_ALERT_BUS] = shared.alert_bus.event_bus_name
        if Access.TENANT_SECRETS in self.spec.access:
            environment[ENV_KMS_KEY_ID] = shared.key.key_arn
        if Access.LAKE_WRITE in self.spec.access:
            environment |= shared.lake.write_environment
        if Access.LAKE_QUERY in self.spec.access:
            environment |= shared.lake.query_environment
        if Access.EXPORT_QUEUE_SEND in self.spec.access:
            environment[ENV_EXPORT_QUEUE_URL] = shared.export_queue.queue.queue_url
        return environment

    def _grant(self) -> None:
        access = self.spec.access
        if Access.TABLE in access:
            self.shared.table.grant_read_write_data(self.function)
        if Access.ADMIN_KEY in access:
            self.shared.admin_key.grant_read(self.function)
        if Access.ALERT_BUS in access:
            self.shared.alert_bus.grant_put_events_to(self.function)
        if Access.TENANT_SECRETS in access:
            self.shared.key.grant_encrypt_decrypt(self.function)
        if Access.LAKE_WRITE in access:
            self.shared.lake.grant_write(self.function)
        if Access.LAKE_QUERY in access:
            self.shared.lake.grant_query(self.function)
        if Access.EXPORT_QUEUE_SEND in access:
            self.shared.export_queue.queue.grant_send_messages(self.function)

    def _failure_queue(self) -> sqs.Queue:
        # SQS-managed encryption, not the stack's key: these queues hold invocation metadata (stream positions,
        # schedule events), no customer data, and the Lambda and Scheduler services can write to them without
        # key-policy grants.
        queue = sqs.Queue(
            self,
            "Failures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(FAILURE_QUEUE_RETENTION_DAYS),
        )
        acknowledge(
            queue,
            {
                "AwsSolutions-SQS3": "This queue is itself the dead-letter queue: the on-failure destination of "
                "the function's asynchronous or stream invocations. Nothing consumes it; its depth alarms.",
            },
        )
        return queue

    def _wire(self) -> sqs.Queue | None:
        trigger = self.spec.trigger
        if isinstance(trigger, HttpRoute):
            self._wire_route(trigger)
            return None
        if isinstance(trigger, ExportTasks):
            return self._wire_export_tasks(trigger)
        queue = self._failure_queue()
        if isinstance(trigger, Every):
            self._wire_schedule(trigger, queue)
        else:
            self._wire_stream(trigger, queue)
        return queue

    def _wire_route(self, route: HttpRoute) -> None:
        integration = HttpLambdaIntegration(f"{self.spec.name}Integration", self.function)
        method = apigwv2.HttpMethod[route.method]
        for http_route in self.shared.http_api.add_routes(path=route.path, methods=[method], integration=integration):
            acknowledge(
                http_route,
                {
                    "AwsSolutions-APIG4": "The function authenticates every request itself: tenant API keys looked "
                    "up by hash in the table, the admin key, Stripe signatures. An API Gateway authorizer would "
                    "add a second Lambda call per request and know nothing the function does not."
                },
            )

    def _wire_schedule(self, every: Every, queue: sqs.Queue) -> None:
        max_event_age = Duration.seconds(every.max_event_age_s)
        self.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(queue),
            retry_attempts=self.spec.retry_attempts,
            max_event_age=max_event_age,
        )
        # The Scheduler's role lives with the function (CDK would make a stack-level one per target).
        invoker = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
        )
        scheduler.Schedule(
            self,
            "Schedule",
            description=f"quotaflow {self.shared.settings.stage}: {self.spec.handler} every {every.minutes} min",
            schedule=scheduler.ScheduleExpression.rate(Duration.minutes(every.minutes)),
            target=scheduler_targets.LambdaInvoke(
                self.function,
                role=invoker,
                dead_letter_queue=queue,
                retry_attempts=self.spec.retry_attempts,
                max_event_age=max_event_age,
            ),
        )

    def _wire_export_tasks(self, tasks: ExportTasks) -> sqs.Queue:
        """The export queue's consumer; its own dead-letter queue is where failures park."""
        export_queue = self.shared.export_queue
        self.function.add_event_source(
            event_sources.SqsEventSource(
                export_queue.queue,
                batch_size=tasks.batch_size,
                max_concurrency=tasks.max_concurrency,
                report_batch_item_failures=True,
            )
        )
        return export_queue.dead_letters

    def _wire_stream(self, stream: TableStream, queue: sqs.Queue) -> None:
        self.function.add_event_source(
            event_sources.DynamoEventSource(
                self.shared.table,
                starting_position=(
                    lambda_.StartingPosition.TRIM_HORIZON if stream.from_oldest else lambda_.StartingPosition.LATEST
                ),
                batch_size=stream.batch_size,
                bisect_batch_on_error=True,
                report_batch_item_failures=True,
                retry_attempts=self.spec.retry_attempts,
                on_failure=event_sources.SqsDlq(queue),
                # No filters at all rather than an empty list, which CloudFormation rejects.
                filters=[lambda_.FilterCriteria.filter(pattern) for pattern in stream.filters] or None,
            )
        )

    def _alarms(self) -> list[cloudwatch.Alarm]:
        prefix = f"{self.shared.settings.prefix}-{kebab(self.spec.name)}"
        period = Duration.minutes(ALARM_PERIOD_MINUTES)
        alarms = [
            alarm(self, "Errors", f"{prefix}-errors", self.function.metric_errors(period=period, statistic="Sum"))
        ]
        if self.failure_queue is not None:
            depth = self.failure_queue.metric_approximate_number_of_messages_visible(period=period, statistic="Maximum")
            alarms.append(alarm(self, "FailureQueueDepth", f"{prefix}-failures", depth))
        for app_alarm in self.spec.alarms:
            alarms.append(app_metric_alarm(self, prefix, app_alarm))
        return alarms

    def _acknowledge(self) -> None:
        wildcard_reasons = ["X-Ray's PutTraceSegments and PutTelemetryRecords (active tracing)"]
        if isinstance(self.spec.trigger, TableStream):
            wildcard_reasons.append("dynamodb:ListStreams (stream event source)")
        findings = {
            "AwsSolutions-IAM5[Resource::*]": f"{' and '.join(wildcard_reasons)} support no resource-level "
            "permissions; every other statement of this role names its resources.",
        }
        if isinstance(self.spec.trigger, Every):
            function_id = logical_id(self.function)
            findings[f"AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]"] = (
                "The Scheduler may invoke this one function; CDK grants its ARN with and without a version qualifier."
            )
        if Access.TABLE in self.spec.access:
            table_id = logical_id(self.shared.table)
            findings |= {
                f"AwsSolutions-IAM5[Resource::<{table_id}.Arn>/index/*]": "grant_read_write_data covers the "
                "table's own global secondary indexes (gsi1, gsi2, gsi3), which the store queries.",
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]": "CDK's grant for the table's customer-managed key; "
                "scoped to that one key.",
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": "CDK's grant for the table's customer-managed "
                "key; scoped to that one key.",
            }
        if Access.LAKE_QUERY in self.spec.access:
            findings |= self.shared.lake.query_findings()
        acknowledge(self, findings)


def logical_id(construct: IConstruct) -> str:
    """The template id of an L2 construct's resource: cdk-nag names resources by it in finding ids."""
    resource = construct.node.default_child
    if not isinstance(resource, CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    return Stack.of(construct).get_logical_id(resource)


def alarm(scope: Construct, construct_id: str, name: str, metric: cloudwatch.IMetric) -> cloudwatch.Alarm:
    """Any occurrence in a period alarms: each of these counts something that should never happen."""
    return cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_name=name,
        metric=metric,
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )


def app_metric_alarm(scope: Construct, prefix: str, spec: AppMetricAlarm) -> cloudwatch.Alarm:
    metric = cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=spec.metric_name,
        dimensions_map={"service": SERVICE_NAME},
        statistic=spec.statistic,
        period=Duration.minutes(spec.period_minutes),
    )
    return cloudwatch.Alarm(
        scope,
        spec.metric_name,
        alarm_name=f"{prefix}-{kebab(spec.metric_name)}",
        metric=metric,
        threshold=spec.threshold,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator[spec.comparison.name],
        treat_missing_data=(
            cloudwatch.TreatMissingData.BREACHING
            if spec.missing_is_breaching
            else cloudwatch.TreatMissingData.NOT_BREACHING
        ),
    )


def removal_policy(settings: StackSettings) -> RemovalPolicy:
    """Protected stages keep their data when the stack goes; other stages clean up after themselves."""
    return RemovalPolicy.RETAIN if settings.protected else RemovalPolicy.DESTROY
