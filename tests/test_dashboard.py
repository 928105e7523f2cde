"""Dashboard: pure checks on dict bodies; the task against staging deployed on the sandbox."""

from __future__ import annotations

import copy
import json
import os

import pytest

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.evidence import ValidationFailed
from mirror_rollout.results import Evidence, Status
from tasks.dashboard.checks import check_dashboard, search_tables
from tasks.dashboard.task import dashboard, verify_dashboard
from tests.applied import shared_staging
from tests.aws_inventory import client
from tests.support.targets import sandbox_target

pytestmark = pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")

ENV = "staging"
NAME = f"{contract.PREFIX}-{ENV}"
TABLES = [spec.name(ENV) for spec in contract.TABLES]
ARNS = {
    s.full_name(ENV): f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{s.full_name(ENV)}"
    for s in contract.ALARMS
}
SOURCE = Evidence(source=f"cloudwatch:GetDashboard us-east-1 {NAME}")
ALARMS_SOURCE = Evidence(source="cloudwatch:DescribeAlarms us-east-1 8 contract alarms")


def metric_widget(*rows) -> dict:
    return {"type": "metric", "properties": {"metrics": [list(r) for r in rows]}}


def body() -> dict:
    search = (
        'SEARCH(\'{AWS/DynamoDB,Operation,TableName} MetricName="SystemErrors" TableName=('
        + " OR ".join(f'"{t}"' for t in TABLES)
        + ")', 'Sum', 300)"
    )
    return {
        "widgets": [
            metric_widget(
                ["AWS/DynamoDB", "ConsumedReadCapacityUnits", "TableName", TABLES[0]],
                [".", ".", ".", TABLES[1]],  # CloudWatch's "." shorthand
                [".", ".", ".", TABLES[2]],
            ),
            metric_widget(
                *(["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", t] for t in TABLES)
            ),
            metric_widget(["AWS/DynamoDB", "UserErrors", {"label": "UserErrors"}]),
            metric_widget([{"id": "e", "expression": search}]),
            metric_widget([f"MirrorDissonance/{ENV}", "SSMParameterFailures"]),
            metric_widget([f"MirrorDissonance/{ENV}", "CircuitBreakerTriggers"]),
            {"type": "alarm", "properties": {"alarms": list(ARNS.values())}},
        ]
    }


def check(b, arns=None):
    return check_dashboard(ENV, b, ARNS if arns is None else arns, SOURCE, ALARMS_SOURCE)


def failures(results) -> dict[str, str]:
    return {r.check_id: r.message for r in results if r.status is Status.FAIL}


# -- pure --------------------------------------------------------------------------------------
def test_complete_body_passes():
    results = check(body())
    assert [r.check_id for r in results] == [f"DASH-00{i}" for i in range(1, 7)]
    assert failures(results) == {}
    assert all(r.evidence for r in results)


def test_search_tables():
    assert search_tables(body()) == {"SystemErrors": set(TABLES)}


def test_missing_dashboard():
    results = check(None)
    assert [(r.check_id, r.status, r.message) for r in results] == [
        ("DASH-001", Status.FAIL, f"{NAME}: dashboard does not exist")
    ]


def test_missing_capacity_row_is_named():
    b = body()
    del b["widgets"][1]["properties"]["metrics"][1]
    assert failures(check(b)) == {
        "DASH-002": f"{NAME}: no ConsumedWriteCapacityUnits metric for {TABLES[1]}"
    }


def test_missing_custom_metric_widget_is_named():
    b = body()
    del b["widgets"][4]
    assert failures(check(b)) == {
        "DASH-004": f"{NAME}: no MirrorDissonance/{ENV} SSMParameterFailures metric"
    }


def test_errors():
    b = body()
    del b["widgets"][2]
    b["widgets"][2]["properties"]["metrics"][0][0]["expression"] = b["widgets"][2]["properties"][
        "metrics"
    ][0][0]["expression"].replace(f' OR "{TABLES[2]}"', "")
    assert failures(check(b)) == {
        "DASH-003": f"{NAME}: no AWS/DynamoDB UserErrors metric; "
        f"SystemErrors does not select {TABLES[2]}"
    }


def test_wrong_table_is_named():
    b = body()
    other = contract.name("production", "consent")
    b["widgets"][0]["properties"]["metrics"][1][3] = other
    found = failures(check(b))
    assert found["DASH-006"] == (
        f"{NAME}: metric names table {other}, not one of {', '.join(TABLES)}"
    )
    assert found["DASH-002"] == f"{NAME}: no ConsumedReadCapacityUnits metric for {TABLES[1]}"


