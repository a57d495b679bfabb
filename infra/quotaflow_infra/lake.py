"""`UsageLake`: the analytics side of the stack. Ledger entries (sent by the LakeWriter function off the table's
stream) go through a Firehose stream that converts them to Parquet and partitions them by tenant and day in S3;
a Glue table describes them (partition projection: no crawler, no partition maintenance); an Athena workgroup
with its own encrypted results bucket and a bytes-scanned limit per query runs the API's usage queries.

Why Firehose behind a small function rather than a function writing Parquet itself: Firehose buffers minutes of
records into one file per partition (a function would write a small file per batch, slow to scan), converts to
Parquet against the Glue schema without pyarrow in any Lambda bundle, and retries S3 writes on its own."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from quotaflow_infra.lambdas import acknowledge, logical_id
from quotaflow_infra.settings import LOG_RETENTION, StackSettings

# The lake's columns, as functions/quotaflow/store/lake.py writes them (tests/infra compares the two).
LAKE_COLUMNS: dict[str, str] = {
    "entry_id": "string",
    "occurred_at": "string",
    "user_id": "string",
    "account_id": "string",
    "meter": "string",
    "kind": "string",
    "period_key": "string",
    "delta_used": "bigint",
    "delta_reserved": "bigint",
    "delta_credits": "bigint",
    "delta_quota": "bigint",
    "ref": "string",
    "model": "string",
    "properties": "map<string,string>",
}
PARTITION_KEYS = ("tenant_id", "day")
Delivery = firehose.CfnDeliveryStream  # its property classes have long names
LAKE_PREFIX = "ledger/"
LAKE_TABLE = "ledger_entries"
PROJECTION_DAYS_FROM = "2024-01-01"  # the first day partition projection enumerates; later days come by `NOW`
# Firehose: dynamic partitioning needs at least 64 MB buffers; 5 minutes bounds how stale the lake is.
BUFFER_MB = 128
BUFFER_S = 300
PARTITIONING_RETRY_S = 300
# Athena stops (and bills no further) a query scanning more than this: 10 GB is years of a busy tenant's entries.
BYTES_SCANNED_CUTOFF = 10 * 1024**3
RESULTS_KEPT_DAYS = 7  # query results are read within seconds; the API polls a query for a day at most
ACCESS_LOGS_KEPT_DAYS = 90
FIREHOSE_S3_ACTIONS = [
    "s3:AbortMultipartUpload",
    "s3:GetBucketLocation",
    "s3:GetObject",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:PutObject",
]
LAKE_READ_ACTIONS = ["s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket"]
RESULTS_ACTIONS = [*LAKE_READ_ACTIONS, "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
KMS_DATA_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey"]
ENV_LAKE_STREAM = "QUOTAFLOW_LAKE_STREAM"
ENV_LAKE_DATABASE = "QUOTAFLOW_LAKE_DATABASE"
ENV_LAKE_TABLE = "QUOTAFLOW_LAKE_TABLE"
ENV_ATHENA_WORKGROUP = "QUOTAFLOW_ATHENA_WORKGROUP"


class UsageLake(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        self.key = key
        removal = RemovalPolicy.RETAIN if settings.protected else RemovalPolicy.DESTROY
        self.access_logs = self._access_logs_bucket(removal)
        self.bucket = self._bucket("Bucket", "lake/", removal)
        self.results = self._bucket("AthenaResults", "athena-results/", removal, expire_days=RESULTS_KEPT_DAYS)
        self.database_name = f"quotaflow_{settings.stage.replace('-', '_')}"
        self.table_name = LAKE_TABLE
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description=f"quotaflow {settings.stage}: the usage lake"
            ),
        )
        self.table = self._table()
        self.delivery = self._delivery_stream()
        self.workgroup = self._workgroup()
        CfnOutput(self, "LakeBucketName", value=self.bucket.bucket_name, description="Parquet, tenant_id=/day=")
        CfnOutput(self, "LakeDatabase", value=self.database_name, description=f"Glue database; table {LAKE_TABLE}")
        CfnOutput(self, "AthenaWorkGroup", value=self.workgroup.name)

    # --- storage ---------------------------------------------------------------------------------------------

    def _access_logs_bucket(self, removal: RemovalPolicy) -> s3.Bucket:
        # S3 server access logs can only be delivered to SSE-S3 buckets.
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(ACCESS_LOGS_KEPT_DAYS))],
            removal_policy=removal,
        )
        acknowledge(
            bucket,
            {
                "AwsSolutions-S1": "This bucket receives the lake's and the Athena results' server access logs; "
                "logging its own access would need yet another bucket, and so on.",
            },
        )
        return bucket

    def _bucket(self, construct_id: str, log_prefix: str, removal: RemovalPolicy, expire_days: int = 0) -> s3.Bucket:
        return s3.Bucket(
            self,
            construct_id,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,  # one KMS call per object prefix instead of per object: Athena reads many
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=log_prefix,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(expire_days))] if expire_days else None,
            removal_policy=removal,
        )

    def _table(self) -> glue.CfnTable:
        location = f"s3://{self.bucket.bucket_name}/{LAKE_PREFIX}"
        template = location + "/".join(f"{name}=${{{name}}}" for name in PARTITION_KEYS) + "/"
        table = glue.CfnTable(
            self,
            "Table",
            catalog_id=Aws.ACCOUNT_ID,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=LAKE_TABLE,
                description="quotaflow ledger entries, one row per entry (at least once: dedupe by entry_id)",
                table_type="EXTERNAL_TABLE",
                partition_keys=[glue.CfnTable.ColumnProperty(name=name, type="string") for name in PARTITION_KEYS],
                parameters={
                    "classification": "parquet",
                    "EXTERNAL": "TRUE",
                    # Partition projection: `tenant_id` must be given by equality in every query (the API's
                    # queries always are), days are enumerated from the date range.
                    "projection.enabled": "true",
                    "projection.tenant_id.type": "injected",
                    "projection.day.type": "date",
                    "projection.day.format": "yyyy-MM-dd",
                    "projection.day.range": f"{PROJECTION_DAYS_FROM},NOW",
                    "projection.day.interval": "1",
                    "projection.day.interval.unit": "DAYS",
                    "storage.location.template": template,
                },
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=[glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in LAKE_COLUMNS.items()],
                    location=location,
                    input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                    ),
                ),
            ),
        )
        table.add_dependency(self.database)
        return table

    # --- delivery ------------------------------------------------------------------------------------------

    def _glue_arns(self) -> list[str]:
        base = f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        database = self.database_name
        return [f"{base}:catalog", f"{base}:database/{database}", f"{base}:table/{database}/{LAKE_TABLE}"]

    def _delivery_stream(self) -> firehose.CfnDeliveryStream:
        settings = self.settings
        role = iam.Role(self, "DeliveryRole", assumed_by=iam.ServicePrincipal("firehose.amazonaws.com"))
        # Named actions rather than CDK's grant_read_write (s3:DeleteObject*, s3:Abort*, ...): what Firehose uses.
        self._allow(role, self.bucket, FIREHOSE_S3_ACTIONS)
        role.add_to_policy(iam.PolicyStatement(actions=KMS_DATA_ACTIONS, resources=[self.key.key_arn]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"], resources=self._glue_arns()
            )
        )
        acknowledge(role, self._object_findings(self.bucket, "Firehose writes one object per partition and buffer"))
        log_group = logs.LogGroup(
            self,
            "DeliveryLogs",
            log_group_name=f"/{settings.prefix}/lake-delivery",
            retention=LOG_RETENTION[settings.log_retention_days],
            encryption_key=self.key,
            removal_policy=RemovalPolicy.RETAIN if settings.protected else RemovalPolicy.DESTROY,
        )
        log_stream = logs.LogStream(self, "DeliveryLogStream", log_group=log_group, log_stream_name="S3Delivery")
        log_group.grant_write(role)
        partition = "/".join(f"{name}=!{{partitionKeyFromQuery:{name}}}" for name in PARTITION_KEYS)
        stream = firehose.CfnDeliveryStream(
            self,
            "Delivery",
            delivery_stream_name=f"{settings.prefix}-lake",
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=Delivery.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="CUSTOMER_MANAGED_CMK", key_arn=self.key.key_arn
            ),
            extended_s3_destination_configuration=Delivery.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.bucket.bucket_arn,
                role_arn=role.role_arn,
                prefix=f"{LAKE_PREFIX}{partition}/",
                error_output_prefix="errors/!{firehose:error-output-type}/!{timestamp:yyyy-MM-dd}/",
                buffering_hints=Delivery.BufferingHintsProperty(size_in_m_bs=BUFFER_MB, interval_in_seconds=BUFFER_S),
                compression_format="UNCOMPRESSED",  # Parquet compresses its own pages (Snappy)
                encryption_configuration=Delivery.EncryptionConfigurationProperty(
                    kms_encryption_config=Delivery.KMSEncryptionConfigProperty(awskms_key_arn=self.key.key_arn)
                ),
                cloud_watch_logging_options=Delivery.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=log_group.log_group_name, log_stream_name=log_stream.log_stream_name
                ),
                data_format_conversion_configuration=Delivery.DataFormatConversionConfigurationProperty(
                    enabled=True,
                    input_format_configuration=Delivery.InputFormatConfigurationProperty(
                        deserializer=Delivery.DeserializerProperty(open_x_json_ser_de=Delivery.OpenXJsonSerDeProperty())
                    ),
                    output_format_configuration=Delivery.OutputFormatConfigurationProperty(
                        serializer=Delivery.SerializerProperty(
                            parquet_ser_de=Delivery.ParquetSerDeProperty(compression="SNAPPY")
                        )
                    ),
                    schema_configuration=Delivery.SchemaConfigurationProperty(
                        catalog_id=Aws.ACCOUNT_ID,
                        database_name=self.database_name,
                        table_name=LAKE_TABLE,
                        region=Aws.REGION,
                        role_arn=role.role_arn,
                        version_id="LATEST",
                    ),
                ),
                dynamic_partitioning_configuration=Delivery.DynamicPartitioningConfigurationProperty(
                    enabled=True,
                    retry_options=Delivery.RetryOptionsProperty(duration_in_seconds=PARTITIONING_RETRY_S),
                ),
                processing_configuration=Delivery.ProcessingConfigurationProperty(
                    enabled=True,
                    processors=[
                        Delivery.ProcessorProperty(
                            type="MetadataExtraction",
                            parameters=[
                                Delivery.ProcessorParameterProperty(
                                    parameter_name="MetadataExtractionQuery",
                                    parameter_value="{" + ",".join(f"{n}: .{n}" for n in PARTITION_KEYS) + "}",
                                ),
                                Delivery.ProcessorParameterProperty(
                                    parameter_name="JsonParsingEngine", parameter_value="JQ-1.6"
                                ),
                            ],
                        )
                    ],
                ),
            ),
        )
        # The stream checks its role's permissions when it is created: the policy must exist first.
        policy = role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            stream.node.add_dependency(policy)
        stream.add_dependency(self.table)
        return stream

    # --- queries -------------------------------------------------------------------------------------------

    def _workgroup(self) -> athena.CfnWorkGroup:
        return athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=f"{self.settings.prefix}-analytics",
            description=f"quotaflow {self.settings.stage}: usage queries over the lake",
            state="ENABLED",
            recursive_delete_option=not self.settings.protected,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,  # clients cannot send results elsewhere or unencrypted
                bytes_scanned_cutoff_per_query=BYTES_SCANNED_CUTOFF,
                publish_cloud_watch_metrics_enabled=True,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.results.bucket_name}/",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=self.key.key_arn
                    ),
                ),
            ),
        )

    @property
    def workgroup_arn(self) -> str:
        return Stack.of(self).format_arn(service="athena", resource="workgroup", resource_name=self.workgroup.name)

    @property
    def stream_arn(self) -> str:
        return self.delivery.attr_arn

    # --- what functions get ------------------------------------------------------------------------------

    @property
    def write_environment(self) -> dict[str, str]:
        return {ENV_LAKE_STREAM: f"{self.settings.prefix}-lake"}

    @property
    def query_environment(self) -> dict[str, str]:
        return {
            ENV_ATHENA_WORKGROUP: self.workgroup.name,
            ENV_LAKE_DATABASE: self.database_name,
            ENV_LAKE_TABLE: LAKE_TABLE,
        }

    def grant_write(self, grantee: iam.IGrantable) -> None:
        """Put records on the delivery stream."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["firehose:PutRecordBatch"], resources=[self.stream_arn])
        )

    def grant_query(self, grantee: iam.IGrantable) -> None:
        """Run Athena queries in the workgroup over the lake, and read their results."""
        principal = grantee.grant_principal
        principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults"],
                resources=[self.workgroup_arn],
            )
        )
        principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["glue:GetDatabase", "glue:GetTable"], resources=self._glue_arns())
        )
        self._allow(principal, self.bucket, LAKE_READ_ACTIONS)
        self._allow(principal, self.results, RESULTS_ACTIONS)
        principal.add_to_principal_policy(iam.PolicyStatement(actions=KMS_DATA_ACTIONS, resources=[self.key.key_arn]))

    def query_findings(self) -> dict[str, str]:
        """What a querying function's role must acknowledge (object ARNs are the only way to name objects)."""
        return {
            **self._object_findings(self.bucket, "Athena reads the lake's Parquet objects, whatever their names"),
            **self._object_findings(self.results, "Athena writes each query's result object, and the API reads it"),
        }

    def _object_findings(self, bucket: s3.Bucket, reason: str) -> dict[str, str]:
        return {f"AwsSolutions-IAM5[Resource::<{logical_id(bucket)}.Arn>/*]": f"{reason}: objects of this one bucket."}

    @staticmethod
    def _allow(principal: iam.IPrincipal, bucket: s3.Bucket, actions: list[str]) -> None:
        statement = iam.PolicyStatement(actions=actions, resources=[bucket.bucket_arn, bucket.arn_for_objects("*")])
        principal.add_to_principal_policy(statement)
