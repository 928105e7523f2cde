"""PITR: pure decisions on dict fixtures; the task against staging deployed on the sandbox's moto."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.evidence import ValidationFailed
from mirror_rollout.results import Evidence, Status
from tasks.pitr.checks import (
    ENABLED_BY_ROLLOUT,
    TableProbe,
    backoff_delays,
    judge,
    next_action,
    pitr_description,
)
from tasks.pitr.task import pitr, verify_pitr
from tests.applied import shared_staging
from tests.aws_inventory import client
from tests.support.targets import sandbox_target

DESCRIBE = "dynamodb.DescribeContinuousBackups"
UPDATE = "dynamodb.UpdateContinuousBackups"
# ``.fn`` calls publish their artifact outside a run, which Prefect 3 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")

TABLES = [spec.name("staging") for spec in contract.TABLES]


def response(status: str, earliest: datetime | None = None) -> dict:
    pitr_description = {"PointInTimeRecoveryStatus": status}
    if earliest:
        pitr_description |= {"EarliestRestorableDateTime": earliest, "RecoveryPeriodInDays": 35}
    return {
        "ContinuousBackupsDescription": {
            "ContinuousBackupsStatus": "ENABLED",
            "PointInTimeRecoveryDescription": pitr_description,
        }
    }


T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


# -- pure ------------------------------------------------------------------------------------
def test_description_is_json_ready():
    desc = pitr_description(response("ENABLED", T0))
    assert desc["PointInTimeRecoveryStatus"] == "ENABLED"
    assert desc["EarliestRestorableDateTime"] == "2026-11-27T12:00:00+00:00"
    assert pitr_description({})["PointInTimeRecoveryStatus"] is None


@pytest.mark.parametrize(
    ("status", "earliest", "action"),
    [
        ("ENABLED", T0, "done"),
        ("ENABLED", None, "wait"),  # on, but no restore window yet
        ("ENABLING", None, "wait"),
        ("DISABLED", None, "enable"),
        (None, None, "wait"),
    ],
)
def test_next_action(status, earliest, action):
    assert next_action(pitr_description(response(status, earliest))) == action


def test_backoff_is_exponential_and_capped():
    assert backoff_delays(6, 1.0, 5.0) == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff_delays(1, 1.0, 5.0) == []


def test_judge():
    read = Evidence(source="dynamodb:DescribeContinuousBackups t")
    ok = TableProbe("t", reads=[read], last=pitr_description(response("ENABLED", T0)))
    assert judge(ok, 1).status is Status.PASS and judge(ok, 1).evidence == [read]

    enabled = TableProbe(
        "t",
        reads=[read],
        enables=[Evidence(source="u", observed={"action": ENABLED_BY_ROLLOUT})],
        last=pitr_description(response("ENABLED", T0)),
    )
    assert judge(enabled, 2).status is Status.PASS
    assert ENABLED_BY_ROLLOUT in judge(enabled, 2).message

    stuck = TableProbe("t", reads=[read], last=pitr_description(response("ENABLING")))
    assert judge(stuck, 8).status is Status.FAIL
    assert judge(stuck, 8).message == "t: PITR is ENABLING after 8 attempt(s)"

    missing = TableProbe("gone", missing=Evidence(source="x", observed={"error": "nf"}))
    assert judge(missing, 1).status is Status.FAIL
    assert judge(missing, 1).message == "table gone does not exist"


# -- against the sandbox --------------------------------------------------------------------
@pytest.fixture(scope="module")
def staging(prefect_api, tmp_path_factory):
    """Staging applied on the sandbox; Prefect at the sandbox server (artifacts of ``.fn`` calls)."""
    return shared_staging(tmp_path_factory.mktemp("plan"))


def region() -> str:
    return os.environ["AWS_REGION"]


def enabling(clients: AwsClients, table: str, times: int) -> None:
    """Make ``table`` read as ENABLING for its next ``times`` describes (botocore event hooks)."""
    left = {"n": times}
    events = clients.client("dynamodb").meta.events

    def remember(params, context, **_):
        context["table"] = params.get("TableName")

    def rewrite(parsed, context, **_):
        if context.get("table") == table and left["n"] > 0:
            left["n"] -= 1
            parsed["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"] = {
                "PointInTimeRecoveryStatus": "ENABLING"
            }

    events.register("before-parameter-build.dynamodb.DescribeContinuousBackups", remember)
    events.register("after-call.dynamodb.DescribeContinuousBackups", rewrite)


def test_clean_deployment_passes_with_one_describe_per_table(staging):
    results = pitr.fn(sandbox_target("staging", region()))
    assert [r.status for r in results] == [Status.PASS] * 3
    assert [r.subject for r in results] == TABLES
    assert all(r.check_id == "PITR-001" and r.evidence for r in results)
    assert all(ENABLED_BY_ROLLOUT not in r.message for r in results)
    calls = results[-1].evidence[-1].observed
    assert calls["api_calls_by_operation"] == {DESCRIBE: 3}
    assert calls["attempts"] == 1


def test_disabled_out_of_band_is_enabled_and_reported(staging):
    consent = contract.name("staging", "consent")
    client("dynamodb").update_continuous_backups(
        TableName=consent, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False}
    )
    clients, sleeps = AwsClients(region()), []
    results = {r.subject: r for r in verify_pitr(clients, "staging", sleep=sleeps.append)}
    assert all(r.status is Status.PASS for r in results.values())
    assert ENABLED_BY_ROLLOUT in results[consent].message
    enabled = [e for e in results[consent].evidence if e.source.startswith("dynamodb:Update")]
    assert enabled[0].observed["action"] == ENABLED_BY_ROLLOUT
    assert enabled[0].observed["previous"] == "DISABLED"
    assert all(ENABLED_BY_ROLLOUT not in r.message for s, r in results.items() if s != consent)
    # attempt 1: 3 describes + 1 enable; attempt 2: 1 describe of consent only
    assert clients.calls == {DESCRIBE: 4, UPDATE: 1}
    assert sleeps == [2.0]
    status = client("dynamodb").describe_continuous_backups(TableName=consent)
    assert (
        status["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
            "PointInTimeRecoveryStatus"
        ]
        == "ENABLED"
    )


def test_enabling_is_retried_with_backoff_one_describe_per_table_per_attempt(staging):
    fp_events = contract.name("staging", "fp-events")
    clients, sleeps = AwsClients(region()), []
    enabling(clients, fp_events, times=2)
    results = verify_pitr(clients, "staging", backoff_seconds=0.5, sleep=sleeps.append)
    assert all(r.status is Status.PASS for r in results)
    assert sleeps == [0.5, 1.0]  # three attempts
    assert clients.calls == {DESCRIBE: 3 + 1 + 1}
    reads = [e.observed for e in results[0].evidence if e.source.startswith("dynamodb:Describe")]
    assert [(r["attempt"], r["PointInTimeRecoveryStatus"]) for r in reads] == [
        (1, "ENABLING"),
        (2, "ENABLING"),
        (3, "ENABLED"),
    ]


def test_a_table_stuck_enabling_fails_after_the_bounded_attempts(staging):
    consent = contract.name("staging", "consent")
    clients, sleeps = AwsClients(region()), []
    enabling(clients, consent, times=100)
    results = {
        r.subject: r
        for r in verify_pitr(
            clients,
            "staging",
            max_attempts=4,
            backoff_seconds=1,
            max_backoff_seconds=3,
            sleep=sleeps.append,
        )
    }
    assert results[consent].status is Status.FAIL
    assert results[consent].message == f"{consent}: PITR is ENABLING after 4 attempt(s)"
    assert sleeps == [1, 2, 3]
    assert clients.calls == {DESCRIBE: 3 + 3}


def test_artifact_published_inside_a_flow_run(staging, prefect_api):
    from prefect import flow

    from tests.rollout_run import artifacts_of

    @flow(name="pitr-test")
    def check():
        return pitr(sandbox_target("staging", region()))

    state = check(return_state=True)
    assert state.is_completed()
    artifacts = artifacts_of(str(state.state_details.flow_run_id))
    assert "PITR-001" in artifacts["staging-pitr"] and "PASS" in artifacts["staging-pitr"]


# Destructive: keep last in this module (the fixture's deployment is not restored).
def test_missing_table_fails_naming_it(staging):
    block_counter = contract.name("staging", "block-counter")
    client("dynamodb").delete_table(TableName=block_counter)
    with pytest.raises(ValidationFailed, match=f"table {block_counter} does not exist"):
        pitr.fn(sandbox_target("staging", region()))
    clients = AwsClients(region())
    results = {r.subject: r for r in verify_pitr(clients, "staging", sleep=lambda _: None)}
    assert results[block_counter].status is Status.FAIL
    assert [r.status for s, r in results.items() if s != block_counter] == [Status.PASS] * 2
    assert clients.calls == {DESCRIBE: 3}