def test_alarm_widget():
    first, *rest = ARNS
    b = body()
    b["widgets"][-1]["properties"]["alarms"] = [ARNS[n] for n in rest] + ["arn:stale"]
    assert failures(check(b)) == {
        "DASH-005": f"{NAME}: alarm-status widget does not list {first}; "
        "alarm-status widget lists arn:stale, not a contract alarm"
    }
    del b["widgets"][-1]
    assert failures(check(b)) == {"DASH-005": f"{NAME}: no alarm-status widget"}
    missing = {n: a for n, a in ARNS.items() if n != first}
    assert failures(check(body(), missing)) == {
        "DASH-005": f"{NAME}: alarm {first} does not exist (DescribeAlarms); "
        f"alarm-status widget lists {ARNS[first]}, not a contract alarm"
    }


# -- against the sandbox --------------------------------------------------------------------
@pytest.fixture(scope="module")
def staging(prefect_api, tmp_path_factory):
    return shared_staging(tmp_path_factory.mktemp("plan")).outputs


@pytest.fixture
def deployed_body(staging):
    """The deployed body; whatever a test puts instead is put back afterwards."""
    cw = client("cloudwatch")
    original = cw.get_dashboard(DashboardName=NAME)["DashboardBody"]
    yield json.loads(original)
    cw.put_dashboard(DashboardName=NAME, DashboardBody=original)


def region() -> str:
    return os.environ["AWS_REGION"]


def test_clean_deployment_passes_with_two_calls(staging):
    assert staging["dashboard_name"] == NAME
    clients = AwsClients(region())
    results = verify_dashboard(clients, ENV)
    assert [(r.check_id, r.status) for r in results] == [
        (f"DASH-00{i}", Status.PASS) for i in range(1, 7)
    ]
    assert clients.calls == {"cloudwatch.GetDashboard": 1, "cloudwatch.DescribeAlarms": 1}
    assert results[-1].evidence[-1].observed["api_calls"] == 2
    alarm_widget = next(r for r in results if r.check_id == "DASH-005")
    described = client("cloudwatch").describe_alarms(AlarmNamePrefix=NAME)["MetricAlarms"]
    assert sorted(alarm_widget.evidence[0].observed["alarm_widget_arns"]) == sorted(
        a["AlarmArn"] for a in described
    )
    assert [r.status for r in dashboard.fn(sandbox_target(ENV, region()))] == [Status.PASS] * 6


def test_a_removed_widget_fails_naming_what_is_missing(deployed_body):
    b = copy.deepcopy(deployed_body)
    b["widgets"] = [w for w in b["widgets"] if "Circuit breaker" not in w["properties"]["title"]]
    client("cloudwatch").put_dashboard(DashboardName=NAME, DashboardBody=json.dumps(b))
    with pytest.raises(ValidationFailed, match="CircuitBreakerTriggers"):
        dashboard.fn(sandbox_target(ENV, region()))
    assert failures(verify_dashboard(AwsClients(region()), ENV)) == {
        "DASH-004": f"{NAME}: no MirrorDissonance/{ENV} CircuitBreakerTriggers metric"
    }


def test_a_removed_alarm_widget_fails(deployed_body):
    b = copy.deepcopy(deployed_body)
    b["widgets"] = [w for w in b["widgets"] if w["type"] != "alarm"]
    client("cloudwatch").put_dashboard(DashboardName=NAME, DashboardBody=json.dumps(b))
    assert failures(verify_dashboard(AwsClients(region()), ENV)) == {
        "DASH-005": f"{NAME}: no alarm-status widget"
    }


def test_artifact_published_inside_a_flow_run(staging, prefect_api):
    from prefect import flow

    from tests.rollout_run import artifacts_of

    @flow(name="dashboard-test")
    def run():
        return dashboard(sandbox_target(ENV, region()))

    state = run(return_state=True)
    assert state.is_completed()
    artifact = artifacts_of(str(state.state_details.flow_run_id))["staging-dashboard"]
    assert "DASH-005" in artifact and "FAIL" not in artifact


# Destructive: keep last in this module.
def test_a_deleted_dashboard_fails(staging):
    client("cloudwatch").delete_dashboards(DashboardNames=[NAME])
    with pytest.raises(ValidationFailed, match="dashboard does not exist"):
        dashboard.fn(sandbox_target(ENV, region()))
