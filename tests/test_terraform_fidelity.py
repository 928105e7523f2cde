"""Terraform behaviours the rollout relies on, with the real Terraform and provider on the sandbox.

The small roots of tests/fixtures/roots (see tests/tf_roots.py) are planned and
applied by the provisioner exactly as a rollout builds it; the result is read
back from moto with boto3: Terraform's own output is never the only evidence.

Applies take time (each Terraform command starts the 700 MB provider), so two
module-scoped fixtures apply a root once and several tests read the outcome:
``evolved`` (a root applied, changed, applied again: removed arguments and
moved blocks) and ``featured`` (module, dynamic block, heredoc, policy
document, aliased provider, guarded resources, declared moto gaps). The tests
only read, or plan a change Terraform refuses, so they do not depend on each
other or on their order; each root copy has its own state key and AWS names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import pytest

from mirror_rollout.provisioners.base import ApplyResult, PlanResult
from mirror_rollout.provisioners.terraform_cli import TerraformCli
from mirror_rollout.provisioners.terraform_run import TerraformFailed
from tests.tf_roots import Root, mirror_rollout

ACCOUNT = "123456789012"  # moto's default account (staging's sandbox account)


def plan_and_apply(terraform: TerraformCli, out: Path) -> tuple[PlanResult, ApplyResult]:
    planned = terraform.plan(out)
    return planned, terraform.apply(Path(planned.plan_file), planned.sha256)


def changed_attributes(change) -> dict[str, Any]:
    """The attributes a planned update changes, with their values after it."""
    before, after = change.change.before or {}, change.change.after or {}
    unknown = change.change.after_unknown or {}
    return {
        key: value
        for key, value in after.items()
        if before.get(key) != value and not unknown.get(key)
    }


def absent_as_none(value: Any) -> Any:
    """SNS reports an unset DisplayName as "" where the plan's after has null: both mean unset."""
    return None if value == "" else value


# ------------------------------------------------------------------ moto, read back
def moto_alarm(name: str) -> dict[str, Any]:
    alarms = boto3.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert len(alarms) == 1, f"alarm {name} not in moto"
    alarm = alarms[0]
    return {
        "alarm_name": alarm["AlarmName"],
        "alarm_description": alarm.get("AlarmDescription"),
        "alarm_actions": sorted(alarm.get("AlarmActions", [])),
        "ok_actions": sorted(alarm.get("OKActions", [])),
        "insufficient_data_actions": sorted(alarm.get("InsufficientDataActions", [])),
        "treat_missing_data": alarm.get("TreatMissingData"),
        "datapoints_to_alarm": alarm.get("DatapointsToAlarm"),
        "evaluation_periods": alarm["EvaluationPeriods"],
        "period": alarm["Period"],
        "threshold": alarm["Threshold"],
        "comparison_operator": alarm["ComparisonOperator"],
        "namespace": alarm["Namespace"],
        "metric_name": alarm["MetricName"],
        "statistic": alarm.get("Statistic"),
    }


def moto_topic(arn: str, region: str = "us-east-1") -> dict[str, Any]:
    attributes = boto3.client("sns", region_name=region).get_topic_attributes(TopicArn=arn)
    attributes = attributes["Attributes"]
    return {
        "arn": attributes["TopicArn"],
        "display_name": attributes.get("DisplayName"),
        "policy": json.loads(attributes["Policy"]) if attributes.get("Policy") else None,
    }


def topic_names(region: str) -> set[str]:
    sns = boto3.client("sns", region_name=region)
    arns = [
        t["TopicArn"]
        for page in sns.get_paginator("list_topics").paginate()
        for t in page["Topics"]
    ]
    return {arn.rsplit(":", 1)[1] for arn in arns}


def moto_parameter(name: str, region: str = "us-east-1") -> dict[str, Any] | None:
    ssm = boto3.client("ssm", region_name=region)
    found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])
    if not found["Parameters"]:
        return None
    described = found["Parameters"][0]
    value = ssm.get_parameter(Name=name)["Parameter"]
    return {
        "name": described["Name"],
        "description": described.get("Description"),
        "type": described["Type"],
        "value": value["Value"],
        "version": described["Version"],
        "last_modified": described["LastModifiedDate"],
        "arn": value["ARN"],
    }


def moto_table(name: str) -> dict[str, Any] | None:
    dynamodb = boto3.client("dynamodb")
    try:
        table = dynamodb.describe_table(TableName=name)["Table"]
    except dynamodb.exceptions.ResourceNotFoundException:
        return None
    return {
        "arn": table["TableArn"],
        "id": table.get("TableId"),
        "created": table["CreationDateTime"],
        "attributes": {
            a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]
        },
        "keys": {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]},
    }


