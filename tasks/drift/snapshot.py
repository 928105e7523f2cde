"""The live settings of every contract resource, as a JSON-able dict.

``{resource key: {attribute: value}}``, e.g.
``{"dynamodb_table:mirror-dissonance-staging-consent": {"pitr": "ENABLED", ...}}``.
The normalisation functions are pure (boto3 response dicts in, attributes out);
``capture`` is the thin layer of reads. A resource that does not exist is left
out of the snapshot, so a comparison reports it as missing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.retries import error_code

Snapshot = dict[str, dict[str, Any]]
T = TypeVar("T")

#: Error codes meaning "the resource does not exist" (per service).
NOT_FOUND = {
    "ResourceNotFoundException",
    "TableNotFoundException",
    "NotFoundException",
    "NoSuchBucket",
    "NoSuchEntity",
    "NotFound",
}
#: Error codes meaning "the bucket has no such configuration" (AWS defaults apply).
NO_CONFIGURATION = {
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchPublicAccessBlockConfiguration",
}
PUBLIC_ACCESS_BLOCKS = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)
OIDC_HOST = contract.OIDC_URL.removeprefix("https://")


# -- resource keys ---------------------------------------------------------------------------
def table_key(environment: str, spec: contract.TableSpec) -> str:
    return f"dynamodb_table:{spec.name(environment)}"


def kms_alias(environment: str) -> str:
    return f"alias/{contract.PREFIX}-{environment}"


def kms_key(environment: str) -> str:
    return f"kms_key:{kms_alias(environment)}"


def alarm_key(environment: str, spec: contract.AlarmSpec) -> str:
    return f"cloudwatch_alarm:{spec.full_name(environment)}"


def bucket_name(environment: str) -> str:
    return contract.name(environment, "baselines")


def bucket_key(environment: str) -> str:
    return f"s3_bucket:{bucket_name(environment)}"


def role_name(environment: str) -> str:
    return contract.name(environment, "github-deploy")


def role_key(environment: str) -> str:
    return f"iam_role:{role_name(environment)}"


def topic_name(environment: str) -> str:
    return contract.name(environment, "ops-alerts")


def topic_key(environment: str) -> str:
    return f"sns_topic:{topic_name(environment)}"


def expected_resources(environment: str) -> list[str]:
    """Every resource key a snapshot of ``environment`` covers."""
    return [
        *(table_key(environment, t) for t in contract.TABLES),
        kms_key(environment),
        *(alarm_key(environment, a) for a in contract.ALARMS),
        bucket_key(environment),
        role_key(environment),
        topic_key(environment),
    ]


# -- pure normalisation ----------------------------------------------------------------------
def table_attributes(
    table: dict[str, Any], backups: dict[str, Any], ttl: dict[str, Any]
) -> dict[str, Any]:
    """DescribeTable["Table"], DescribeContinuousBackups and DescribeTimeToLive -> attributes."""
    sse = table.get("SSEDescription") or {}
    pitr = (backups.get("ContinuousBackupsDescription") or {}).get(
        "PointInTimeRecoveryDescription"
    ) or {}
    ttl_desc = ttl.get("TimeToLiveDescription") or {}
    billing = (table.get("BillingModeSummary") or {}).get("BillingMode")
    return {
        "pitr": pitr.get("PointInTimeRecoveryStatus"),
        "sse_status": sse.get("Status") or "DISABLED",
        "sse_type": sse.get("SSEType"),
        "sse_kms_key": sse.get("KMSMasterKeyArn"),
        # A table created without BillingMode reports no summary: that is PROVISIONED.
        "billing_mode": billing or "PROVISIONED",
        "key_schema": {k["KeyType"]: k["AttributeName"] for k in table.get("KeySchema", [])},
        "global_secondary_indexes": {
            g["IndexName"]: {
                "key_schema": {k["KeyType"]: k["AttributeName"] for k in g.get("KeySchema", [])},
                "projection": (g.get("Projection") or {}).get("ProjectionType"),
            }
            for g in table.get("GlobalSecondaryIndexes") or []
        },
        "ttl": {
            "status": ttl_desc.get("TimeToLiveStatus") or "DISABLED",
            "attribute": ttl_desc.get("AttributeName"),
        },
    }


def kms_attributes(metadata: dict[str, Any], rotation: dict[str, Any]) -> dict[str, Any]:
    """DescribeKey["KeyMetadata"] and GetKeyRotationStatus -> attributes."""
    return {
        "arn": metadata.get("Arn"),
        "key_state": metadata.get("KeyState"),
        "rotation_enabled": bool(rotation.get("KeyRotationEnabled")),
    }


def alarm_attributes(alarm: dict[str, Any]) -> dict[str, Any]:
    """One DescribeAlarms MetricAlarms entry -> attributes."""
    threshold = alarm.get("Threshold")
    return {
        "namespace": alarm.get("Namespace"),
        "metric": alarm.get("MetricName"),
        "dimensions": {d["Name"]: d["Value"] for d in alarm.get("Dimensions") or []},
        "statistic": alarm.get("Statistic") or alarm.get("ExtendedStatistic"),
        "threshold": float(threshold) if threshold is not None else None,
        "comparison": alarm.get("ComparisonOperator"),
        "period": alarm.get("Period"),
        "evaluation_periods": alarm.get("EvaluationPeriods"),
        "alarm_actions": sorted(alarm.get("AlarmActions") or []),
    }


def bucket_attributes(
    versioning: dict[str, Any],
    encryption: dict[str, Any] | None,
    public_access_block: dict[str, Any] | None,
) -> dict[str, Any]:
    """GetBucketVersioning, GetBucketEncryption and GetPublicAccessBlock (None: not configured)."""
    rules = ((encryption or {}).get("ServerSideEncryptionConfiguration") or {}).get("Rules") or []
    default = (rules[0].get("ApplyServerSideEncryptionByDefault") or {}) if rules else {}
    blocks = (public_access_block or {}).get("PublicAccessBlockConfiguration") or {}
    return {
        # A bucket that never had versioning reports no Status.
        "versioning": versioning.get("Status") or "Disabled",
        "sse_algorithm": default.get("SSEAlgorithm"),
        "sse_kms_key": default.get("KMSMasterKeyID"),
        # No configuration means nothing is blocked.
        **{f"public_access_block.{flag}": bool(blocks.get(flag)) for flag in PUBLIC_ACCESS_BLOCKS},
    }


def policy_document(document: Any) -> dict[str, Any]:
    """A policy as IAM returns it: a dict (boto3 decodes it) or URL-encoded JSON text."""
    if isinstance(document, dict):
        return document
    text = unquote(document or "{}")
    return json.loads(text)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def trust_attributes(document: Any) -> dict[str, Any]:
    """The OIDC conditions of a role's trust policy: ``{operator: sorted values}`` for sub and aud.

    Only Allow statements for sts:AssumeRoleWithWebIdentity count; the federated
    principals are kept too, since a wider principal widens the trust as much.
    """
    policy = policy_document(document)
    sub: dict[str, set[str]] = {}
    aud: dict[str, set[str]] = {}
    principals: set[str] = set()
    for statement in _as_list(policy.get("Statement") or []):
        actions = _as_list(statement.get("Action") or [])
        if statement.get("Effect") != "Allow" or "sts:AssumeRoleWithWebIdentity" not in actions:
            continue
        federated = (statement.get("Principal") or {}).get("Federated") or []
        principals.update(_as_list(federated))
        for operator, conditions in (statement.get("Condition") or {}).items():
            for key, values in (conditions or {}).items():
                target = {f"{OIDC_HOST}:sub": sub, f"{OIDC_HOST}:aud": aud}.get(key)
                if target is not None:
                    target.setdefault(operator, set()).update(map(str, _as_list(values)))
    return {
        "trust_sub": {op: sorted(v) for op, v in sorted(sub.items())},
        "trust_aud": {op: sorted(v) for op, v in sorted(aud.items())},
        "trust_federated_principals": sorted(principals),
    }


def topic_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """GetTopicAttributes["Attributes"] -> attributes."""
    return {"kms_master_key_id": attributes.get("KmsMasterKeyId")}


def json_ready(snapshot: Snapshot) -> Snapshot:
    """Exactly what a JSON round trip gives (tuples become lists), so live and stored compare."""
    return json.loads(json.dumps(snapshot, sort_keys=True))


# -- thin boto3 reads ------------------------------------------------------------------------
def _missing(exc: BaseException) -> bool:
    return error_code(exc) in NOT_FOUND


def _optional(read, *args, **kwargs) -> dict[str, Any] | None:
    """A bucket configuration read; None where the bucket has none."""
    try:
        return read(*args, **kwargs)
    except Exception as exc:
        if error_code(exc) in NO_CONFIGURATION:
            return None
        raise


def _if_present(read: Callable[[], T]) -> T | None:
    """``read()``, or None where the resource does not exist (the snapshot leaves it out)."""
    try:
        return read()
    except Exception as exc:
        if not _missing(exc):
            raise
        return None


def capture(clients: AwsClients, environment: str) -> Snapshot:
    """Read every contract resource of ``environment`` (17 API calls when all exist)."""
    snapshot: Snapshot = {}
    _capture_tables(clients, environment, snapshot)
    key_arn = _capture_kms_key(clients, environment, snapshot)
    _capture_alarms(clients, environment, snapshot)
    _capture_bucket(clients, environment, snapshot)
    role_arn = _capture_role(clients, environment, snapshot)
    _capture_topic(clients, environment, snapshot, key_arn or role_arn)
    return json_ready(snapshot)


def _capture_tables(clients: AwsClients, environment: str, snapshot: Snapshot) -> None:
    ddb = clients.client("dynamodb")
    for spec in contract.TABLES:
        attributes = _if_present(functools.partial(_read_table, ddb, spec.name(environment)))
        if attributes is not None:
            snapshot[table_key(environment, spec)] = attributes


def _read_table(ddb: Any, name: str) -> dict[str, Any]:
    return table_attributes(
        ddb.describe_table(TableName=name)["Table"],
        ddb.describe_continuous_backups(TableName=name),
        ddb.describe_time_to_live(TableName=name),
    )


def _capture_kms_key(clients: AwsClients, environment: str, snapshot: Snapshot) -> str | None:
    """The key's settings; returns its ARN (also when its rotation status is not found)."""
    kms = clients.client("kms")
    metadata = _if_present(lambda: kms.describe_key(KeyId=kms_alias(environment))["KeyMetadata"])
    if metadata is None:
        return None
    key_arn: str = metadata["Arn"]
    rotation = _if_present(lambda: kms.get_key_rotation_status(KeyId=key_arn))
    if rotation is not None:
        snapshot[kms_key(environment)] = kms_attributes(metadata, rotation)
    return key_arn


