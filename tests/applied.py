"""An environment applied by the real Terraform on the sandbox, and its state read back from moto."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.provisioners import terraform_for
from mirror_rollout.provisioners.base import ApplyResult
from mirror_rollout.provisioners.state_backend import BackendSpec


def apply_environment(env: str, work_dir: Path, root: Path | None = None) -> ApplyResult:
    """Plan and apply ``env`` as a reviewed rollout would (no flow, no approval)."""
    terraform = terraform_for(
        env, "sandbox", Path(root or PROJECT_ROOT), Path(work_dir) / "terraform"
    )
    planned = terraform.plan(Path(work_dir))
    return terraform.apply(Path(planned.plan_file), planned.sha256)


def state_document(env: str, spec: BackendSpec | None = None) -> dict[str, Any] | None:
    """The workspace's state object in moto's S3 (what the S3 backend stored), None if absent."""
    import boto3

    spec = spec or BackendSpec()
    s3 = boto3.client("s3", region_name=spec.region)
    try:
        body = s3.get_object(Bucket=spec.bucket, Key=spec.state_key(env))["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def nonce_values(env: str) -> list[str]:
    """The values of every nonce version of ``env`` in moto's SSM."""
    ssm = _client("ssm")
    names = [
        p["Name"]
        for p in ssm.describe_parameters(
            ParameterFilters=[
                {"Key": "Name", "Option": "BeginsWith", "Values": [f"/guardian/{env}/"]}
            ]
        )["Parameters"]
    ]
    return [ssm.get_parameter(Name=n, WithDecryption=True)["Parameter"]["Value"] for n in names]


def state_serial(env: str, spec: BackendSpec | None = None) -> int | None:
    state = state_document(env, spec)
    return None if state is None else int(state["serial"])


def state_addresses(env: str) -> set[str]:
    """Managed resource instance addresses tracked by the state."""
    state = state_document(env) or {}
    found = set()
    for resource in state.get("resources", []):
        if resource.get("mode") != "managed":
            continue
        base = f"{resource['type']}.{resource['name']}"
        for instance in resource.get("instances", []):
            key = instance.get("index_key")
            found.add(base if key is None else f"{base}[{json.dumps(key)}]")
    return found


# -- one applied staging, shared by the test modules that only need one to exist --------------
#: The modules that share it. `make test`'s scheduler (tests/conftest.py) hands them to one
#: worker together, so the environment one applies is there for the next.
SHARED_STAGING_MODULES = (
    "test_alarm_probe.py",
    "test_app_integration.py",
    "test_dashboard.py",
    "test_data_plane.py",
    "test_drift.py",
    "test_e2e.py",
    "test_pitr.py",
    "test_restore_drill.py",
)
ENV = "staging"
#: The start of every project resource name in staging.
PREFIX = f"mirror-dissonance-{ENV}-"


@dataclass
class _Shared:
    """What this worker applied last, and at which moto reset."""

    resets: int = 0
    applied_at: int = -1
    work: Path | None = None
    result: ApplyResult | None = None
    alarm_states: dict[str, str] = field(default_factory=dict)


SHARED = _Shared()


def moto_was_reset() -> None:
    """Called by every moto reset of this worker: what it held is gone."""
    SHARED.resets += 1


def shared_staging(work_dir: Path) -> ApplyResult:
    """Staging as a fresh apply leaves it: applied once per worker, then given back.

    The first module applies it (after a moto reset). A later one, when nothing reset moto
    in between, gets it back as a fresh apply would leave it: what earlier tests added is
    removed (project resources state does not track, table items, nonce versions, bucket
    objects, probe queues and subscriptions, alarm states), and Terraform puts back what
    they changed or deleted (a refreshing plan, applied when it is not empty). Tests that
    need an apply of their own (a changed root, a fault, a rollout) do not come here.
    """
    from tests.conftest import reset_moto

    if SHARED.applied_at == SHARED.resets and SHARED.work is not None:
        try:
            return _given_back(Path(work_dir))
        except Exception as exc:  # giving back is a shortcut; a fresh apply is not
            # e.g. a create whose response moto lost (the table exists, state does not know).
            warnings.warn(
                f"shared staging not given back ({exc}); applying it afresh", stacklevel=2
            )
    reset_moto()
    SHARED.work = Path(work_dir)
    SHARED.result = apply_environment(ENV, SHARED.work)
    SHARED.applied_at = SHARED.resets
    SHARED.alarm_states = _alarm_states()
    return SHARED.result


