"""The sandbox engine plans and applies the real infra/terraform against moto over HTTP."""

from __future__ import annotations

import json
import threading
import time

import pytest

from mirror_rollout import contract
from mirror_rollout.provisioners.base import ApplyRefused, StateLocked
from mirror_rollout.provisioners.sandbox.engine import SandboxEngine
from tests.aws_inventory import client, inventory
from tests.conftest import reset_moto

STAGING_RESOURCES = 35  # managed resource instances of staging (ops_email has count 0)


@pytest.fixture(scope="module")
def applied_staging(sandbox, tmp_path_factory):
    """Staging planned and applied once; tests below only read it."""
    reset_moto()
    out = tmp_path_factory.mktemp("plan")
    engine = SandboxEngine("staging")
    started = time.monotonic()
    plan = engine.plan(out)
    plan_seconds = time.monotonic() - started
    result = engine.apply(plan.plan_file, plan.sha256)
    return engine, plan, result, plan_seconds


def test_first_plan_creates_every_resource(applied_staging):
    _, plan, result, _ = applied_staging
    assert plan.summary.counts == {"create": STAGING_RESOURCES}
    assert plan.summary.missing_expected == []
    assert plan.summary.destructive == []
    assert "aws_backup_selection.tables" in plan.summary.not_provisionable
    assert len(result.applied) == STAGING_RESOURCES
    assert "aws_backup_selection.tables" in result.not_provisioned


def test_second_plan_right_after_apply_has_zero_changes(applied_staging, tmp_path):
    engine, _, result, _ = applied_staging
    replan = engine.plan(tmp_path)
    assert replan.summary.counts == {"no-op": STAGING_RESOURCES}
    assert not replan.summary.has_changes
    assert replan.prior_serial == result.state_serial


def test_tables_match_the_hcl(applied_staging):
    ddb = client("dynamodb")
    key_id = applied_staging[2].outputs["kms_key_arn"]
    for spec in contract.TABLES:
        table = ddb.describe_table(TableName=spec.name("staging"))["Table"]
        keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
        assert keys.get("HASH") == spec.hash_key and keys.get("RANGE") == spec.range_key
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert table["SSEDescription"]["Status"] == "ENABLED"
        assert table["SSEDescription"]["KMSMasterKeyArn"] == key_id
        pitr = ddb.describe_continuous_backups(TableName=spec.name("staging"))
        assert (
            pitr["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
                "PointInTimeRecoveryStatus"
            ]
            == "ENABLED"
        )
        ttl = ddb.describe_time_to_live(TableName=spec.name("staging"))["TimeToLiveDescription"]
        if spec.ttl_attribute:
            assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": spec.ttl_attribute}
        if spec.gsi:
            gsi = table["GlobalSecondaryIndexes"][0]
            assert gsi["IndexName"] == spec.gsi[0]
            assert [k["AttributeName"] for k in gsi["KeySchema"]] == list(spec.gsi[1:])
            assert gsi["Projection"]["ProjectionType"] == "ALL"


def test_alarms_match_the_contract(applied_staging):
    topic = applied_staging[2].outputs["sns_topic_arn"]
    alarms = {a["AlarmName"]: a for a in client("cloudwatch").describe_alarms()["MetricAlarms"]}
    for spec in contract.ALARMS:
        alarm = alarms[spec.full_name("staging")]
        assert alarm["Namespace"] == spec.namespace("staging")
        assert alarm["MetricName"] == spec.metric
        assert alarm["Threshold"] == spec.threshold
        assert alarm["ComparisonOperator"] == spec.comparison
        assert alarm["Period"] == spec.period
        assert alarm["Statistic"] == spec.statistic
        assert alarm["AlarmActions"] == [topic]
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == spec.dimensions("staging")


