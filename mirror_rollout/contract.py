"""The naming and configuration contract of docs/DESIGN.md, as data.

Guardrails (static), the alarm probe and drift detection (live) all check
against these, so there is exactly one copy of the contract in code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "mirror-dissonance"


@dataclass(frozen=True)
class TableSpec:
    key: str  # short name: fp-events, consent, block-counter
    address: str  # Terraform address
    hash_key: str
    range_key: str | None = None
    ttl_attribute: str | None = None
    gsi: tuple[str, str, str] | None = None  # (name, hash, range)

    def name(self, env: str) -> str:
        return f"{PREFIX}-{env}-{self.key}"


TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "fp-events",
        "aws_dynamodb_table.fp_events",
        "pk",
        "sk",
        "expiresAt",
        ("FindingIndex", "gsi1pk", "gsi1sk"),
    ),
    TableSpec("consent", "aws_dynamodb_table.consent", "pk", "sk"),
    TableSpec("block-counter", "aws_dynamodb_table.block_counter", "bucketKey", None, "ttl"),
)


@dataclass(frozen=True)
class AlarmSpec:
    name: str  # short name; full name is mirror-dissonance-{env}-{name}
    metric: str
    threshold: float
    table: str | None = None  # TableSpec.key for the DynamoDB alarms
    comparison: str = "GreaterThanThreshold"
    statistic: str = "Sum"
    period: int = 300
    evaluation_periods: int = 1

    def full_name(self, env: str) -> str:
        return f"{PREFIX}-{env}-{self.name}"

    def namespace(self, env: str) -> str:
        return "AWS/DynamoDB" if self.table else f"MirrorDissonance/{env}"

    def dimensions(self, env: str) -> dict[str, str]:
        return {"TableName": f"{PREFIX}-{env}-{self.table}"} if self.table else {}


ALARMS: tuple[AlarmSpec, ...] = (
    AlarmSpec("fp-events-read-throttle", "ReadThrottleEvents", 10, "fp-events"),
    AlarmSpec("fp-events-write-throttle", "WriteThrottleEvents", 10, "fp-events"),
    AlarmSpec("consent-read-throttle", "ReadThrottleEvents", 10, "consent"),
    AlarmSpec("consent-write-throttle", "WriteThrottleEvents", 10, "consent"),
    AlarmSpec("block-counter-read-throttle", "ReadThrottleEvents", 10, "block-counter"),
    AlarmSpec("block-counter-write-throttle", "WriteThrottleEvents", 10, "block-counter"),
    AlarmSpec("ssm-parameter-failures", "SSMParameterFailures", 5),
    AlarmSpec("circuit-breaker-triggered", "CircuitBreakerTriggers", 0),
)

#: Attributes of every FP event item the Oracle writes to fp-events.
FP_EVENT_FIELDS: tuple[str, ...] = (
    "pk",
    "sk",
    "gsi1pk",
    "gsi1sk",
    "eventId",
    "ruleId",
    "ruleVersion",
    "findingId",
    "outcome",
    "isFalsePositive",
    "timestamp",
    "context",
    "expiresAt",
    "recordedAt",
)


def kms_deletion_window_days(environment: str) -> int:
    """30 days for production, 7 for staging and any other environment (target.RULES)."""
    from mirror_rollout.target import rules_for

    return rules_for(environment).kms_deletion_window_days


NONCE_NAME = re.compile(r"^/guardian/(?P<env>[a-z]+)/redaction_nonce_v(?P<version>[1-9][0-9]*)$")
#: The old scripts' form; always wrong.
NONCE_LEGACY_NAME = re.compile(r"guardian/[^/]+/redaction/nonce/v\d+")
NONCE_VALUE = re.compile(r"^[0-9a-f]{64}$")
OIDC_URL = "https://token.actions.githubusercontent.com"
OIDC_AUDIENCE = "sts.amazonaws.com"
STATE_BUCKET = f"{PREFIX}-terraform-state"
LOCK_TABLE = f"{PREFIX}-terraform-locks"

#: Stateful resource types: deleting or replacing one loses data or keys.
STATEFUL_TYPES = frozenset(
    {
        "aws_dynamodb_table",
        "aws_kms_key",
        "aws_s3_bucket",
        "aws_ssm_parameter",
        "aws_backup_vault",
        "aws_cloudtrail",
    }
)

#: Dashboard metrics that must each appear in some widget (namespace, metric).
DASHBOARD_METRICS: tuple[tuple[str, str], ...] = (
    ("AWS/DynamoDB", "ConsumedReadCapacityUnits"),
    ("AWS/DynamoDB", "ConsumedWriteCapacityUnits"),
    ("AWS/DynamoDB", "UserErrors"),
    ("AWS/DynamoDB", "SystemErrors"),
    ("MirrorDissonance/{env}", "SSMParameterFailures"),
    ("MirrorDissonance/{env}", "CircuitBreakerTriggers"),
)


def name(env: str, suffix: str) -> str:
    return f"{PREFIX}-{env}-{suffix}"


def nonce_parameter(env: str, version: int) -> str:
    return f"/guardian/{env}/redaction_nonce_v{version}"


#: Resource addresses the contract needs in every environment (plan summary
#: lists those a plan lacks or would delete).
EXPECTED_ADDRESSES: tuple[str, ...] = (
    "aws_kms_key.main",
    "aws_kms_alias.main",
    *(t.address for t in TABLES),
    "aws_sns_topic.ops_alerts",
    *(f'aws_cloudwatch_metric_alarm.table_throttle["{a.name}"]' for a in ALARMS if a.table),
    "aws_cloudwatch_metric_alarm.ssm_parameter_failures",
    "aws_cloudwatch_metric_alarm.circuit_breaker_triggered",
    "aws_cloudwatch_dashboard.main",
    "aws_s3_bucket.baselines",
    "aws_s3_bucket_versioning.baselines",
    "aws_s3_bucket_server_side_encryption_configuration.baselines",
    "aws_s3_bucket_public_access_block.baselines",
    "aws_iam_openid_connect_provider.github",
    "aws_iam_role.github_deploy",
    "aws_cloudtrail.audit",
    "aws_backup_vault.main",
    "aws_backup_plan.main",
    "aws_backup_selection.tables",
)
