"""Drift detection: pure diff and normalisation; baseline and flow against sandbox staging."""

from __future__ import annotations

import json
import os
import time

import pytest

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.results import Evidence, Status
from tasks.drift.baseline import LATEST_KEY, BaselineMissing, load_baseline, run_key
from tasks.drift.compare import ABSENT, MISSING, PRESENT, RESOURCE, Drift, diff, to_check_results
from tasks.drift.snapshot import (
    alarm_attributes,
    bucket_attributes,
    bucket_name,
    capture,
    expected_resources,
    table_attributes,
    trust_attributes,
)
from tasks.drift.task import compare_live, record_baseline
from tests.applied import shared_staging
from tests.aws_inventory import client
from tests.support.targets import sandbox_target

# ``.fn`` calls publish their artifact outside a run, which Prefect 3 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")

ENV = "staging"
CONSENT = f"dynamodb_table:{contract.name(ENV, 'consent')}"
ALARM = contract.ALARMS[2]  # consent-read-throttle
ALARM_KEY = f"cloudwatch_alarm:{ALARM.full_name(ENV)}"
BUCKET = f"s3_bucket:{bucket_name(ENV)}"
KEY = f"kms_key:alias/mirror-dissonance-{ENV}"
#: 3 tables x 3 + KMS 2 + alarms 1 + bucket 3 + role 1 + topic 1.
SNAPSHOT_CALLS = 17


# -- pure ------------------------------------------------------------------------------------
BASE = {
    "a:1": {"x": 1, "y": {"k": "v"}, "z": [1, 2]},
    "b:2": {"x": True},
}


def test_diff_of_equal_snapshots_is_empty():
    assert diff(BASE, {k: dict(v) for k, v in BASE.items()}) == []
    assert diff({}, {}) == []


def test_diff_names_resource_and_attribute():
    live = {"a:1": {"x": 2, "y": {"k": "w"}, "z": [1, 2]}, "b:2": {"x": True}}
    assert diff(BASE, live) == [
        Drift(resource="a:1", attribute="x", expected=1, actual=2),
        Drift(resource="a:1", attribute="y", expected={"k": "v"}, actual={"k": "w"}),
    ]


def test_diff_reports_resources_and_attributes_missing_on_either_side():
    live = {"a:1": {"x": 1, "y": {"k": "v"}, "new": 3}, "c:3": {"x": 1}}
    assert diff(BASE, live) == [
        Drift(resource="a:1", attribute="new", expected=ABSENT, actual=3),
        Drift(resource="a:1", attribute="z", expected=[1, 2], actual=ABSENT),
        Drift(resource="b:2", attribute=RESOURCE, expected=PRESENT, actual=MISSING),
        Drift(resource="c:3", attribute=RESOURCE, expected=MISSING, actual=PRESENT),
    ]


def test_check_results_one_fail_per_drift_or_one_pass():
    evidence = [Evidence(source="s3:GetObject s3://b/drift/baseline.json")]
    passed = to_check_results([], evidence)
    assert [(r.check_id, r.status) for r in passed] == [("DRIFT-001", Status.PASS)]
    assert passed[0].evidence == evidence
    drifts = diff(BASE, {"a:1": {"x": 2, "y": {"k": "v"}, "z": [1, 2]}})
    failed = to_check_results(drifts, evidence)
    assert [(r.check_id, r.status, r.subject) for r in failed] == [
        ("DRIFT-001", Status.FAIL, "a:1"),
        ("DRIFT-002", Status.FAIL, "b:2"),
    ]
    assert failed[0].message == "x: expected 1, actual 2"
    assert failed[1].message == "(resource): expected present, actual missing"
    assert failed[0].evidence[-1].observed == {
        "resource": "a:1",
        "attribute": "x",
        "expected": 1,
        "actual": 2,
    }


def test_trust_policy_conditions_are_parsed_from_encoded_text():
    encoded = (
        "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow"
        "%22%2C%22Principal%22%3A%7B%22Federated%22%3A%22arn%3Aaws%3Aiam%3A%3A1%3Aoidc%22%7D%2C"
        "%22Action%22%3A%22sts%3AAssumeRoleWithWebIdentity%22%2C%22Condition%22%3A%7B"
        "%22StringEquals%22%3A%7B%22token.actions.githubusercontent.com%3Aaud%22%3A"
        "%22sts.amazonaws.com%22%7D%2C%22StringLike%22%3A%7B"
        "%22token.actions.githubusercontent.com%3Asub%22%3A%5B%22repo%3Ao%2Fr%3A*%22%5D"
        "%7D%7D%7D%5D%7D"
    )
    assert trust_attributes(encoded) == {
        "trust_sub": {"StringLike": ["repo:o/r:*"]},
        "trust_aud": {"StringEquals": ["sts.amazonaws.com"]},
        "trust_federated_principals": ["arn:aws:iam::1:oidc"],
    }
    # Deny statements and other actions do not count.
    deny = {"Statement": [{"Effect": "Deny", "Action": "sts:AssumeRoleWithWebIdentity"}]}
    assert trust_attributes(deny)["trust_sub"] == {}


