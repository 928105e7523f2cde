"""Prefect glue for the dashboard check: GetDashboard + the alarms' ARNs, then pure checks."""

from __future__ import annotations

import json

from prefect import task

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.evidence import publish, raise_if_blocking
from mirror_rollout.results import CheckResult, Evidence
from mirror_rollout.retries import error_code
from mirror_rollout.target import RolloutTarget
from tasks.common import calls_observed
from tasks.dashboard.checks import check_dashboard, dashboard_name


def verify_dashboard(clients: AwsClients, environment: str) -> list[CheckResult]:
    cw = clients.client("cloudwatch")
    region = clients.region
    name = dashboard_name(environment)
    source = Evidence(source=f"cloudwatch:GetDashboard {region} {name}")
    body = None
    try:
        response = cw.get_dashboard(DashboardName=name)
    except Exception as exc:
        if error_code(exc) not in ("ResourceNotFound", "ResourceNotFoundException"):
            raise
        source.observed = {"error": error_code(exc)}
    else:
        try:
            body = json.loads(response.get("DashboardBody") or "{}")
        except ValueError:
            body = {"widgets": []}
            source.observed = {"error": "DashboardBody is not JSON"}
    names = [spec.full_name(environment) for spec in contract.ALARMS]
    described = cw.describe_alarms(AlarmNames=names).get("MetricAlarms", [])
    alarms_source = Evidence(
        source=f"cloudwatch:DescribeAlarms {region} {len(names)} contract alarms"
    )
    results = check_dashboard(
        environment,
        body,
        {a["AlarmName"]: a["AlarmArn"] for a in described},
        source,
        alarms_source,
    )
    results[-1].evidence.append(
        Evidence(source=f"mirror-rollout AwsClients {region}", observed=calls_observed(clients))
    )
    return results


@task(name="dashboard", task_run_name="dashboard-{target.environment}")
def dashboard(target: RolloutTarget) -> list[CheckResult]:
    """The dashboard covers the contract's metrics and the 8 alarms; artifact ``{env}-dashboard``."""
    environment, backend = target.environment, target.backend
    results = verify_dashboard(AwsClients.of(target), environment)
    publish(f"{environment}-dashboard", results, f"Dashboard of {environment} ({backend})")
    raise_if_blocking(
        results,
        "dashboard incomplete",
        f"see the {environment}-dashboard artifact; fix cloudwatch-dashboard.tf and apply",
    )
    return results