def _given_back(work_dir: Path) -> ApplyResult:
    _remove_what_tests_added()
    terraform = terraform_for(ENV, "sandbox", PROJECT_ROOT, SHARED.work / "terraform")
    converge = terraform.plan(work_dir / "converge", replan=True)
    if converge.exit_code == 2:
        terraform.apply(Path(converge.plan_file), converge.sha256)
    _put_alarm_states(SHARED.alarm_states)
    return SHARED.result.model_copy(update={"outputs": terraform.outputs()})


def _client(service: str):
    import boto3

    return boto3.client(service, region_name="us-east-1")


def _alarm_states() -> dict[str, str]:
    alarms = _client("cloudwatch").describe_alarms(AlarmNamePrefix=PREFIX)
    return {a["AlarmName"]: a["StateValue"] for a in alarms["MetricAlarms"]}


def _put_alarm_states(states: dict[str, str]) -> None:
    cloudwatch = _client("cloudwatch")
    for name, state in _alarm_states().items():
        if name not in states:
            cloudwatch.delete_alarms(AlarmNames=[name])  # a test's extra alarm
        elif state != states[name]:
            cloudwatch.set_alarm_state(
                AlarmName=name, StateValue=states[name], StateReason="shared staging restored"
            )


def _tracked(state: dict[str, Any], resource_type: str) -> set[str]:
    """The ids ``state`` tracks for ``resource_type``."""
    return {
        instance["attributes"].get("id")
        for resource in state.get("resources", [])
        if resource.get("mode") == "managed" and resource["type"] == resource_type
        for instance in resource.get("instances", [])
    }


def _remove_what_tests_added() -> None:
    state = state_document(ENV) or {}
    _empty_tables(state)
    _remove_nonce_versions(state)
    _empty_buckets(state)
    _remove_probe_queues()
    _remove_subscriptions_and_topics(state)


def _empty_tables(state: dict[str, Any]) -> None:
    """Tables state does not track are deleted; the tracked ones lose every item."""
    tables = _tracked(state, "aws_dynamodb_table")
    dynamodb = _client("dynamodb")
    for name in dynamodb.list_tables()["TableNames"]:
        if not name.startswith(PREFIX):
            continue
        if name not in tables:
            dynamodb.delete_table(TableName=name)
            continue
        keys = [
            k["AttributeName"]
            for k in dynamodb.describe_table(TableName=name)["Table"]["KeySchema"]
        ]
        for page in dynamodb.get_paginator("scan").paginate(TableName=name):
            for item in page["Items"]:
                dynamodb.delete_item(TableName=name, Key={k: item[k] for k in keys})


def _remove_nonce_versions(state: dict[str, Any]) -> None:
    ssm = _client("ssm")
    parameters = _tracked(state, "aws_ssm_parameter")
    for page in ssm.get_paginator("describe_parameters").paginate():
        for parameter in page["Parameters"]:
            if (
                parameter["Name"].startswith(f"/guardian/{ENV}/")
                and parameter["Name"] not in parameters
            ):
                ssm.delete_parameter(Name=parameter["Name"])


def _empty_buckets(state: dict[str, Any]) -> None:
    s3 = _client("s3")
    for bucket in _tracked(state, "aws_s3_bucket"):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
                s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])


def _remove_probe_queues() -> None:
    sqs = _client("sqs")
    for url in sqs.list_queues().get("QueueUrls", []):
        sqs.delete_queue(QueueUrl=url)


def _remove_subscriptions_and_topics(state: dict[str, Any]) -> None:
    sns = _client("sns")
    subscriptions = _tracked(state, "aws_sns_topic_subscription")
    topics = _tracked(state, "aws_sns_topic")
    for page in sns.get_paginator("list_subscriptions").paginate():
        for subscription in page["Subscriptions"]:
            arn = subscription["SubscriptionArn"]
            if arn.startswith("arn:") and arn not in subscriptions:
                sns.unsubscribe(SubscriptionArn=arn)
    for page in sns.get_paginator("list_topics").paginate():
        for topic in page["Topics"]:
            arn = topic["TopicArn"]
            if arn.rsplit(":", 1)[-1].startswith(PREFIX) and arn not in topics:
                sns.delete_topic(TopicArn=arn)