# ------------------------------------------------------------------ applied roots
@dataclass
class Evolved:
    root: Root
    before: dict[str, Any]
    planned: PlanResult
    applied: ApplyResult
    after: dict[str, Any]
    replanned: PlanResult


def evolve_readings(prefix: str) -> dict[str, Any]:
    return {
        "aws_cloudwatch_metric_alarm.errors": moto_alarm(f"{prefix}-errors"),
        "aws_sns_topic.alerts": moto_topic(f"arn:aws:sns:us-east-1:{ACCOUNT}:{prefix}-alerts"),
        "aws_ssm_parameter.threshold": moto_parameter(f"/{prefix}/threshold"),
        "table": moto_table(f"{prefix}-archive"),
        "setting": moto_parameter(f"/{prefix}/setting"),
    }


@pytest.fixture(scope="module")
def evolved(sandbox, tmp_path_factory) -> Evolved:
    """The evolve root applied, then changed (next/) and applied again, then re-planned."""
    base = tmp_path_factory.mktemp("evolve")
    root = Root("evolve", base)
    plan_and_apply(root.terraform(), base / "first")
    before = evolve_readings(root.prefix())
    root.change("next")
    planned, applied = plan_and_apply(root.terraform(), base / "second")
    after = evolve_readings(root.prefix())
    replanned = root.terraform().plan(base / "replan", replan=True)
    return Evolved(root, before, planned, applied, after, replanned)


@dataclass
class Featured:
    root: Root
    planned: PlanResult
    applied: ApplyResult
    replanned: PlanResult


@pytest.fixture(scope="module")
def featured(sandbox, tmp_path_factory) -> Featured:
    """The features root applied, then re-planned."""
    base = tmp_path_factory.mktemp("features")
    root = Root("features", base)
    planned, applied = plan_and_apply(root.terraform(), base / "first")
    replanned = root.terraform().plan(base / "replan", replan=True)
    return Featured(root, planned, applied, replanned)


# ------------------------------------------------------------------ 1. removed arguments
def test_removing_arguments_plans_updates_and_moto_matches_the_plans_after(evolved):
    prefix = evolved.root.prefix()
    topic_arn = f"arn:aws:sns:us-east-1:{ACCOUNT}:{prefix}-alerts"
    alarm_before = evolved.before["aws_cloudwatch_metric_alarm.errors"]
    assert (alarm_before["ok_actions"], alarm_before["treat_missing_data"]) == (
        [topic_arn],
        "breaching",
    )

    updates = {
        c.address: c for c in evolved.planned.document.managed_changes() if c.action != "no-op"
    }
    assert {a: c.action for a, c in updates.items()} == {
        "aws_cloudwatch_metric_alarm.errors": "update",
        "aws_sns_topic.alerts": "update",
        "aws_ssm_parameter.threshold": "update",
    }
    assert {a.address for a in evolved.applied.applied} == set(updates)
    removed = {
        "aws_cloudwatch_metric_alarm.errors": {
            "ok_actions",
            "treat_missing_data",
            "alarm_description",
            "datapoints_to_alarm",
        },
        "aws_sns_topic.alerts": {"display_name"},
        "aws_ssm_parameter.threshold": {"description"},
    }
    for address, change in updates.items():
        changed = changed_attributes(change)
        # every removed argument is planned as a change, and nothing else is
        assert set(changed) == removed[address], (address, changed)
        in_moto = evolved.after[address]
        for attribute, after in changed.items():
            if isinstance(after, list):
                after = sorted(after)
            assert absent_as_none(in_moto[attribute]) == absent_as_none(after), (
                f"{address}.{attribute}: the plan's after is {after!r}, "
                f"moto has {in_moto[attribute]!r}"
            )
    # what the plan left alone is still as it was
    alarm = evolved.after["aws_cloudwatch_metric_alarm.errors"]
    unchanged = set(alarm) - removed["aws_cloudwatch_metric_alarm.errors"]
    assert {k: alarm[k] for k in unchanged} == {k: alarm_before[k] for k in unchanged}
    assert evolved.after["aws_ssm_parameter.threshold"]["value"] == "1"


