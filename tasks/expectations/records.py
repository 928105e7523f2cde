"""Records for the suites, taken from what the probes already read (no second round of API calls)."""

from __future__ import annotations

from typing import Any

from mirror_rollout.results import CheckResult


def pitr_records(results: list[CheckResult]) -> list[dict[str, Any]]:
    """One row per table from the PITR task's last DescribeContinuousBackups evidence."""
    rows = []
    for r in results:
        if r.check_id != "PITR-001":
            continue
        reads = [e.observed for e in r.evidence if "PointInTimeRecoveryStatus" in e.observed]
        last = reads[-1] if reads else {}
        rows.append(
            {
                "table": r.subject,
                "status": last.get("PointInTimeRecoveryStatus"),
                "earliest_restorable": last.get("EarliestRestorableDateTime"),
            }
        )
    return rows


def alarm_records(results: list[CheckResult]) -> list[dict[str, Any]]:
    """One row per existing alarm from the alarm probe's DescribeAlarms evidence (before driving)."""
    rows = []
    for r in results:
        if r.check_id != "ALARM-001":
            continue
        facts = next((e.observed for e in r.evidence if "Namespace" in e.observed), None)
        if facts is None:  # the alarm does not exist: no row, so the count expectation fails
            continue
        dims = facts.get("Dimensions") or {}
        rows.append(
            {
                "name": r.subject,
                "namespace": facts.get("Namespace"),
                "metric": facts.get("MetricName"),
                "table": dims.get("TableName"),
                "threshold": facts.get("Threshold"),
                "comparison": facts.get("ComparisonOperator"),
                "period": facts.get("Period"),
                "state": facts.get("StateValue"),
                "actions": " ".join(facts.get("AlarmActions") or []) or None,
            }
        )
    return rows