def test_buckets_key_and_nonce_placeholder(applied_staging):
    outputs = applied_staging[2].outputs
    s3 = client("s3")
    bucket = outputs["baselines_bucket_name"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == outputs["kms_key_arn"]
    blocks = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert blocks == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    kms = client("kms")
    assert kms.get_key_rotation_status(KeyId=outputs["kms_key_arn"])["KeyRotationEnabled"] is True
    parameter = client("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [outputs["nonce_parameter_name"]]}]
    )["Parameters"][0]
    assert parameter["Type"] == "SecureString"
    assert parameter["KeyId"] == outputs["kms_key_arn"]


def test_state_is_terraform_shaped_and_holds_no_write_only_value(applied_staging):
    engine = applied_staging[0]
    raw = (
        client("s3")
        .get_object(Bucket=contract.STATE_BUCKET, Key="env/staging/infra/terraform.tfstate")["Body"]
        .read()
    )
    state = json.loads(raw)
    assert state["version"] == 4 and state["serial"] == engine.state_serial() and state["lineage"]
    nonce = next(r for r in state["resources"] if r["type"] == "aws_ssm_parameter")
    assert nonce["instances"][0]["attributes"]["value_wo"] is None
    assert b"PLACEHOLDER" not in raw


def test_production_uses_its_own_workspace(applied_staging, tmp_path):
    # Staging and production belong in separate AWS accounts (the GitHub OIDC
    # provider exists once per account); moto's single account holds one at a time.
    reset_moto()
    engine = SandboxEngine("production")
    plan = engine.plan(tmp_path)
    assert plan.prior_serial is None  # a new workspace, not staging's state
    assert plan.summary.counts == {"create": STAGING_RESOURCES + 1}  # + the ops email subscription
    engine.apply(plan.plan_file, plan.sha256)
    assert not engine.plan(tmp_path / "again").summary.has_changes
    state_keys = [
        o["Key"] for o in client("s3").list_objects_v2(Bucket=contract.STATE_BUCKET)["Contents"]
    ]
    assert state_keys == ["env/production/infra/terraform.tfstate"]


# -- changes on a copy of the .tf -------------------------------------------------------
@pytest.fixture
def applied_copy(clean_aws, infra, tmp_path):
    engine = SandboxEngine("staging", root=infra.root)
    plan = engine.plan(tmp_path / "first")
    engine.apply(plan.plan_file, plan.sha256)
    return infra


def actions(plan) -> dict[str, str]:
    return {c.address: c.action for c in plan.document.managed_changes() if c.action != "no-op"}


def test_changing_an_attribute_gives_an_update(applied_copy, tmp_path):
    applied_copy.edit(
        "terraform/variables.tf",
        "default     = 10",
        "default     = 20",
        within='variable "throttle_threshold"',
    )
    engine = SandboxEngine("staging", root=applied_copy.root)
    plan = engine.plan(tmp_path)
    changed = actions(plan)
    assert set(changed.values()) == {"update"}
    assert {a for a in changed if a.startswith("aws_cloudwatch_metric_alarm.table_throttle")} == {
        f'aws_cloudwatch_metric_alarm.table_throttle["{a.name}"]'
        for a in contract.ALARMS
        if a.table
    }
    engine.apply(plan.plan_file, plan.sha256)
    alarm = client("cloudwatch").describe_alarms(
        AlarmNames=["mirror-dissonance-staging-consent-read-throttle"]
    )["MetricAlarms"][0]
    assert alarm["Threshold"] == 20


def test_changing_a_hash_key_is_a_destructive_replace(applied_copy, tmp_path):
    applied_copy.edit(
        "terraform/main.tf",
        'hash_key                    = "orgId"',
        'hash_key                    = "tenantId"',
    )
    applied_copy.edit("terraform/main.tf", 'name = "orgId"', 'name = "tenantId"')
    plan = SandboxEngine("staging", root=applied_copy.root).plan(tmp_path)
    change = next(
        c for c in plan.document.resource_changes if c.address == "aws_dynamodb_table.consent"
    )
    assert change.change.actions == ["delete", "create"]
    assert ["hash_key"] in change.change.replace_paths
    assert [d.address for d in plan.summary.destructive] == ["aws_dynamodb_table.consent"]


def test_removing_a_resource_gives_a_delete(applied_copy, tmp_path):
    applied_copy.edit(
        "terraform/main.tf",
        '    "block-counter-write-throttle" = { table = "block_counter", metric = "WriteThrottleEvents" }\n',
        "",
    )
    engine = SandboxEngine("staging", root=applied_copy.root)
    plan = engine.plan(tmp_path)
    removed = 'aws_cloudwatch_metric_alarm.table_throttle["block-counter-write-throttle"]'
    changed = actions(plan)
    assert changed[removed] == "delete"
    assert [a for a, action in changed.items() if action == "delete"] == [removed]
    engine.apply(plan.plan_file, plan.sha256)
    names = [a["AlarmName"] for a in client("cloudwatch").describe_alarms()["MetricAlarms"]]
    assert "mirror-dissonance-staging-block-counter-write-throttle" not in names
    assert len(names) == 7


# -- refusals ------------------------------------------------------------------------------
def test_apply_refuses_wrong_missing_and_tampered(clean_aws, tmp_path):
    engine = SandboxEngine("staging")
    plan = engine.plan(tmp_path)
    before = inventory()
    with pytest.raises(ApplyRefused, match="sha256"):
        engine.apply(plan.plan_file, "0" * 64)
    with pytest.raises(ApplyRefused, match="needs the sha256"):
        engine.apply(plan.plan_file, None)
    path = tmp_path / "staging.tfplan.json"
    path.write_text(path.read_text().replace('"threshold": 10', '"threshold": 1000'))
    with pytest.raises(ApplyRefused, match="changed after review"):
        engine.apply(plan.plan_file, plan.sha256)
    assert engine.state_serial() is None
    assert inventory() == before


def test_apply_refuses_a_stale_plan(clean_aws, tmp_path):
    engine = SandboxEngine("staging")
    stale = engine.plan(tmp_path / "a")
    fresh = engine.plan(tmp_path / "b")
    engine.apply(fresh.plan_file, fresh.sha256)
    serial, before = engine.state_serial(), inventory()
    with pytest.raises(ApplyRefused, match="stale"):
        engine.apply(stale.plan_file, stale.sha256)
    assert engine.state_serial() == serial
    assert inventory() == before


def test_concurrent_applies_one_wins_the_other_names_the_holder(clean_aws, tmp_path):
    first = SandboxEngine("staging", lock_info="rollout A")
    second = SandboxEngine("staging", lock_info="rollout B")
    plan_a, plan_b = first.plan(tmp_path / "a"), second.plan(tmp_path / "b")
    outcome: dict[str, object] = {}

    def run_first():
        outcome["a"] = first.apply(plan_a.plan_file, plan_a.sha256)

    thread = threading.Thread(target=run_first)
    thread.start()
    deadline = time.monotonic() + 30
    while first.store.holder() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(StateLocked) as locked:
        second.apply(plan_b.plan_file, plan_b.sha256)
    thread.join()
    assert "rollout A" in str(locked.value) and "OperationTypeApply" in str(locked.value)
    assert outcome["a"].state_serial == first.state_serial()
    assert not first.plan(tmp_path / "c").summary.has_changes  # state valid afterwards


def test_force_unlock_removes_a_dead_holders_lock(clean_aws, tmp_path):
    import subprocess
    import sys

    engine = SandboxEngine("staging")
    engine.store.ensure_backend()
    held = engine.store.lock("OperationTypeApply", "a run that died")
    lock = held.__enter__()  # never exited: the holder "died"
    with pytest.raises(StateLocked, match="a run that died"):
        engine.plan(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mirror_rollout.cli", "force-unlock", "--env", "staging", lock.ID],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert engine.store.holder() is None
    assert engine.plan(tmp_path).summary.counts == {"create": STAGING_RESOURCES}
