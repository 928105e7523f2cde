"""Stage app-integration: a Node suite (tests/fixtures/oracle-suite, built-ins only) run as the
Oracle's integration suite against staging applied on moto: it passes on the environment,
fails on one whose consent table has the wrong key, and a missing command or no configuration
are reported as such."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from mirror_rollout import contract
from mirror_rollout.evidence import ValidationFailed
from mirror_rollout.results import Status
from tasks.app_integration.checks import judge, read_junit, suite_environment
from tests.applied import shared_staging
from tests.aws_inventory import client
from tests.support.targets import sandbox_target

ENV = "staging"
REGION = "us-east-1"
SUITE = Path(__file__).parent / "fixtures" / "oracle-suite"
COMMAND = (
    "node --test --test-reporter=junit "
    "--test-reporter-destination=$MIRROR_ROLLOUT_REPORT_DIR/junit.xml"
)
pytestmark = pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH")

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testcase name="ok" classname="test"/>
  <testcase name="consent" classname="test">
    <failure type="testCodeFailure" message="PutItem on t: ValidationException: key">
    stack</failure>
  </testcase>
  <testcase name="later" classname="test"><skipped/></testcase>
</testsuites>"""


# -- pure ------------------------------------------------------------------------------------
def test_the_suite_is_told_the_names_from_terraform_outputs():
    outputs = {
        "fp_events_table_name": "fp",
        "consent_table_name": "c",
        "block_counter_table_name": "b",
        "nonce_parameter_name": "/guardian/staging/redaction_nonce_v",
        "baselines_bucket_name": "bucket",
        "kms_key_arn": "arn:k",
    }
    assert suite_environment(outputs, "eu-west-1", "http://127.0.0.1:5000") == {
        "FP_TABLE_NAME": "fp",
        "CONSENT_TABLE_NAME": "c",
        "BLOCK_COUNTER_TABLE_NAME": "b",
        "NONCE_PARAMETER_NAME": "/guardian/staging/redaction_nonce_v",
        "BASELINE_BUCKET": "bucket",
        "CLOUD_PROVIDER": "aws",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    }


def test_junit_counts_and_first_failures_are_the_evidence():
    junit = read_junit({"r/junit.xml": JUNIT, "r/broken.xml": "<testsuites"})
    assert (junit.tests, junit.failures, junit.skipped) == (3, 2, 1)
    assert junit.first_failures[0].startswith("r/broken.xml is not valid JUnit XML")
    assert junit.first_failures[1] == "consent: PutItem on t: ValidationException: key"
    result = judge("npm test", 1, 2.0, junit, [], {"AWS_REGION": "us-east-1"})
    assert result.status is Status.FAIL
    assert result.message.startswith("`npm test` exited 1: 0 passed, 2 failed, 1 skipped")
    passing = re.sub(r"<failure.*?</failure>", "", JUNIT, flags=re.S)
    ok = judge("npm test", 0, 2.0, read_junit({"j.xml": passing}), [], {})
    assert ok.status is Status.PASS and "2 passed, 0 failed, 1 skipped" in ok.message


# -- against staging on moto -----------------------------------------------------------------
@pytest.fixture(scope="module")
def outputs(sandbox, prefect_api, tmp_path_factory):
    return shared_staging(tmp_path_factory.mktemp("appint-plan")).outputs


def run(outputs, tmp_path, **options):
    from tasks.app_integration.task import app_integration

    return app_integration.fn(sandbox_target(ENV, REGION), outputs, str(tmp_path), **options)


@needs_node
def test_the_suite_passes_against_the_environment(outputs, tmp_path):
    (result,) = run(outputs, tmp_path, oracle_repo=str(SUITE), oracle_test_command=COMMAND)
    assert result.status is Status.PASS, result.message
    observed = result.evidence[0].observed
    assert (observed["tests"], observed["failures"], observed["exit_code"]) == (4, 0, 0)
    assert observed["junit"] == [str(tmp_path / "app-integration" / "junit.xml")]
    assert observed["environment"]["CONSENT_TABLE_NAME"] == contract.name(ENV, "consent")
    assert observed["environment"]["BASELINE_BUCKET"] == outputs["baselines_bucket_name"]
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    assert secret and secret not in result.model_dump_json()
    # every test removed what it wrote
    for spec in contract.TABLES:
        items = client("dynamodb").scan(TableName=spec.name(ENV))["Items"]
        assert not [i for i in items if "suite" in repr(i).lower()], spec.key


@needs_node
def test_the_suite_fails_against_a_consent_table_with_the_wrong_key(outputs, tmp_path):
    broken = contract.name(ENV, "consent-orgid")
    client("dynamodb").create_table(
        TableName=broken,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "orgId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "orgId", "KeyType": "HASH"}],
    )
    try:
        with pytest.raises(ValidationFailed) as failed:
            run(
                outputs | {"consent_table_name": broken},
                tmp_path,
                oracle_repo=str(SUITE),
                oracle_test_command=COMMAND,
            )
    finally:
        client("dynamodb").delete_table(TableName=broken)
    (result,) = failed.value.results
    assert result.status is Status.FAIL
    assert "3 passed, 1 failed, 0 skipped" in result.message
    assert "consent adapter: record under org#sha256(orgId), read back: " in result.message
    assert f"PutItem on {broken}: ValidationException" in result.message


def test_a_missing_command_is_one_clear_failure(outputs, tmp_path):
    with pytest.raises(ValidationFailed) as failed:
        run(
            outputs,
            tmp_path,
            oracle_repo=str(SUITE),
            oracle_test_command="no-such-oracle-runner --all",
        )
    (result,) = failed.value.results
    assert result.message == (
        "oracle_test_command: `no-such-oracle-runner` is not found on PATH — "
        "install it on the worker or fix oracle_test_command"
    )
    assert not (tmp_path / "app-integration").exists()  # nothing was run


def test_nothing_configured_is_skipped_with_its_reason(outputs, tmp_path):
    (result,) = run(outputs, tmp_path)
    assert result.status is Status.SKIPPED
    assert result.message.startswith("no Oracle checkout configured: set the flow parameters")


@needs_node
def test_prefect_variables_configure_the_stage(outputs, tmp_path):
    from prefect.variables import Variable

    Variable.set("oracle_repo", str(SUITE), overwrite=True)
    Variable.set("oracle_test_command", COMMAND, overwrite=True)
    try:
        (result,) = run(outputs, tmp_path)
    finally:
        Variable.unset("oracle_repo")
        Variable.unset("oracle_test_command")
    assert result.status is Status.PASS, result.message