# ------------------------------------------------------------------ 4. moved blocks
def test_a_moved_block_is_a_move_not_a_replace(evolved):
    changes = evolved.planned.document.managed_changes()
    moves = {
        c.address: (c.previous_address, c.action)
        for c in changes
        if getattr(c, "previous_address", None)
    }
    assert moves == {
        "aws_dynamodb_table.history": ("aws_dynamodb_table.archive", "no-op"),
        'aws_ssm_parameter.settings["setting"]': ("aws_ssm_parameter.setting", "no-op"),
    }
    assert not any({"create", "delete"} & set(c.change.actions) for c in changes)
    assert evolved.planned.summary.destructive == []
    assert not set(moves) & {a.address for a in evolved.applied.applied}

    assert evolved.before["table"] is not None and evolved.before["setting"] is not None
    assert evolved.after["table"] == evolved.before["table"]  # same ARN, id, creation time
    assert evolved.after["setting"] == evolved.before["setting"]  # same version and date
    state = evolved.root.state()
    addresses = {
        f"{r['type']}.{r['name']}" + (f'["{i["index_key"]}"]' if "index_key" in i else "")
        for r in state["resources"]
        for i in r["instances"]
    }
    assert {"aws_dynamodb_table.history", 'aws_ssm_parameter.settings["setting"]'} <= addresses
    assert not {"aws_dynamodb_table.archive", "aws_ssm_parameter.setting"} & addresses


# ------------------------------------------------------------------ 2. prevent_destroy
def test_prevent_destroy_refuses_a_replacing_rename_at_plan(featured, sandbox, tmp_path):
    prefix = featured.root.prefix()
    table_before = moto_table(f"{prefix}-ledger")
    topic_arn = f"arn:aws:sns:us-east-1:{ACCOUNT}:{prefix}-ledger"
    topic_before = moto_topic(topic_arn)
    serial = featured.root.serial()
    assert table_before is not None and serial is not None

    root = featured.root.clone(tmp_path)  # the same state, with the guarded table renamed
    root.change("replace-guarded")
    done = mirror_rollout(sandbox, "plan", "--env", "staging", "--root", str(root.path))

    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: Error: Instance cannot be destroyed" in done.stderr
    # Terraform's own explanation names the resource (logged in full under the summary)
    message = "Resource aws_dynamodb_table.ledger has lifecycle.prevent_destroy set"
    assert message in done.stderr, done.stderr
    assert "sha256" not in done.stdout  # no plan was made
    assert moto_table(f"{prefix}-ledger") == table_before
    assert moto_table(f"{prefix}-ledger-v2") is None
    assert moto_topic(topic_arn) == topic_before  # the in-place update did not happen either
    assert root.serial() == serial
    assert root.lock_items() == []