def test_bucket_without_configurations_reads_as_unprotected():
    attrs = bucket_attributes({}, None, None)
    assert attrs["versioning"] == "Disabled" and attrs["sse_algorithm"] is None
    assert attrs["public_access_block.BlockPublicAcls"] is False


def test_table_and_alarm_normalisation():
    table = {
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "SSEDescription": {"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": "arn:k"},
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
    }
    attrs = table_attributes(table, {}, {"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED"}})
    assert attrs["key_schema"] == {"HASH": "pk", "RANGE": "sk"}
    assert attrs["pitr"] is None and attrs["ttl"] == {"status": "ENABLED", "attribute": None}
    assert table_attributes({}, {}, {})["billing_mode"] == "PROVISIONED"
    alarm = alarm_attributes(
        {
            "Threshold": 10,
            "Dimensions": [{"Name": "TableName", "Value": "t"}],
            "AlarmActions": ["b", "a"],
        }
    )
    assert alarm["threshold"] == 10.0 and alarm["alarm_actions"] == ["a", "b"]
    assert alarm["dimensions"] == {"TableName": "t"}


# -- against the sandbox --------------------------------------------------------------------
def region() -> str:
    return os.environ["AWS_REGION"]


@pytest.fixture(scope="module")
def staging(prefect_api, tmp_path_factory):
    """Staging applied by the sandbox engine and its baseline recorded, as a rollout leaves it."""
    applied = shared_staging(tmp_path_factory.mktemp("plan"))
    stored = record_baseline.fn(sandbox_target(ENV, region()))
    return applied, stored


def test_baseline_is_stored_encrypted_with_the_cmk(staging):
    applied, stored = staging
    assert stored["resources"] == len(expected_resources(ENV)) == 15
    assert stored["missing"] == []
    assert stored["api_calls"] == SNAPSHOT_CALLS + 2  # + the two PutObject
    s3 = client("s3")
    for key in (LATEST_KEY, run_key(stored["run_id"])):
        head = s3.head_object(Bucket=bucket_name(ENV), Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] in {
            f"alias/mirror-dissonance-{ENV}",
            applied.outputs["kms_key_arn"],
        }
    document = load_baseline(ENV, region())
    assert document["run_id"] == stored["run_id"]
    assert set(document["resources"]) == set(expected_resources(ENV))


def test_snapshot_holds_the_contract(staging):
    applied, _ = staging
    clients = AwsClients(region())
    live = capture(clients, ENV)
    assert sum(clients.calls.values()) == SNAPSHOT_CALLS
    key_arn = applied.outputs["kms_key_arn"]
    assert live[CONSENT]["pitr"] == "ENABLED"
    assert live[CONSENT]["sse_kms_key"] == key_arn
    assert live[CONSENT]["billing_mode"] == "PAY_PER_REQUEST"
    assert live[CONSENT]["key_schema"] == {"HASH": "pk", "RANGE": "sk"}
    assert live[KEY]["rotation_enabled"] is True and live[KEY]["key_state"] == "Enabled"
    assert live[ALARM_KEY]["threshold"] == 10.0
    assert live[ALARM_KEY]["alarm_actions"] == [applied.outputs["sns_topic_arn"]]
    assert live[BUCKET]["sse_algorithm"] == "aws:kms"
    assert all(v is True for k, v in live[BUCKET].items() if k.startswith("public_access_block"))
    role = live[f"iam_role:{contract.name(ENV, 'github-deploy')}"]
    assert role["trust_aud"] == {"StringEquals": ["sts.amazonaws.com"]}
    assert len(role["trust_sub"]["StringLike"]) == 1
    assert role["trust_sub"]["StringLike"][0].startswith("repo:")
    assert live[f"sns_topic:{contract.name(ENV, 'ops-alerts')}"]["kms_master_key_id"] == key_arn


def test_ten_consecutive_runs_on_a_clean_environment_report_no_drift(staging):
    seconds = []
    for _ in range(10):
        started = time.monotonic()
        report = compare_live(AwsClients(region()), ENV)
        seconds.append(time.monotonic() - started)
        assert report.drifts == []
        assert [r.status for r in report.results] == [Status.PASS]
        assert report.api_calls == SNAPSHOT_CALLS + 1  # + GetObject of the baseline
    print(f"\ncompare_live: max {max(seconds):.3f} s, mean {sum(seconds) / 10:.3f} s")


def test_consecutive_drift_flow_runs_on_a_clean_environment_pass(staging, tmp_path):
    """Two whole flow runs (each a real Terraform re-plan); compare_live alone runs ten above."""
    from flows.drift import drift_detection

    seconds = []
    for _ in range(2):
        started = time.monotonic()
        state = drift_detection(environment=ENV, return_state=True, out_dir=str(tmp_path))
        seconds.append(time.monotonic() - started)
        assert state.is_completed(), state.message
        summary = state.result()
        assert summary["verdict"] == "PASS" and summary["drifts"] == []
        assert summary["replan"] == "PASS"
    print(
        f"\ndrift-detection flow (clean): max {max(seconds):.2f} s, mean {sum(seconds) / 2:.2f} s"
    )


