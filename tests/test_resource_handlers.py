"""Resource handlers of the sandbox engine: request mapping (pure) and live create /
update / delete against the sandbox's moto server over HTTP, read back with plain boto3."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from mirror_rollout.aws import AwsClients
from mirror_rollout.errors import ConfigError, RolloutError
from mirror_rollout.provisioners.sandbox import resources
from mirror_rollout.provisioners.sandbox.resources import (
    DATA_SOURCES,
    HANDLERS,
    NotProvisionable,
    backup,
    cloudtrail,
    cloudwatch,
    dynamodb,
    iam,
    kms,
    s3,
    sns,
    ssm,
)
from mirror_rollout.provisioners.sandbox.resources.common import (
    partition_info,
    tag_changes,
    tags_of,
)

REGION = "us-east-1"
INFRA = Path(__file__).resolve().parents[1] / "infra" / "terraform"
BACKUP_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"
TAGS = {"Project": "mirror-dissonance", "Environment": "staging", "ManagedBy": "terraform"}


def uid() -> str:
    return uuid.uuid4().hex[:8]


def client(service: str, attempts: int | None = None) -> Any:
    config = Config(retries={"mode": "standard", "max_attempts": attempts}) if attempts else None
    return boto3.client(service, region_name=REGION, config=config)


def make(type_: str) -> Any:
    return HANDLERS[type_]()


def assert_state(out: dict[str, Any], config: dict[str, Any], *computed: str) -> None:
    """The state holds every configured argument unchanged plus the computed ones."""
    assert {k: out[k] for k in config} == config
    for key in ("id", *computed):
        assert out.get(key), f"computed attribute {key} missing from {sorted(out)}"


def fp_events_config(name: str, key_arn: str, pitr: bool = True) -> dict[str, Any]:
    """aws_dynamodb_table.fp_events of infra/terraform/main.tf for staging."""
    return {
        "name": name,
        "billing_mode": "PAY_PER_REQUEST",
        "hash_key": "pk",
        "range_key": "sk",
        "deletion_protection_enabled": False,
        "attribute": [
            {"name": "pk", "type": "S"},
            {"name": "sk", "type": "S"},
            {"name": "gsi1pk", "type": "S"},
            {"name": "gsi1sk", "type": "S"},
        ],
        "global_secondary_index": [
            {
                "name": "FindingIndex",
                "hash_key": "gsi1pk",
                "range_key": "gsi1sk",
                "projection_type": "ALL",
            }
        ],
        "ttl": [{"attribute_name": "expiresAt", "enabled": True}],
        "point_in_time_recovery": [{"enabled": pitr}],
        "server_side_encryption": [{"enabled": True, "kms_key_arn": key_arn}],
        "tags": dict(TAGS),
    }


def throttle_alarm_config(name: str, table: str, topic_arn: str) -> dict[str, Any]:
    return {
        "alarm_name": name,
        "alarm_description": f"ReadThrottleEvents on {table} above 10 in 300s",
        "namespace": "AWS/DynamoDB",
        "metric_name": "ReadThrottleEvents",
        "comparison_operator": "GreaterThanThreshold",
        "evaluation_periods": 1,
        "period": 300,
        "statistic": "Sum",
        "threshold": 10,
        "treat_missing_data": "notBreaching",
        "alarm_actions": [topic_arn],
        "ok_actions": [topic_arn],
        "dimensions": {"TableName": table},
    }


def audit_bucket_policy(bucket: str, baselines: str, trail_arn: str) -> str:
    """aws_s3_bucket_policy.audit_logs of infra/terraform/main.tf."""
    arn = f"arn:aws:s3:::{bucket}"
    principal_ct = {"Service": "cloudtrail.amazonaws.com"}
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "CloudTrailAclCheck",
                    "Effect": "Allow",
                    "Principal": principal_ct,
                    "Action": "s3:GetBucketAcl",
                    "Resource": arn,
                    "Condition": {"StringEquals": {"aws:SourceArn": trail_arn}},
                },
                {
                    "Sid": "CloudTrailWrite",
                    "Effect": "Allow",
                    "Principal": principal_ct,
                    "Action": "s3:PutObject",
                    "Resource": f"{arn}/cloudtrail/AWSLogs/123456789012/*",
                    "Condition": {
                        "StringEquals": {
                            "s3:x-amz-acl": "bucket-owner-full-control",
                            "aws:SourceArn": trail_arn,
                        }
                    },
                },
                {
                    "Sid": "S3ServerAccessLogsWrite",
                    "Effect": "Allow",
                    "Principal": {"Service": "logging.s3.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": f"{arn}/s3-access/*",
                    "Condition": {
                        "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{baselines}"},
                        "StringEquals": {"aws:SourceAccount": "123456789012"},
                    },
                },
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )


TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "backup.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


# ===========================================================================
# Registry and pure request mapping (no AWS)
# ===========================================================================


def test_every_type_in_infra_terraform_has_a_handler_or_data_source():
    used = set()
    for tf in INFRA.glob("*.tf"):
        used |= set(re.findall(r'^(resource|data)\s+"(\w+)"', tf.read_text(), re.M))
    assert used, "no resource found in infra/terraform"
    missing = [
        f"{kind} {t}"
        for kind, t in sorted(used)
        if t not in (HANDLERS if kind == "resource" else DATA_SOURCES)
    ]
    assert missing == []
    assert {"aws_caller_identity", "aws_partition", "aws_region"} <= set(DATA_SOURCES)
    assert resources.HANDLERS is HANDLERS


def test_every_computed_attribute_referenced_in_infra_terraform_is_returned():
    """Each <type>.<name>.<attr> reference in the .tf names an attribute the handler
    returns: a configured argument or one of the computed ones asserted in live tests."""
    computed = {
        "aws_kms_key": {"id", "key_id", "arn"},
        "aws_kms_alias": {"id", "arn", "name", "target_key_arn"},
        "aws_dynamodb_table": {"id", "arn", "name", "stream_arn", "stream_label"},
        "aws_ssm_parameter": {"id", "arn", "name", "version"},
        "aws_sns_topic": {"id", "arn", "name", "owner"},
        "aws_cloudwatch_metric_alarm": {"id", "arn", "alarm_name"},
        "aws_cloudwatch_dashboard": {"id", "dashboard_arn", "dashboard_name"},
        "aws_s3_bucket": {"id", "arn", "bucket", "bucket_domain_name", "region"},
        "aws_iam_openid_connect_provider": {"id", "arn"},
        "aws_iam_role": {"id", "arn", "name", "unique_id"},
        "aws_cloudtrail": {"id", "arn", "home_region"},
        "aws_backup_vault": {"id", "arn", "name"},
        "aws_backup_plan": {"id", "arn", "version"},
    }
    text = "\n".join(tf.read_text() for tf in INFRA.glob("*.tf"))
    refs = set(re.findall(r"\b(aws_\w+)\.\w+(?:\[[^\]]+\])?\.(\w+)", text))
    unknown = sorted(f"{t}.{attr}" for t, attr in refs if t in computed and attr not in computed[t])
    assert unknown == []


def test_force_new_sets():
    assert HANDLERS["aws_dynamodb_table"].force_new >= {"name", "hash_key", "range_key"}
    assert "point_in_time_recovery" not in HANDLERS["aws_dynamodb_table"].force_new
    assert HANDLERS["aws_kms_alias"].force_new == {"name", "name_prefix"}
    assert HANDLERS["aws_s3_bucket"].force_new >= {"bucket"}
    assert HANDLERS["aws_ssm_parameter"].force_new >= {"name"}
    assert "value" not in HANDLERS["aws_ssm_parameter"].force_new
    assert HANDLERS["aws_sns_topic"].force_new >= {"name"}
    assert HANDLERS["aws_cloudwatch_metric_alarm"].force_new == {"alarm_name"}
    assert HANDLERS["aws_iam_role"].force_new >= {"name"}
    assert HANDLERS["aws_iam_openid_connect_provider"].force_new == {"url"}
    assert HANDLERS["aws_iam_role_policy_attachment"].force_new == {"role", "policy_arn"}
    assert HANDLERS["aws_backup_selection"].force_new >= {"plan_id", "resources"}
    for type_, cls in HANDLERS.items():
        assert cls.type == type_
        assert cls.provisionable or cls.not_provisionable_reason


def test_only_backup_selection_is_not_provisionable_at_all():
    assert sorted(t for t, c in HANDLERS.items() if not c.provisionable) == ["aws_backup_selection"]
    assert "moto does not implement" in HANDLERS["aws_backup_selection"].not_provisionable_reason


def test_tags_merge_default_tags_and_diff():
    assert tags_of({"tags_all": {"a": "1", "b": "2"}, "tags": {"b": "3"}}) == {"a": "1", "b": "3"}
    assert tags_of({}) == {}
    assert tag_changes(
        {"tags": {"a": "1", "b": "2"}}, {"tags": {"a": "1", "b": "9", "c": "3"}}
    ) == (
        {"b": "9", "c": "3"},
        [],
    )
    assert tag_changes({"tags": {"a": "1", "b": "2"}}, {"tags": {"a": "1"}}) == ({}, ["b"])


def test_partition_info():
    assert partition_info("us-east-1") == {
        "partition": "aws",
        "dns_suffix": "amazonaws.com",
        "description": "US East (N. Virginia)",
    }
    assert partition_info("cn-north-1")["partition"] == "aws-cn"
    assert partition_info("cn-north-1")["dns_suffix"] == "amazonaws.com.cn"
    assert partition_info("us-gov-west-1")["partition"] == "aws-us-gov"


def test_table_request_for_fp_events():
    key = "arn:aws:kms:us-east-1:123456789012:key/k"
    req = dynamodb.table_request(fp_events_config("t", key))
    assert req["TableName"] == "t"
    assert req["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in req
    assert req["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {a["AttributeName"] for a in req["AttributeDefinitions"]} == {
        "pk",
        "sk",
        "gsi1pk",
        "gsi1sk",
    }
    assert req["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "FindingIndex",
            "KeySchema": [
                {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ]
    assert req["SSESpecification"] == {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key}
    assert req["DeletionProtectionEnabled"] is False
    assert {"Key": "Project", "Value": "mirror-dissonance"} in req["Tags"]


def test_table_request_for_a_hash_only_provisioned_table():
    req = dynamodb.table_request(
        {
            "name": "c",
            "hash_key": "orgId",
            "read_capacity": 5,
            "write_capacity": 2,
            "attribute": [{"name": "orgId", "type": "S"}],
        }
    )
    assert req["BillingMode"] == "PROVISIONED"  # the provider's default
    assert req["ProvisionedThroughput"] == {"ReadCapacityUnits": 5, "WriteCapacityUnits": 2}
    assert req["KeySchema"] == [{"AttributeName": "orgId", "KeyType": "HASH"}]
    assert "SSESpecification" not in req and "GlobalSecondaryIndexes" not in req


def test_table_ttl_pitr_and_sse_specifications():
    assert dynamodb.ttl_specification(
        {"ttl": [{"attribute_name": "expiresAt", "enabled": True}]}
    ) == {
        "Enabled": True,
        "AttributeName": "expiresAt",
    }
    assert dynamodb.ttl_specification({"ttl": [{"attribute_name": "x", "enabled": False}]}) is None
    assert dynamodb.ttl_specification({}) is None
    assert dynamodb.pitr_specification({"point_in_time_recovery": [{"enabled": True}]}) == {
        "PointInTimeRecoveryEnabled": True
    }
    assert dynamodb.pitr_specification({}) == {"PointInTimeRecoveryEnabled": False}
    assert dynamodb.sse_specification({}) is None
    assert dynamodb.sse_specification({"server_side_encryption": [{"enabled": False}]}) == {
        "Enabled": False
    }
    assert dynamodb.sse_specification({"server_side_encryption": [{"enabled": True}]}) == {
        "Enabled": True,
        "SSEType": "KMS",
    }


def test_unsupported_table_arguments_fail_clearly():
    with pytest.raises(ConfigError, match="replica"):
        make("aws_dynamodb_table").create(
            AwsClients(REGION),
            {**fp_events_config("x", "k"), "replica": [{"region_name": "eu-west-1"}]},
        )


def test_alarm_request_maps_every_argument():
    topic = "arn:aws:sns:us-east-1:123456789012:ops"
    req = cloudwatch.alarm_request(
        {
            **throttle_alarm_config("a", "tbl", topic),
            "insufficient_data_actions": [topic],
            "actions_enabled": False,
            "datapoints_to_alarm": 1,
            "unit": "Count",
            "tags": {"k": "v"},
        }
    )
    assert req == {
        "AlarmName": "a",
        "AlarmDescription": "ReadThrottleEvents on tbl above 10 in 300s",
        "Namespace": "AWS/DynamoDB",
        "MetricName": "ReadThrottleEvents",
        "ComparisonOperator": "GreaterThanThreshold",
        "EvaluationPeriods": 1,
        "Period": 300,
        "Statistic": "Sum",
        "Threshold": 10.0,
        "TreatMissingData": "notBreaching",
        "ActionsEnabled": False,
        "AlarmActions": [topic],
        "OKActions": [topic],
        "InsufficientDataActions": [topic],
        "Dimensions": [{"Name": "TableName", "Value": "tbl"}],
        "DatapointsToAlarm": 1,
        "Unit": "Count",
        "Tags": [{"Key": "k", "Value": "v"}],
    }
    minimal = cloudwatch.alarm_request(
        {"alarm_name": "b", "comparison_operator": "GreaterThanThreshold", "evaluation_periods": 2}
    )
    assert minimal["ActionsEnabled"] is True and minimal["TreatMissingData"] == "missing"
    assert "Dimensions" not in minimal and "Tags" not in minimal
    assert "Tags" not in cloudwatch.alarm_request(
        {**throttle_alarm_config("a", "t", topic), "tags": {"k": "v"}}, with_tags=False
    )


def test_alarm_metric_query_mapping():
    query = cloudwatch.metric_query(
        {
            "id": "m1",
            "return_data": True,
            "metric": [
                {
                    "namespace": "AWS/DynamoDB",
                    "metric_name": "ReadThrottleEvents",
                    "period": 300,
                    "stat": "Sum",
                    "dimensions": {"TableName": "t"},
                }
            ],
        }
    )
    assert query == {
        "Id": "m1",
        "ReturnData": True,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/DynamoDB",
                "MetricName": "ReadThrottleEvents",
                "Dimensions": [{"Name": "TableName", "Value": "t"}],
            },
            "Period": 300,
            "Stat": "Sum",
        },
    }


def test_kms_key_request_and_deletion_window():
    req = kms.key_request(
        {
            "description": "CMK",
            "enable_key_rotation": True,
            "deletion_window_in_days": 7,
            "policy": '{"Version":"2012-10-17"}',
            "tags": {"a": "b"},
        }
    )
    assert req == {
        "Description": "CMK",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "Policy": '{"Version":"2012-10-17"}',
        "Tags": [{"TagKey": "a", "TagValue": "b"}],
    }
    assert kms.deletion_request({"id": "k", "deletion_window_in_days": 7}) == {
        "KeyId": "k",
        "PendingWindowInDays": 7,
    }
    assert kms.deletion_request({"id": "k"})["PendingWindowInDays"] == 30


def test_ssm_parameter_request():
    base = {
        "name": "/guardian/staging/redaction_nonce_v1",
        "description": "nonce v1",
        "type": "SecureString",
        "tier": "Standard",
        "key_id": "arn:aws:kms:us-east-1:123456789012:key/k",
        "tags": {"a": "b"},
    }
    req = ssm.parameter_request({**base, "value_wo": "PLACEHOLDER", "value_wo_version": 1})
    assert req == {
        "Name": "/guardian/staging/redaction_nonce_v1",
        "Type": "SecureString",
        "Value": "PLACEHOLDER",
        "Description": "nonce v1",
        "Tier": "Standard",
        "KeyId": "arn:aws:kms:us-east-1:123456789012:key/k",
        "Tags": [{"Key": "a", "Value": "b"}],
    }
    over = ssm.parameter_request({**base, "value": "P"}, overwrite=True)
    assert over["Overwrite"] is True and "Tags" not in over and over["Value"] == "P"
    assert "KeyId" not in ssm.parameter_request({**base, "type": "String", "value": "x"})
    assert (
        ssm.value_changed({"value_wo_version": 1}, {"value_wo": "P", "value_wo_version": 1})
        is False
    )
    assert (
        ssm.value_changed({"value_wo_version": 1}, {"value_wo": "P", "value_wo_version": 2}) is True
    )


def test_sns_requests_use_string_attributes():
    req = sns.topic_request(
        {"name": "t", "kms_master_key_id": "arn:k", "fifo_topic": False, "tags": {"a": "b"}}
    )
    assert req == {
        "Name": "t",
        "Attributes": {"KmsMasterKeyId": "arn:k"},
        "Tags": [{"Key": "a", "Value": "b"}],
    }
    assert sns.attribute_value(True) == "true" and sns.attribute_value(5.0) == "5"
    sub = sns.subscription_request(
        {
            "topic_arn": "arn:t",
            "protocol": "email",
            "endpoint": "ops@example.com",
            "raw_message_delivery": True,
        }
    )
    assert sub == {
        "TopicArn": "arn:t",
        "Protocol": "email",
        "Endpoint": "ops@example.com",
        "ReturnSubscriptionArn": True,
        "Attributes": {"RawMessageDelivery": "true"},
    }


def test_s3_companion_requests():
    assert s3.create_bucket_request({"bucket": "b"}, "us-east-1") == {"Bucket": "b"}
    assert s3.create_bucket_request({"bucket": "b"}, "eu-west-1")["CreateBucketConfiguration"] == {
        "LocationConstraint": "eu-west-1"
    }
    assert s3.versioning_request(
        {"bucket": "b", "versioning_configuration": [{"status": "Enabled"}]}
    ) == {"Bucket": "b", "VersioningConfiguration": {"Status": "Enabled"}}
    enc = s3.encryption_request(
        {
            "bucket": "b",
            "rule": [
                {
                    "bucket_key_enabled": True,
                    "apply_server_side_encryption_by_default": [
                        {"sse_algorithm": "aws:kms", "kms_master_key_id": "arn:k"}
                    ],
                }
            ],
        }
    )
    assert enc == {
        "Bucket": "b",
        "ServerSideEncryptionConfiguration": {
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": "arn:k",
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    }
    pab = s3.public_access_block_request({"bucket": "b", "block_public_acls": True})
    assert pab["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": False,
        "IgnorePublicAcls": False,
        "RestrictPublicBuckets": False,
    }
    log = s3.logging_request({"bucket": "b", "target_bucket": "t", "target_prefix": "s3-access/b/"})
    assert log == {
        "Bucket": "b",
        "BucketLoggingStatus": {
            "LoggingEnabled": {"TargetBucket": "t", "TargetPrefix": "s3-access/b/"}
        },
    }
    assert s3.companion_id({"bucket": "b", "expected_bucket_owner": "1"}) == "b,1"


def test_policy_grants_log_delivery():
    policy = audit_bucket_policy("audit", "base", "arn:aws:cloudtrail:us-east-1:1:trail/t")
    assert s3.policy_grants_log_delivery(policy) is True
    assert s3.policy_grants_log_delivery(TRUST_POLICY) is False
    assert s3.policy_grants_log_delivery(None) is False


def test_cloudtrail_requests():
    config = {
        "name": "trail",
        "s3_bucket_name": "audit",
        "s3_key_prefix": "cloudtrail",
        "kms_key_id": "arn:k",
        "enable_log_file_validation": True,
        "is_multi_region_trail": True,
        "event_selector": [
            {
                "read_write_type": "All",
                "include_management_events": True,
                "data_resource": [{"type": "AWS::DynamoDB::Table", "values": ["arn:t1", "arn:t2"]}],
            }
        ],
    }
    req = cloudtrail.trail_request(config)
    assert req == {
        "Name": "trail",
        "S3BucketName": "audit",
        "S3KeyPrefix": "cloudtrail",
        "KmsKeyId": "arn:k",
        "IncludeGlobalServiceEvents": True,
        "IsMultiRegionTrail": True,
        "EnableLogFileValidation": True,
        "IsOrganizationTrail": False,
    }
    assert cloudtrail.event_selectors_request(config) == {
        "TrailName": "trail",
        "EventSelectors": [
            {
                "ReadWriteType": "All",
                "IncludeManagementEvents": True,
                "DataResources": [{"Type": "AWS::DynamoDB::Table", "Values": ["arn:t1", "arn:t2"]}],
            }
        ],
    }
    assert cloudtrail.event_selectors_request({"name": "x"}) is None


def test_backup_requests_apply_provider_defaults():
    plan = backup.plan_request(
        {
            "name": "p",
            "rule": [
                {
                    "rule_name": "daily",
                    "target_vault_name": "v",
                    "schedule": "cron(0 5 * * ? *)",
                    "start_window": 60,
                    "completion_window": 240,
                    "lifecycle": [{"delete_after": 35}],
                }
            ],
        }
    )
    assert plan == {
        "BackupPlan": {
            "BackupPlanName": "p",
            "Rules": [
                {
                    "RuleName": "daily",
                    "TargetBackupVaultName": "v",
                    "ScheduleExpression": "cron(0 5 * * ? *)",
                    "StartWindowMinutes": 60,
                    "CompletionWindowMinutes": 240,
                    "EnableContinuousBackup": False,
                    "ScheduleExpressionTimezone": "Etc/UTC",
                    "Lifecycle": {"DeleteAfterDays": 35},
                }
            ],
        }
    }
    assert (
        backup.backup_rule({"rule_name": "r", "target_vault_name": "v"})["CompletionWindowMinutes"]
        == 180
    )
    assert backup.selection_request(
        {"name": "s", "plan_id": "p1", "iam_role_arn": "arn:r", "resources": ["arn:t"]}
    ) == {
        "BackupPlanId": "p1",
        "BackupSelection": {"SelectionName": "s", "IamRoleArn": "arn:r", "Resources": ["arn:t"]},
    }


def test_iam_requests_pass_policy_json_through():
    req = iam.role_request(
        {"name": "r", "assume_role_policy": TRUST_POLICY, "max_session_duration": 3600}
    )
    assert req == {
        "RoleName": "r",
        "AssumeRolePolicyDocument": TRUST_POLICY,
        "Path": "/",
        "MaxSessionDuration": 3600,
    }
    assert iam.role_policy_request({"role": "r", "name": "p", "policy": "{}"}) == {
        "RoleName": "r",
        "PolicyName": "p",
        "PolicyDocument": "{}",
    }
    assert iam.is_aws_managed(BACKUP_POLICY_ARN)
    assert not iam.is_aws_managed("arn:aws:iam::123456789012:policy/x")


# ===========================================================================
# Live: against the sandbox's moto server
# ===========================================================================


@pytest.fixture(scope="module")
def aws(sandbox) -> AwsClients:
    return AwsClients(REGION)


@pytest.fixture(scope="module")
def key_arn(aws) -> str:
    return client("kms").create_key(Description="handler tests")["KeyMetadata"]["Arn"]


@pytest.fixture(scope="module")
def topic_arn(aws) -> str:
    return client("sns").create_topic(Name=f"handler-tests-{uid()}")["TopicArn"]


def test_data_sources(aws):
    who = client("sts").get_caller_identity()
    identity = DATA_SOURCES["aws_caller_identity"]().read(aws, {})
    assert identity == {
        "id": who["Account"],
        "account_id": who["Account"],
        "arn": who["Arn"],
        "user_id": who["UserId"],
    }
    assert DATA_SOURCES["aws_partition"]().read(aws, {}) == {
        "id": "aws",
        "partition": "aws",
        "dns_suffix": "amazonaws.com",
        "reverse_dns_prefix": "com.amazonaws",
    }
    region = DATA_SOURCES["aws_region"]().read(aws, {})
    assert region["name"] == region["id"] == REGION
    assert DATA_SOURCES["aws_region"]().read(aws, {"name": "eu-west-1"})["id"] == "eu-west-1"


def test_kms_key_and_alias_lifecycle(aws):
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "cmk",
            "Statement": [
                {
                    "Sid": "AccountAdministrationThroughIam",
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        }
    )
    config = {
        "description": "Mirror Dissonance staging CMK",
        "enable_key_rotation": True,
        "deletion_window_in_days": 7,
        "policy": policy,
        "tags": dict(TAGS),
    }
    key = make("aws_kms_key")
    out = key.create(aws, config)
    assert_state(out, config, "key_id", "arn")
    assert out["id"] == out["key_id"] and out["arn"].endswith(out["key_id"])
    k = client("kms")
    meta = k.describe_key(KeyId=out["id"])["KeyMetadata"]
    assert meta["Description"] == config["description"] and meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert k.get_key_rotation_status(KeyId=out["id"])["KeyRotationEnabled"] is True
    assert (
        json.loads(k.get_key_policy(KeyId=out["id"], PolicyName="default")["Policy"])["Id"] == "cmk"
    )
    tags = {t["TagKey"]: t["TagValue"] for t in k.list_resource_tags(KeyId=out["id"])["Tags"]}
    assert tags == TAGS

    alias_name = f"alias/mirror-dissonance-test-{uid()}"
    alias = make("aws_kms_alias")
    alias_config = {"name": alias_name, "target_key_id": out["key_id"]}
    alias_out = alias.create(aws, alias_config)
    assert_state(alias_out, alias_config, "arn", "target_key_arn")
    assert alias_out["id"] == alias_name
    assert alias_out["arn"] == f"arn:aws:kms:us-east-1:{out['arn'].split(':')[4]}:{alias_name}"
    assert alias_out["target_key_arn"] == out["arn"]
    listed = {a["AliasName"]: a for a in k.list_aliases(KeyId=out["id"])["Aliases"]}
    assert listed[alias_name]["TargetKeyId"] == out["key_id"]

    # Update: description, rotation off, one tag changed; alias retargeted.
    other = key.create(aws, {"description": "other"})
    new_config = {
        **config,
        "description": "changed",
        "enable_key_rotation": False,
        "tags": {"ManagedBy": "x"},
    }
    updated = key.update(aws, out, new_config)
    assert_state(updated, new_config, "key_id", "arn")
    assert k.describe_key(KeyId=out["id"])["KeyMetadata"]["Description"] == "changed"
    assert k.get_key_rotation_status(KeyId=out["id"])["KeyRotationEnabled"] is False
    tags = {t["TagKey"]: t["TagValue"] for t in k.list_resource_tags(KeyId=out["id"])["Tags"]}
    assert tags == {"ManagedBy": "x"}
    retarget = alias.update(aws, alias_out, {**alias_config, "target_key_id": other["key_id"]})
    assert retarget["target_key_arn"] == other["arn"]
    assert alias_name in {a["AliasName"] for a in k.list_aliases(KeyId=other["id"])["Aliases"]}

    # Delete: alias gone; key scheduled with the configured 7-day window; twice is fine.
    alias.delete(aws, retarget)
    alias.delete(aws, retarget)
    assert alias_name not in {a["AliasName"] for a in k.list_aliases()["Aliases"]}
    key.delete(aws, updated)
    key.delete(aws, updated)
    meta = k.describe_key(KeyId=out["id"])["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    assert 6 <= (meta["DeletionDate"] - meta["CreationDate"]).days <= 7
    key.delete(aws, {"id": "00000000-0000-0000-0000-000000000000"})  # never existed
    key.delete(aws, other)


def test_dynamodb_table_lifecycle(aws, key_arn):
    name = f"mirror-dissonance-test-{uid()}-fp-events"
    config = fp_events_config(name, key_arn, pitr=False)
    table = make("aws_dynamodb_table")
    out = table.create(aws, config)
    assert_state(out, config, "arn")
    assert out["id"] == name and out["arn"].endswith(f":table/{name}")
    assert "stream_arn" in out

    ddb = client("dynamodb")
    desc = ddb.describe_table(TableName=name)["Table"]
    assert desc["TableStatus"] == "ACTIVE"
    assert {k["KeyType"]: k["AttributeName"] for k in desc["KeySchema"]} == {
        "HASH": "pk",
        "RANGE": "sk",
    }
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    gsi = desc["GlobalSecondaryIndexes"][0]
    assert gsi["IndexName"] == "FindingIndex"
    assert [k["AttributeName"] for k in gsi["KeySchema"]] == ["gsi1pk", "gsi1sk"]
    assert gsi["Projection"]["ProjectionType"] == "ALL"
    assert desc["SSEDescription"]["Status"] == "ENABLED"
    assert desc["SSEDescription"]["SSEType"] == "KMS"
    assert desc["SSEDescription"]["KMSMasterKeyArn"] == key_arn
    assert ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expiresAt",
    }

    def pitr() -> str:
        backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        return backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]

    assert pitr() == "DISABLED"
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=out["arn"])["Tags"]}
    assert tags == TAGS

    # Update in place: PITR off -> on, deletion protection on, a tag added.
    on = {
        **config,
        "point_in_time_recovery": [{"enabled": True}],
        "deletion_protection_enabled": True,
        "tags": {**TAGS, "Owner": "platform"},
    }
    updated = table.update(aws, out, on)
    assert_state(updated, on, "arn")
    assert updated["arn"] == out["arn"]
    assert pitr() == "ENABLED"
    assert ddb.describe_table(TableName=name)["Table"]["DeletionProtectionEnabled"] is True
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=out["arn"])["Tags"]}
    assert tags["Owner"] == "platform"

    # Deletion protection refuses deletion, as under Terraform; turning it off allows it.
    with pytest.raises(ClientError):
        table.delete(aws, updated)
    unprotected = table.update(aws, updated, {**on, "deletion_protection_enabled": False})
    table.delete(aws, unprotected)
    with pytest.raises(ClientError) as gone:
        ddb.describe_table(TableName=name)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    table.delete(aws, unprotected)  # already gone: no error


def test_dynamodb_table_ttl_and_gsi_updates(aws, key_arn):
    name = f"mirror-dissonance-test-{uid()}-block-counter"
    config = {
        "name": name,
        "billing_mode": "PAY_PER_REQUEST",
        "hash_key": "bucketKey",
        "attribute": [{"name": "bucketKey", "type": "S"}],
        "point_in_time_recovery": [{"enabled": True}],
        "server_side_encryption": [{"enabled": True, "kms_key_arn": key_arn}],
    }
    table = make("aws_dynamodb_table")
    out = table.create(aws, config)
    ddb = client("dynamodb")
    assert (
        ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]["TimeToLiveStatus"]
        == "DISABLED"
    )
    new = {
        **config,
        "attribute": [*config["attribute"], {"name": "g", "type": "S"}],
        "global_secondary_index": [
            {"name": "ByG", "hash_key": "g", "projection_type": "KEYS_ONLY"}
        ],
        "ttl": [{"attribute_name": "expiresAt", "enabled": True}],
    }
    updated = table.update(aws, out, new)
    assert_state(updated, new, "arn")
    desc = ddb.describe_table(TableName=name)["Table"]
    assert [g["IndexName"] for g in desc["GlobalSecondaryIndexes"]] == ["ByG"]
    assert ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expiresAt",
    }
    table.delete(aws, updated)


def test_ssm_parameter_never_reads_or_clobbers_the_value(aws, key_arn):
    name = f"/guardian/test{uid()}/redaction_nonce_v1"
    config = {
        "name": name,
        "description": "Mirror Dissonance staging redaction nonce v1",
        "type": "SecureString",
        "tier": "Standard",
        "key_id": key_arn,
        "value_wo": "PLACEHOLDER-set-by-nonce-bootstrap",
        "value_wo_version": 1,
    }
    param = make("aws_ssm_parameter")
    handler_ssm = aws.client("ssm")

    def refuse(**kwargs: Any) -> None:
        raise AssertionError("the handler read a parameter value back")

    handler_ssm.meta.events.register("before-call.ssm.GetParameter", refuse)
    handler_ssm.meta.events.register("before-call.ssm.GetParameters", refuse)
    handler_ssm.meta.events.register("before-call.ssm.GetParametersByPath", refuse)
    try:
        out = param.create(aws, config)
        assert_state(out, config, "arn")
        assert out["id"] == name
        assert out["arn"].endswith(f":parameter{name}") and out["version"] == 1
        assert out["value_wo"] == "PLACEHOLDER-set-by-nonce-bootstrap"  # config unchanged

        ssm_client = client("ssm")

        def described() -> dict[str, Any]:
            found = ssm_client.describe_parameters(
                ParameterFilters=[{"Key": "Name", "Values": [name]}]
            )
            return found["Parameters"][0]

        meta = described()
        assert meta["Type"] == "SecureString" and meta["KeyId"] == key_arn
        assert meta["Description"] == config["description"] and meta["Tier"] == "Standard"

        # The pipeline writes the real nonce (version 2); a tag-only update leaves it.
        ssm_client.put_parameter(
            Name=name, Value="a" * 64, Type="SecureString", KeyId=key_arn, Overwrite=True
        )
        prior = {**out, "value_wo": None}  # as the engine stores it
        tagged = {**config, "tags": {"Owner": "platform"}}
        updated = param.update(aws, prior, tagged)
        assert_state(updated, tagged, "arn")
        assert described()["Version"] == 2
        tags = ssm_client.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)[
            "TagList"
        ]
        assert tags == [{"Key": "Owner", "Value": "platform"}]

        # A description change cannot be applied without the value: refused clearly.
        with pytest.raises(RolloutError, match="description"):
            param.update(aws, {**updated, "value_wo": None}, {**tagged, "description": "new"})
        assert described()["Version"] == 2

        # Bumping value_wo_version writes the configured value (and metadata) again.
        bumped = {**tagged, "description": "new", "value_wo_version": 2}
        rewritten = param.update(aws, {**updated, "value_wo": None}, bumped)
        assert rewritten["version"] == 3 and described()["Description"] == "new"

        param.delete(aws, rewritten)
        assert (
            ssm_client.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])[
                "Parameters"
            ]
            == []
        )
        param.delete(aws, rewritten)
    finally:
        for op in ("GetParameter", "GetParameters", "GetParametersByPath"):
            handler_ssm.meta.events.unregister(f"before-call.ssm.{op}", refuse)


def test_sns_topic_and_email_subscription(aws, key_arn):
    name = f"mirror-dissonance-test-{uid()}-ops-alerts"
    config = {"name": name, "kms_master_key_id": key_arn, "tags": dict(TAGS)}
    topic = make("aws_sns_topic")
    out = topic.create(aws, config)
    assert_state(out, config, "arn")
    assert out["id"] == out["arn"] and out["arn"].endswith(f":{name}")
    sns_client = client("sns")
    attrs = sns_client.get_topic_attributes(TopicArn=out["arn"])["Attributes"]
    assert attrs["KmsMasterKeyId"] == key_arn
    tags = {
        t["Key"]: t["Value"]
        for t in sns_client.list_tags_for_resource(ResourceArn=out["arn"])["Tags"]
    }
    assert tags == TAGS

    updated = topic.update(aws, out, {**config, "display_name": "Ops alerts"})
    assert (
        sns_client.get_topic_attributes(TopicArn=out["arn"])["Attributes"]["DisplayName"]
        == "Ops alerts"
    )
    assert updated["arn"] == out["arn"]

    sub_config = {"topic_arn": out["arn"], "protocol": "email", "endpoint": "ops@example.com"}
    sub = make("aws_sns_topic_subscription")
    sub_out = sub.create(aws, sub_config)
    assert_state(sub_out, sub_config, "arn")
    assert sub_out["id"] == sub_out["arn"] and sub_out["arn"].startswith(out["arn"] + ":")
    listed = sns_client.list_subscriptions_by_topic(TopicArn=out["arn"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in listed] == [("email", "ops@example.com")]

    sub.delete(aws, sub_out)
    sub.delete(aws, sub_out)
    assert sns_client.list_subscriptions_by_topic(TopicArn=out["arn"])["Subscriptions"] == []
    topic.delete(aws, updated)
    topic.delete(aws, updated)
    assert out["arn"] not in {t["TopicArn"] for t in sns_client.list_topics()["Topics"]}


def test_metric_alarm_lifecycle(aws, topic_arn):
    name = f"mirror-dissonance-test-{uid()}-fp-events-read-throttle"
    config = throttle_alarm_config(name, "mirror-dissonance-staging-fp-events", topic_arn)
    alarm = make("aws_cloudwatch_metric_alarm")
    out = alarm.create(aws, config)
    assert_state(out, config, "arn")
    assert out["id"] == name and out["arn"].endswith(f":alarm:{name}")
    cw = client("cloudwatch")
    found = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert (found["Namespace"], found["MetricName"], found["Statistic"]) == (
        "AWS/DynamoDB",
        "ReadThrottleEvents",
        "Sum",
    )
    assert found["Threshold"] == 10.0 and found["Period"] == 300 and found["EvaluationPeriods"] == 1
    assert found["ComparisonOperator"] == "GreaterThanThreshold"
    assert found["TreatMissingData"] == "notBreaching"
    assert found["AlarmActions"] == [topic_arn] and found["OKActions"] == [topic_arn]
    assert found["Dimensions"] == [
        {"Name": "TableName", "Value": "mirror-dissonance-staging-fp-events"}
    ]
    assert found["ActionsEnabled"] is True

    changed = {**config, "threshold": 20, "tags": {"Owner": "platform"}}
    updated = alarm.update(aws, out, changed)
    assert_state(updated, changed, "arn")
    found = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert found["Threshold"] == 20.0 and found["AlarmActions"] == [topic_arn]
    assert cw.list_tags_for_resource(ResourceARN=out["arn"])["Tags"] == [
        {"Key": "Owner", "Value": "platform"}
    ]

    alarm.delete(aws, updated)
    assert cw.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []
    alarm.delete(aws, updated)


def test_dashboard_lifecycle(aws):
    name = f"mirror-dissonance-test-{uid()}"
    body = {
        "widgets": [
            {
                "type": "metric",
                "x": 0,
                "y": 0,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "DynamoDB consumed read capacity (RCU)",
                    "region": REGION,
                    "stat": "Sum",
                    "period": 300,
                    "metrics": [["AWS/DynamoDB", "ConsumedReadCapacityUnits", "TableName", "t"]],
                },
            }
        ]
    }
    config = {"dashboard_name": name, "dashboard_body": json.dumps(body)}
    dash = make("aws_cloudwatch_dashboard")
    out = dash.create(aws, config)
    assert_state(out, config, "dashboard_arn")
    assert out["id"] == name and out["dashboard_arn"].endswith(f":dashboard/{name}")
    cw = client("cloudwatch")
    assert json.loads(cw.get_dashboard(DashboardName=name)["DashboardBody"]) == body

    body["widgets"].append(
        {
            "type": "alarm",
            "x": 0,
            "y": 6,
            "width": 24,
            "height": 6,
            "properties": {"title": "Alarms", "alarms": []},
        }
    )
    changed = {**config, "dashboard_body": json.dumps(body)}
    dash.update(aws, out, changed)
    assert len(json.loads(cw.get_dashboard(DashboardName=name)["DashboardBody"])["widgets"]) == 2

    dash.delete(aws, out)
    assert name not in {d["DashboardName"] for d in cw.list_dashboards()["DashboardEntries"]}
    dash.delete(aws, out)


def test_log_group_lifecycle(aws, key_arn):
    name = f"/mirror-dissonance/test-{uid()}"
    config = {"name": name, "kms_key_id": key_arn, "retention_in_days": 365}
    group = make("aws_cloudwatch_log_group")
    out = group.create(aws, config)
    assert_state(out, config, "arn")
    logs = client("logs")
    found = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]
    assert found["kmsKeyId"] == key_arn and found["retentionInDays"] == 365
    group.update(aws, out, {**config, "retention_in_days": 30})
    assert (
        logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["retentionInDays"] == 30
    )
    group.delete(aws, out)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []
    group.delete(aws, out)


def test_s3_bucket_and_companions_lifecycle(aws, key_arn):
    name = f"mirror-dissonance-test-{uid()}-baselines"
    bucket = make("aws_s3_bucket")
    out = bucket.create(aws, {"bucket": name})
    assert_state(out, {"bucket": name}, "arn", "bucket_domain_name", "region")
    assert out["id"] == name and out["arn"] == f"arn:aws:s3:::{name}"
    assert out["bucket_regional_domain_name"] == f"{name}.s3.us-east-1.amazonaws.com"

    companions = {
        "aws_s3_bucket_versioning": {
            "bucket": name,
            "versioning_configuration": [{"status": "Enabled"}],
        },
        "aws_s3_bucket_server_side_encryption_configuration": {
            "bucket": name,
            "rule": [
                {
                    "bucket_key_enabled": True,
                    "apply_server_side_encryption_by_default": [
                        {"sse_algorithm": "aws:kms", "kms_master_key_id": key_arn}
                    ],
                }
            ],
        },
        "aws_s3_bucket_public_access_block": {
            "bucket": name,
            "block_public_acls": True,
            "block_public_policy": True,
            "ignore_public_acls": True,
            "restrict_public_buckets": True,
        },
    }
    states = {}
    for type_, config in companions.items():
        states[type_] = make(type_).create(aws, config)
        assert_state(states[type_], config)
        assert states[type_]["id"] == name

    s3c = client("s3")
    assert s3c.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    rule = s3c.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": key_arn,
    }
    assert rule["BucketKeyEnabled"] is True
    assert s3c.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }

    # Updates: tags on the bucket, one public-access flag off.
    tagged = bucket.update(aws, out, {"bucket": name, "tags": {"Owner": "platform"}})
    assert s3c.get_bucket_tagging(Bucket=name)["TagSet"] == [{"Key": "Owner", "Value": "platform"}]
    pab_type = "aws_s3_bucket_public_access_block"
    relaxed = {**companions[pab_type], "restrict_public_buckets": False}
    states[pab_type] = make(pab_type).update(aws, states[pab_type], relaxed)
    assert (
        s3c.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"][
            "RestrictPublicBuckets"
        ]
        is False
    )

    # Versions and delete markers do not stop the bucket's deletion.
    s3c.put_object(Bucket=name, Key="baseline.json", Body=b"1")
    s3c.put_object(Bucket=name, Key="baseline.json", Body=b"2")
    s3c.delete_object(Bucket=name, Key="baseline.json")

    for type_, st in states.items():
        make(type_).delete(aws, st)
    assert s3c.get_bucket_versioning(Bucket=name)["Status"] == "Suspended"
    with pytest.raises(ClientError):
        s3c.get_bucket_encryption(Bucket=name)
    with pytest.raises(ClientError):
        s3c.get_public_access_block(Bucket=name)
    bucket.delete(aws, tagged)
    assert name not in {b["Name"] for b in s3c.list_buckets()["Buckets"]}
    bucket.delete(aws, tagged)
    for type_, st in states.items():  # bucket gone: companions' deletes do not fail
        make(type_).delete(aws, st)


def test_s3_bucket_policy_and_logging(aws):
    audit, baselines = f"md-test-{uid()}-audit-logs", f"md-test-{uid()}-baselines"
    bucket = make("aws_s3_bucket")
    audit_state, base_state = (
        bucket.create(aws, {"bucket": audit}),
        bucket.create(aws, {"bucket": baselines}),
    )
    s3c = client("s3")
    policy = make("aws_s3_bucket_policy")
    logging = make("aws_s3_bucket_logging")
    log_config = {
        "bucket": baselines,
        "target_bucket": audit,
        "target_prefix": "s3-access/baselines/",
    }

    # A policy moto's PutBucketLogging check understands: logging is applied.
    simple = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "S3ServerAccessLogsWrite",
                    "Effect": "Allow",
                    "Principal": {"Service": "logging.s3.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{audit}/s3-access/baselines/*",
                }
            ],
        }
    )
    pol_state = policy.create(aws, {"bucket": audit, "policy": simple})
    assert pol_state["id"] == audit
    assert json.loads(s3c.get_bucket_policy(Bucket=audit)["Policy"]) == json.loads(simple)
    log_state = logging.create(aws, log_config)
    assert_state(log_state, log_config)
    assert s3c.get_bucket_logging(Bucket=baselines)["LoggingEnabled"] == {
        "TargetBucket": audit,
        "TargetPrefix": "s3-access/baselines/",
    }
    logging.delete(aws, log_state)
    assert "LoggingEnabled" not in s3c.get_bucket_logging(Bucket=baselines)

    # The audit-bucket policy of main.tf: moto's check fails (HTTP 500 on the
    # Principal "*" statement), reported as NotProvisionable, not as a crash.
    project_policy = audit_bucket_policy(
        audit, baselines, "arn:aws:cloudtrail:us-east-1:123456789012:trail/t"
    )
    pol_state = policy.update(aws, pol_state, {"bucket": audit, "policy": project_policy})
    assert json.loads(s3c.get_bucket_policy(Bucket=audit)["Policy"]) == json.loads(project_policy)
    with pytest.raises(NotProvisionable, match="moto's PutBucketLogging"):
        logging.create(aws, log_config)

    policy.delete(aws, pol_state)
    with pytest.raises(ClientError):
        s3c.get_bucket_policy(Bucket=audit)
    policy.delete(aws, pol_state)
    bucket.delete(aws, audit_state)
    bucket.delete(aws, base_state)


def test_oidc_provider_lifecycle(aws):
    url = f"https://token-{uid()}.actions.githubusercontent.com"
    config = {
        "url": url,
        "client_id_list": ["sts.amazonaws.com"],
        "thumbprint_list": [
            "6938fd4d98bab03faadb97b34396831e3780aea1",
            "1c58a3a8518e8759bf075b76b750d4f2df264fcd",
        ],
    }
    oidc = make("aws_iam_openid_connect_provider")
    out = oidc.create(aws, config)
    assert_state(out, config, "arn")
    assert out["id"] == out["arn"] and out["arn"].endswith(
        f":oidc-provider/{url.removeprefix('https://')}"
    )
    iam_client = client("iam")
    found = iam_client.get_open_id_connect_provider(OpenIDConnectProviderArn=out["arn"])
    assert found["ClientIDList"] == ["sts.amazonaws.com"]
    assert found["ThumbprintList"] == config["thumbprint_list"]

    new_thumbs = {**config, "thumbprint_list": ["a" * 40]}
    updated = oidc.update(aws, out, new_thumbs)
    assert iam_client.get_open_id_connect_provider(OpenIDConnectProviderArn=out["arn"])[
        "ThumbprintList"
    ] == ["a" * 40]

    # Verified gap: moto 5.2.5 has no AddClientIDToOpenIDConnectProvider.
    with pytest.raises(NotProvisionable, match="AddClientID"):
        oidc.update(aws, updated, {**new_thumbs, "client_id_list": ["sts.amazonaws.com", "other"]})

    oidc.delete(aws, updated)
    arns = {
        p["Arn"] for p in iam_client.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    }
    assert out["arn"] not in arns
    oidc.delete(aws, updated)


def test_iam_role_policy_and_attachments(aws):
    name = f"mirror-dissonance-test-{uid()}-github-deploy"
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "GitHubActionsOidc",
                    "Effect": "Allow",
                    "Principal": {
                        "Federated": "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
                    },
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"
                        },
                        "StringLike": {
                            "token.actions.githubusercontent.com:sub": "repo:acme/mirror:*"
                        },
                    },
                }
            ],
        }
    )
    config = {
        "name": name,
        "description": "Assumed by GitHub Actions",
        "max_session_duration": 3600,
        "assume_role_policy": trust,
        "tags": dict(TAGS),
    }
    role = make("aws_iam_role")
    out = role.create(aws, config)
    assert_state(out, config, "arn", "unique_id")
    assert out["id"] == name and out["arn"].endswith(f":role/{name}")
    iam_client = client("iam")
    found = iam_client.get_role(RoleName=name)["Role"]
    assert found["AssumeRolePolicyDocument"] == json.loads(trust)
    assert (
        found["Description"] == "Assumed by GitHub Actions" and found["MaxSessionDuration"] == 3600
    )
    assert {t["Key"]: t["Value"] for t in iam_client.list_role_tags(RoleName=name)["Tags"]} == TAGS

    changed = {**config, "assume_role_policy": TRUST_POLICY, "description": "changed"}
    updated = role.update(aws, out, changed)
    assert_state(updated, changed, "arn")
    found = iam_client.get_role(RoleName=name)["Role"]
    assert found["AssumeRolePolicyDocument"] == json.loads(TRUST_POLICY)
    assert found["Description"] == "changed"

    # Inline policy.
    doc = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
            ],
        }
    )
    rp = make("aws_iam_role_policy")
    rp_config = {"name": name, "role": name, "policy": doc}
    rp_state = rp.create(aws, rp_config)
    assert_state(rp_state, rp_config)
    assert rp_state["id"] == f"{name}:{name}"
    assert iam_client.get_role_policy(RoleName=name, PolicyName=name)[
        "PolicyDocument"
    ] == json.loads(doc)
    doc2 = doc.replace("s3:GetObject", "s3:PutObject")
    rp.update(aws, rp_state, {**rp_config, "policy": doc2})
    assert iam_client.get_role_policy(RoleName=name, PolicyName=name)[
        "PolicyDocument"
    ] == json.loads(doc2)

    # Customer-managed policy attachment works.
    managed = iam_client.create_policy(PolicyName=f"p-{uid()}", PolicyDocument=doc)["Policy"]["Arn"]
    att = make("aws_iam_role_policy_attachment")
    att_config = {"role": name, "policy_arn": managed}
    att_state = att.create(aws, att_config)
    assert_state(att_state, att_config)
    attached = {
        p["PolicyArn"]
        for p in iam_client.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    }
    assert attached == {managed}

    # The AWS-managed backup policy: attached when moto knows it (it loads AWS-managed
    # policies only with MOTO_IAM_LOAD_MANAGED_POLICIES=true), NotProvisionable otherwise.
    backup_config = {"role": name, "policy_arn": BACKUP_POLICY_ARN}
    try:
        iam_client.get_policy(PolicyArn=BACKUP_POLICY_ARN)
        known = True
    except ClientError:
        known = False
    if known:
        att.delete(aws, att.create(aws, backup_config))
    else:
        with pytest.raises(NotProvisionable, match="MOTO_IAM_LOAD_MANAGED_POLICIES"):
            att.create(aws, backup_config)
    with pytest.raises(ClientError):  # a missing role stays a real error
        att.create(aws, {"role": f"missing-{uid()}", "policy_arn": BACKUP_POLICY_ARN})

    # Deletes, dependents first as the engine orders them; each twice.
    att.delete(aws, att_state)
    att.delete(aws, att_state)
    att.delete(aws, {"id": "x", **backup_config})
    rp.delete(aws, rp_state)
    rp.delete(aws, rp_state)
    assert iam_client.list_role_policies(RoleName=name)["PolicyNames"] == []
    role.delete(aws, updated)
    with pytest.raises(ClientError):
        iam_client.get_role(RoleName=name)
    role.delete(aws, updated)


def test_iam_role_force_detach_policies(aws):
    name = f"md-test-{uid()}-backup"
    role = make("aws_iam_role")
    out = role.create(
        aws, {"name": name, "assume_role_policy": TRUST_POLICY, "force_detach_policies": True}
    )
    iam_client = client("iam")
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    iam_client.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=json.dumps(doc))
    managed = iam_client.create_policy(PolicyName=f"p-{uid()}", PolicyDocument=json.dumps(doc))[
        "Policy"
    ]["Arn"]
    iam_client.attach_role_policy(RoleName=name, PolicyArn=managed)
    role.delete(aws, out)
    with pytest.raises(ClientError):
        iam_client.get_role(RoleName=name)


def test_cloudtrail_lifecycle(aws, key_arn):
    bucket = f"md-test-{uid()}-audit-logs"
    client("s3").create_bucket(Bucket=bucket)
    name = f"mirror-dissonance-test-{uid()}-audit"
    tables = [f"arn:aws:dynamodb:us-east-1:123456789012:table/t{i}" for i in range(3)]
    config = {
        "name": name,
        "s3_bucket_name": bucket,
        "s3_key_prefix": "cloudtrail",
        "kms_key_id": key_arn,
        "enable_logging": True,
        "enable_log_file_validation": True,
        "include_global_service_events": True,
        "is_multi_region_trail": True,
        "event_selector": [
            {
                "read_write_type": "All",
                "include_management_events": True,
                "data_resource": [{"type": "AWS::DynamoDB::Table", "values": tables}],
            }
        ],
        "tags": dict(TAGS),
    }
    trail = make("aws_cloudtrail")
    out = trail.create(aws, config)
    assert_state(out, config, "arn", "home_region")
    assert out["id"] == name and out["arn"].endswith(f":trail/{name}")
    ct = client("cloudtrail")
    found = ct.get_trail(Name=name)["Trail"]
    assert found["S3BucketName"] == bucket and found["S3KeyPrefix"] == "cloudtrail"
    assert found["KmsKeyId"] == key_arn
    assert found["LogFileValidationEnabled"] is True and found["IsMultiRegionTrail"] is True
    assert found["IncludeGlobalServiceEvents"] is True
    selectors = ct.get_event_selectors(TrailName=name)["EventSelectors"]
    assert selectors == [
        {
            "ReadWriteType": "All",
            "IncludeManagementEvents": True,
            "DataResources": [{"Type": "AWS::DynamoDB::Table", "Values": tables}],
        }
    ]
    assert ct.get_trail_status(Name=name)["IsLogging"] is True
    tags = ct.list_tags(ResourceIdList=[out["arn"]])["ResourceTagList"][0]["TagsList"]
    assert {t["Key"]: t["Value"] for t in tags} == TAGS

    changed = {**config, "enable_logging": False, "s3_key_prefix": "trail", "event_selector": []}
    updated = trail.update(aws, out, changed)
    assert_state(updated, changed, "arn")
    assert ct.get_trail(Name=name)["Trail"]["S3KeyPrefix"] == "trail"
    assert ct.get_trail_status(Name=name)["IsLogging"] is False
    assert ct.get_event_selectors(TrailName=name)["EventSelectors"][0]["DataResources"] == []

    trail.delete(aws, updated)
    with pytest.raises(ClientError):
        ct.get_trail(Name=name)
    trail.delete(aws, updated)


def test_backup_vault_and_plan_lifecycle(aws, key_arn):
    vault_name = f"mirror-dissonance-test-{uid()}-backup-vault"
    vault_config = {"name": vault_name, "kms_key_arn": key_arn, "tags": dict(TAGS)}
    vault = make("aws_backup_vault")
    vault_state = vault.create(aws, vault_config)
    assert_state(vault_state, vault_config, "arn")
    assert vault_state["id"] == vault_name
    bk = client("backup")
    found = bk.describe_backup_vault(BackupVaultName=vault_name)
    assert found["BackupVaultArn"] == vault_state["arn"] and found["EncryptionKeyArn"] == key_arn

    plan_config = {
        "name": f"mirror-dissonance-test-{uid()}-backup-plan",
        "rule": [
            {
                "rule_name": "daily",
                "target_vault_name": vault_name,
                "schedule": "cron(0 5 * * ? *)",
                "start_window": 60,
                "completion_window": 240,
                "lifecycle": [{"delete_after": 35}],
            }
        ],
    }
    plan = make("aws_backup_plan")
    plan_state = plan.create(aws, plan_config)
    assert_state(plan_state, plan_config, "arn", "version")
    rule = bk.get_backup_plan(BackupPlanId=plan_state["id"])["BackupPlan"]["Rules"][0]
    assert rule["RuleName"] == "daily" and rule["TargetBackupVaultName"] == vault_name
    assert rule["ScheduleExpression"] == "cron(0 5 * * ? *)"
    assert rule["StartWindowMinutes"] == 60 and rule["CompletionWindowMinutes"] == 240
    assert rule["Lifecycle"]["DeleteAfterDays"] == 35

    # Tags update in place; a rule change needs UpdateBackupPlan, which moto lacks.
    tagged = plan.update(aws, plan_state, {**plan_config, "tags": {"Owner": "platform"}})
    assert bk.list_tags(ResourceArn=plan_state["arn"])["Tags"] == {"Owner": "platform"}
    new_rule = {**plan_config["rule"][0], "schedule": "cron(0 6 * * ? *)"}
    with pytest.raises(NotProvisionable, match="UpdateBackupPlan"):
        plan.update(aws, tagged, {**plan_config, "rule": [new_rule]})

    plan.delete(aws, tagged)
    # A deleted plan stays readable with a DeletionDate (as in AWS) and leaves the list.
    assert "DeletionDate" in bk.get_backup_plan(BackupPlanId=plan_state["id"])
    assert plan_state["id"] not in {
        p["BackupPlanId"] for p in bk.list_backup_plans()["BackupPlansList"]
    }
    plan.delete(aws, tagged)
    vault.delete(aws, vault_state)
    assert vault_name not in {
        v["BackupVaultName"] for v in bk.list_backup_vaults()["BackupVaultList"]
    }
    vault.delete(aws, vault_state)


def test_backup_selection_is_not_provisionable_and_moto_still_lacks_it(aws):
    selection = make("aws_backup_selection")
    config = {
        "name": "s",
        "plan_id": "p",
        "iam_role_arn": "arn:aws:iam::123456789012:role/r",
        "resources": ["arn:t"],
    }
    with pytest.raises(NotProvisionable):
        selection.create(aws, config)
    with pytest.raises(NotProvisionable):
        selection.update(aws, {**config, "id": "x"}, config)
    with pytest.raises(NotProvisionable):
        selection.delete(aws, {**config, "id": "x"})
    # The verdict is checked against the running moto, not assumed.
    bk = client("backup", attempts=1)
    plan_id = bk.create_backup_plan(
        BackupPlan={
            "BackupPlanName": f"p-{uid()}",
            "Rules": [{"RuleName": "r", "TargetBackupVaultName": "v"}],
        }
    )["BackupPlanId"]
    with pytest.raises(ClientError) as err:
        bk.create_backup_selection(**backup.selection_request({**config, "plan_id": plan_id}))
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    bk.delete_backup_plan(BackupPlanId=plan_id)