def _capture_alarms(clients: AwsClients, environment: str, snapshot: Snapshot) -> None:
    names = {spec.full_name(environment): spec for spec in contract.ALARMS}
    alarms = clients.client("cloudwatch").describe_alarms(AlarmNames=list(names))
    for alarm in alarms.get("MetricAlarms", []):
        if alarm["AlarmName"] in names:
            snapshot[alarm_key(environment, names[alarm["AlarmName"]])] = alarm_attributes(alarm)


def _capture_bucket(clients: AwsClients, environment: str, snapshot: Snapshot) -> None:
    s3 = clients.client("s3")
    bucket = bucket_name(environment)

    def read() -> dict[str, Any]:
        versioning = s3.get_bucket_versioning(Bucket=bucket)
        encryption = _optional(s3.get_bucket_encryption, Bucket=bucket)
        blocks = _optional(s3.get_public_access_block, Bucket=bucket)
        return bucket_attributes(versioning, encryption, blocks)

    attributes = _if_present(read)
    if attributes is not None:
        snapshot[bucket_key(environment)] = attributes


def _capture_role(clients: AwsClients, environment: str, snapshot: Snapshot) -> str | None:
    """The role's trust settings; returns its ARN."""
    iam = clients.client("iam")
    role = _if_present(lambda: iam.get_role(RoleName=role_name(environment))["Role"])
    if role is None:
        return None
    snapshot[role_key(environment)] = trust_attributes(role.get("AssumeRolePolicyDocument"))
    return role["Arn"]


def _capture_topic(
    clients: AwsClients, environment: str, snapshot: Snapshot, known_arn: str | None
) -> None:
    sns = clients.client("sns")

    def read() -> dict[str, Any]:
        arn = topic_arn(clients, environment, known_arn)
        return topic_attributes(sns.get_topic_attributes(TopicArn=arn)["Attributes"])

    attributes = _if_present(read)
    if attributes is not None:
        snapshot[topic_key(environment)] = attributes


def topic_arn(clients: AwsClients, environment: str, known_arn: str | None) -> str:
    """The topic's ARN from the partition and account of an ARN already read (else STS)."""
    if known_arn:
        partition, account = known_arn.split(":")[1], known_arn.split(":")[4]
    else:
        account = clients.client("sts").get_caller_identity()["Account"]
        partition = "aws"
    return f"arn:{partition}:sns:{clients.region}:{account}:{topic_name(environment)}"
