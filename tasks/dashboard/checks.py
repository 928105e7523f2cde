"""Pure dashboard checks over a GetDashboard body and the alarms' ARNs (dicts in, results out)."""

from __future__ import annotations

import re
from typing import Any

from mirror_rollout import contract
from mirror_rollout.documents import as_list, dashboard_metrics
from mirror_rollout.results import CheckResult, Evidence, Status

DASH_EXISTS = "DASH-001"
DASH_CAPACITY = "DASH-002"
DASH_ERRORS = "DASH-003"
DASH_CUSTOM = "DASH-004"
DASH_ALARMS = "DASH-005"
DASH_TABLES = "DASH-006"

TITLES = {
    DASH_EXISTS: "Dashboard exists",
    DASH_CAPACITY: "Consumed read and write capacity of the three tables",
    DASH_ERRORS: "DynamoDB user errors and system errors",
    DASH_CUSTOM: "SSM parameter failures and circuit breaker triggers",
    DASH_ALARMS: "Alarm-status widget lists the 8 alarms",
    DASH_TABLES: "Metrics name only this environment's tables",
}

_QUOTED_TABLE = re.compile(rf'"({re.escape(contract.PREFIX)}-[A-Za-z0-9_.-]+)"')


def dashboard_name(env: str) -> str:
    return f"{contract.PREFIX}-{env}"


def search_tables(body: dict[str, Any]) -> dict[str, set[str]]:
    """Metric name -> project table names quoted in the SEARCH expressions that select it."""
    found: dict[str, set[str]] = {}
    for widget in as_list(body.get("widgets")):
        for row in as_list((widget.get("properties") or {}).get("metrics")):
            for options in (v for v in as_list(row) if isinstance(v, dict)):
                expression = str(options.get("expression", ""))
                metric = re.search(r'MetricName\s*=\s*"?([A-Za-z0-9_]+)', expression)
                if metric:
                    found.setdefault(metric[1], set()).update(_QUOTED_TABLE.findall(expression))
    return found


def _result(
    check_id: str, subject: str, problems: list[str], ok: str, evidence: list[Evidence]
) -> CheckResult:
    return CheckResult(
        check_id=check_id,
        title=TITLES[check_id],
        status=Status.FAIL if problems else Status.PASS,
        subject=subject,
        message=f"{subject}: " + "; ".join(problems) if problems else ok,
        evidence=evidence,
    )


def check_dashboard(
    env: str,
    body: dict[str, Any] | None,
    alarm_arns: dict[str, str],
    source: Evidence,
    alarms_source: Evidence,
) -> list[CheckResult]:
    """DASH-001..006. ``body`` None = no such dashboard; ``alarm_arns`` = AlarmName -> AlarmArn read."""
    name = dashboard_name(env)
    if body is None:
        return [_result(DASH_EXISTS, name, ["dashboard does not exist"], "", [source])]
    rows, alarm_widgets = dashboard_metrics(body)
    searched = search_tables(body)
    tables = [spec.name(env) for spec in contract.TABLES]
    custom = f"MirrorDissonance/{env}"
    widgets = as_list(body.get("widgets"))
    read = source.model_copy(
        update={
            "observed": {
                "widgets": len(widgets),
                "metric_rows": sorted("/".join(r).rstrip("/") for r in rows),
                "alarm_widgets": len(alarm_widgets),
            }
        }
    )
    results = [_result(DASH_EXISTS, name, [], f"{len(widgets)} widget(s)", [read])]

    def has(namespace: str, metric: str, table: str | None = None) -> bool:
        return any(
            r[0] == namespace and r[1] == metric and (table is None or r[2] == table) for r in rows
        )

    capacity = [
        f"no {metric} metric for {table}"
        for metric in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits")
        for table in tables
        if not has("AWS/DynamoDB", metric, table)
    ]
    results.append(_result(DASH_CAPACITY, name, capacity, "read + write for 3 tables", [read]))

    errors = [] if has("AWS/DynamoDB", "UserErrors") else ["no AWS/DynamoDB UserErrors metric"]
    if not has("AWS/DynamoDB", "SystemErrors"):
        errors.append("no AWS/DynamoDB SystemErrors metric")
    else:
        covered = {r[2] for r in rows if r[:2] == ("AWS/DynamoDB", "SystemErrors")}
        covered |= searched.get("SystemErrors", set())
        errors += [f"SystemErrors does not select {t}" for t in tables if t not in covered]
    results.append(_result(DASH_ERRORS, name, errors, "UserErrors and SystemErrors", [read]))

    missing_custom = [
        f"no {custom} {metric} metric"
        for metric in ("SSMParameterFailures", "CircuitBreakerTriggers")
        if not has(custom, metric)
    ]
    results.append(_result(DASH_CUSTOM, name, missing_custom, f"{custom} metrics present", [read]))

    listed = {str(a) for w in alarm_widgets for a in as_list(w.get("alarms"))}
    alarm_problems = []
    if not alarm_widgets:
        alarm_problems.append("no alarm-status widget")
    for spec in contract.ALARMS:
        alarm = spec.full_name(env)
        arn = alarm_arns.get(alarm)
        if arn is None:
            alarm_problems.append(f"alarm {alarm} does not exist (DescribeAlarms)")
        elif alarm_widgets and arn not in listed:
            alarm_problems.append(f"alarm-status widget does not list {alarm}")
    contract_arns = set(alarm_arns.values())
    alarm_problems += [
        f"alarm-status widget lists {a}, not a contract alarm"
        for a in sorted(listed - contract_arns)
    ]
    alarms_read = alarms_source.model_copy(update={"observed": {"alarm_arns": alarm_arns}})
    widget_read = source.model_copy(update={"observed": {"alarm_widget_arns": sorted(listed)}})
    results.append(
        _result(
            DASH_ALARMS,
            name,
            alarm_problems,
            f"{len(listed)} alarm ARN(s) = the 8 described",
            [widget_read, alarms_read],
        )
    )

    named = {r[2] for r in rows if r[2]} | set().union(*searched.values())
    wrong = sorted(n for n in named if n not in tables)
    results.append(
        _result(
            DASH_TABLES,
            name,
            [f"metric names table {t}, not one of {', '.join(tables)}" for t in wrong],
            f"tables named: {', '.join(sorted(named))}",
            [read],
        )
    )
    return results