# ------------------------------------------------------------------ 3. unknown argument
def test_an_unknown_argument_is_refused_at_plan(sandbox, tmp_path):
    root = Root("unknown-argument", tmp_path)
    prefix = root.prefix()
    terraform = root.terraform()
    with pytest.raises(TerraformFailed) as raised:
        terraform.plan(tmp_path / "out")
    assert raised.value.command == "plan"
    assert raised.value.first_line == "Error: Unsupported argument"
    assert terraform.refuses_configuration(raised.value) == "Error: Unsupported argument"
    assert not (tmp_path / "out" / "staging.tfplan").exists()

    done = mirror_rollout(sandbox, "plan", "--env", "staging", "--root", str(root.path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: Error: Unsupported argument" in done.stderr
    assert 'An argument named "no_such_argument" is not expected here.' in done.stderr

    assert moto_parameter(f"/{prefix}/valid") is None
    assert f"{prefix}-typo" not in topic_names("us-east-1")
    # `workspace new` wrote the workspace's empty state; nothing was ever added to it
    assert root.state()["resources"] == []
    assert root.lock_items() == []


# ------------------------------------------------------------------ 5. module, dynamic, heredoc
def test_module_dynamic_block_heredoc_and_policy_document(featured):
    prefix = featured.root.prefix()
    actions = {c.address: c.action for c in featured.planned.document.resource_changes}
    main_tf = ("aws_dynamodb_table.orders", "aws_ssm_parameter.runbook")
    assert {a: v for a, v in actions.items() if a.startswith("module.") or a in main_tf} == {
        "aws_dynamodb_table.orders": "create",
        "aws_ssm_parameter.runbook": "create",
        "module.topic.aws_sns_topic.this": "create",
        "module.topic.aws_sns_topic_policy.this": "create",
        # read at apply: the document needs the topic's ARN
        "module.topic.data.aws_iam_policy_document.access": "read",
    }

    topic_arn = f"arn:aws:sns:us-east-1:{ACCOUNT}:{prefix}-orders"
    policy = moto_topic(topic_arn)["policy"]
    assert policy is not None, "moto holds no policy on the module's topic"
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert set(statements) == {"PublishEvents", "PublishCloudwatch", "Subscribe"}
    for sid, service in (
        ("PublishEvents", "events.amazonaws.com"),
        ("PublishCloudwatch", "cloudwatch.amazonaws.com"),
    ):
        assert statements[sid]["Principal"] == {"Service": service}
        assert statements[sid]["Action"] == "sns:Publish"
        assert statements[sid]["Resource"] == topic_arn
        assert statements[sid]["Effect"] == "Allow"
    assert statements["Subscribe"]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert sorted(statements["Subscribe"]["Action"]) == ["sns:Receive", "sns:Subscribe"]
    assert policy == json.loads(featured.applied.outputs["topic_policy"])

    table = moto_table(f"{prefix}-orders")
    assert table is not None
    assert table["attributes"] == {"pk": "S", "sk": "N"}  # from the dynamic block
    assert table["keys"] == {"pk": "HASH", "sk": "RANGE"}

    runbook = moto_parameter(f"/{prefix}/runbook")
    assert runbook is not None
    assert runbook["value"] == (
        f"Orders are announced on {topic_arn}\nand kept in {prefix}-orders.\n"
    )


# ------------------------------------------------------------------ 6. provider alias
def test_an_aliased_provider_creates_in_its_own_region(featured):
    prefix = featured.root.prefix()
    # the aliased provider is pointed at moto too (else it would have tried AWS itself)
    override = featured.planned.override
    assert override is not None and 'alias = "west"' in override
    assert featured.applied.outputs["west_topic_arn"] == (
        f"arn:aws:sns:us-west-2:{ACCOUNT}:{prefix}-west"
    )
    west, east = topic_names("us-west-2"), topic_names("us-east-1")
    assert f"{prefix}-west" in west and f"{prefix}-west" not in east
    assert f"{prefix}-orders" in east and f"{prefix}-orders" not in west
    assert moto_topic(f"arn:aws:sns:us-west-2:{ACCOUNT}:{prefix}-west", "us-west-2")
    parameter = moto_parameter(f"/{prefix}/region", "us-west-2")
    assert parameter is not None and parameter["value"] == "us-west-2"
    assert parameter["arn"].startswith("arn:aws:ssm:us-west-2:")
    assert moto_parameter(f"/{prefix}/region", "us-east-1") is None


# ------------------------------------------------------------------ 7. re-plan after apply
@pytest.mark.parametrize("applied_root", ["evolved", "featured"])
def test_a_replan_after_apply_is_empty(applied_root, request):
    """A refreshing re-plan after the apply: Terraform's -detailed-exitcode 0 (no changes).

    With exit 0 Terraform itself says nothing would change, so no `show` is run: every
    instance of the state counts as unchanged.
    """
    replanned = request.getfixturevalue(applied_root).replanned
    assert replanned.exit_code == 0 and replanned.document is None
    assert not replanned.summary.has_changes
    assert replanned.summary.resource_count == replanned.summary.counts["no-op"] > 0


def test_the_declared_moto_gaps_are_the_only_exceptions(featured):
    """features/gaps.tf: one resource moto cannot create, one whose tags moto does not keep."""
    prefix = featured.root.prefix()
    for planned in (featured.planned, featured.replanned):
        assert {g.address: g.kind for g in planned.gaps} == {
            "aws_s3_bucket_logging.audit": "exclude",
            "aws_backup_vault.main": "ignore",
        }
        assert set(planned.summary.not_provisionable) == {"aws_s3_bucket_logging.audit"}
    addresses = {c.address for c in featured.planned.document.resource_changes}
    assert "aws_s3_bucket_logging.audit" not in addresses  # count = 0: no instance
    assert "aws_backup_vault.main" in addresses
    # The re-plan was empty (exit 0) although moto answers the vault's tags with none.
    assert featured.replanned.exit_code == 0
    assert "aws_s3_bucket_logging.audit" in featured.applied.not_provisioned

    s3 = boto3.client("s3")
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=f"{prefix}-audit")
    vault = boto3.client("backup").describe_backup_vault(BackupVaultName=f"{prefix}-vault")
    # The gap is still real (else drop it from MOTO_GAPS): moto keeps the vault's tags and
    # answers boto3's GET /tags/{arn}/, but not the provider's GET /tags/{arn}.
    assert backup_tags(vault["BackupVaultArn"]) == {"purpose": "fidelity"}
    assert backup_tags(vault["BackupVaultArn"], as_the_provider_asks=True) == {}


def backup_tags(arn: str, *, as_the_provider_asks: bool = False) -> dict[str, str]:
    """AWS Backup ListTags; optionally with the provider's URL (the Go SDK sends no final '/')."""
    backup = boto3.client("backup")
    if as_the_provider_asks:

        def without_final_slash(request, **_):
            parts = urlsplit(request.url)
            request.url = urlunsplit(parts._replace(path=parts.path.rstrip("/")))

        backup.meta.events.register("before-sign.backup.ListTags", without_final_slash)
    return backup.list_tags(ResourceArn=arn).get("Tags", {})