# Each injection changes one setting out of band and returns how to restore it.
def pitr_off():
    ddb = client("dynamodb")
    table = contract.name(ENV, "consent")

    def set_pitr(on: bool) -> None:
        ddb.update_continuous_backups(
            TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": on}
        )

    set_pitr(False)
    return CONSENT, "pitr", "ENABLED", "DISABLED", lambda: set_pitr(True)


PUT_ALARM_FIELDS = (
    "AlarmName",
    "AlarmDescription",
    "ActionsEnabled",
    "OKActions",
    "AlarmActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "Dimensions",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
)


def alarm_threshold_changed():
    cw = client("cloudwatch")
    alarm = cw.describe_alarms(AlarmNames=[ALARM.full_name(ENV)])["MetricAlarms"][0]
    original = {k: alarm[k] for k in PUT_ALARM_FIELDS if k in alarm}
    cw.put_metric_alarm(**(original | {"Threshold": 99.0}))
    return ALARM_KEY, "threshold", 10.0, 99.0, lambda: cw.put_metric_alarm(**original)


def public_access_block_removed():
    s3 = client("s3")
    flags = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }

    def put(config):
        s3.put_public_access_block(Bucket=bucket_name(ENV), PublicAccessBlockConfiguration=config)

    put(flags | {"BlockPublicPolicy": False})
    attribute = "public_access_block.BlockPublicPolicy"
    return BUCKET, attribute, True, False, lambda: put(flags)


def key_rotation_off():
    kms = client("kms")
    key = kms.describe_key(KeyId=f"alias/mirror-dissonance-{ENV}")["KeyMetadata"]["Arn"]
    kms.disable_key_rotation(KeyId=key)
    return KEY, "rotation_enabled", True, False, lambda: kms.enable_key_rotation(KeyId=key)


INJECTIONS = [pitr_off, alarm_threshold_changed, public_access_block_removed, key_rotation_off]


@pytest.mark.parametrize("inject", INJECTIONS, ids=lambda f: f.__name__)
def test_out_of_band_change_is_named_and_fails(staging, inject):
    resource, attribute, expected, actual, restore = inject()
    try:
        report = compare_live(AwsClients(region()), ENV)
    finally:
        restore()
    assert report.drifts == [
        Drift(resource=resource, attribute=attribute, expected=expected, actual=actual)
    ]
    [result] = report.results
    assert result.status is Status.FAIL and result.check_id == "DRIFT-001"
    assert result.subject == resource and result.message.startswith(f"{attribute}: expected")
    # Restored: clean again.
    assert compare_live(AwsClients(region()), ENV).drifts == []


def test_the_flow_fails_naming_the_drift(staging, tmp_path):
    from prefect.artifacts import Artifact

    from flows.drift import drift_detection

    resource, attribute, *_, restore = key_rotation_off()
    try:
        started = time.monotonic()
        state = drift_detection(environment=ENV, return_state=True, out_dir=str(tmp_path))
        print(f"\ndrift-detection flow (drifted): {time.monotonic() - started:.2f} s")
    finally:
        restore()
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert resource in str(error) and attribute in str(error)
    rows = Artifact.get(f"{ENV}-drift").data
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert any(
        row["resource"] == resource and row["attribute"] == attribute and row["status"] == "FAIL"
        for row in rows
    )


def test_missing_baseline_gives_the_clear_error(staging, tmp_path):
    from flows.drift import drift_detection

    s3 = client("s3")
    s3.delete_object(Bucket=bucket_name(ENV), Key=LATEST_KEY)  # a delete marker (versioned)
    try:
        with pytest.raises(BaselineMissing, match="run a rollout of staging first"):
            load_baseline(ENV, region())
        state = drift_detection(environment=ENV, return_state=True, out_dir=str(tmp_path))
        assert state.is_failed()
        assert "run a rollout of staging first" in str(state.result(raise_on_failure=False))
    finally:
        record_baseline.fn(sandbox_target(ENV, region()))
    with pytest.raises(BaselineMissing, match="bucket does not exist"):
        load_baseline("production", region())


def test_a_non_empty_replan_is_a_finding_not_a_crash(staging, infra, tmp_path):
    from flows.drift import drift_detection

    # The code moved on without a rollout: the re-plan updates the six throttle alarms.
    infra.edit(
        "terraform/variables.tf",
        "default     = 10",
        "default     = 20",
        within='variable "throttle_threshold"',
    )
    state = drift_detection(
        environment=ENV, return_state=True, root=str(infra.root), out_dir=str(tmp_path)
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    [replan, compared] = error.results
    assert replan.check_id == "DRIFT-000" and replan.status is Status.FAIL
    assert "table_throttle" in replan.message
    # The live comparison still ran: the environment itself matches its baseline.
    assert compared.check_id == "DRIFT-001" and compared.status is Status.PASS
