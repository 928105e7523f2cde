"""Prefect glue for drift detection: record the baseline after a rollout, compare live with it."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from mirror_rollout import markdown as md
from mirror_rollout.aws import AwsClients
from mirror_rollout.evidence import overall
from mirror_rollout.results import CheckResult, Evidence, Status
from mirror_rollout.target import RolloutTarget
from tasks.common import aws_task, calls_evidence, run_logger
from tasks.drift.baseline import load_baseline, store_baseline
from tasks.drift.compare import Drift, diff, show, to_check_results
from tasks.drift.snapshot import Snapshot, capture, expected_resources

REPLAN_CHECK = "DRIFT-000"
REPLAN_TITLE = "Re-plan is a no-op: configuration and state agree"


class DriftReport(BaseModel):
    environment: str
    drifts: list[Drift] = Field(default_factory=list)
    results: list[CheckResult] = Field(default_factory=list)
    baseline_run_id: str = ""
    api_calls: int = 0
    seconds: float = 0.0


def current_run_id() -> str:
    """The flow run's id inside a run; a timestamped id outside one (``.fn`` calls)."""
    from prefect.runtime import flow_run, task_run

    run_id = flow_run.get_id() or task_run.get_id()
    if run_id:
        return str(run_id)
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def baseline_markdown(environment: str, stored: dict[str, Any], snapshot: Snapshot) -> str:
    lines = [
        f"# Drift baseline — {environment}",
        "",
        f"Stored at `{stored['uri']}` (version `{stored['version_id']}`), copy `{stored['copy']}`,",
        f"run `{stored['run_id']}`, captured {stored['captured_at']}: {len(snapshot)} resources.",
        "",
    ]
    lines += md.table(
        ["resource", "attributes"],
        [
            [md.code_cell(resource), md.code_cell(json.dumps(attributes, sort_keys=True)[:400])]
            for resource, attributes in sorted(snapshot.items())
        ],
    )
    return "\n".join(lines) + "\n"


def capture_and_store(
    clients: AwsClients,
    environment: str,
    run_id: str | None = None,
    snapshot: Snapshot | None = None,
) -> tuple[Snapshot, dict[str, Any]]:
    """Store ``snapshot`` (captured now when None) as the baseline; where it went, what lacks."""
    if snapshot is None:
        snapshot = capture(clients, environment)
    stored = store_baseline(
        environment, clients.region, snapshot, run_id or current_run_id(), clients
    )
    stored["missing"] = sorted(set(expected_resources(environment)) - set(snapshot))
    stored["api_calls"] = sum(clients.calls.values())
    return snapshot, stored


@task(
    name="drift-snapshot",
    task_run_name="drift-snapshot-{target.environment}",
    cache_policy=NO_CACHE,
)
def capture_snapshot(target: RolloutTarget) -> Snapshot:
    """The live settings of every contract resource, read once the validations are done.

    The rollout reads them beside its re-plan and stores them (``record_baseline``) only
    when its checklist passes.
    """
    environment = target.environment
    return capture(AwsClients.of(target), environment)


@task(name="record-drift-baseline", task_run_name="record-drift-baseline-{target.environment}")
def record_baseline(target: RolloutTarget, snapshot: Snapshot | None = None) -> dict[str, Any]:
    """Store the live settings (``snapshot``, else read now) as the baseline; artifact ``{env}-drift-baseline``.

    The rollout calls this once its validations pass, so the baseline is a verified state.
    """
    environment = target.environment
    clients = AwsClients.of(target)
    snapshot, stored = capture_and_store(clients, environment, snapshot=snapshot)
    if stored["missing"]:
        run_logger().warning(
            "The baseline of %s lacks %s (not deployed?)", environment, ", ".join(stored["missing"])
        )
    create_markdown_artifact(
        key=f"{environment}-drift-baseline",
        markdown=baseline_markdown(environment, stored, snapshot),
        description=f"Drift baseline of {environment}: {len(snapshot)} resources",
    )
    return stored


def compare_live(clients: AwsClients, environment: str, first: int = 1) -> DriftReport:
    """Load the baseline (BaselineMissing if none), capture live, diff; pure results out."""
    started = time.monotonic()
    baseline = load_baseline(environment, clients.region, clients)
    live = capture(clients, environment)
    drifts = diff(baseline["resources"], live)
    evidence = [
        Evidence(
            source=f"s3:GetObject {baseline['uri']}",
            observed={
                "baseline_run_id": baseline.get("run_id"),
                "captured_at": baseline.get("captured_at"),
                "version_id": baseline.get("version_id"),
                "resources": len(baseline["resources"]),
            },
        ),
        calls_evidence(clients, live_resources=len(live)),
    ]
    return DriftReport(
        environment=environment,
        drifts=drifts,
        results=to_check_results(drifts, evidence, first),
        baseline_run_id=str(baseline.get("run_id") or ""),
        api_calls=sum(clients.calls.values()),
        seconds=round(time.monotonic() - started, 3),
    )


@aws_task("drift-compare", retry_delay_seconds=[5])
def drift_compare(target: RolloutTarget) -> DriftReport:
    """The live settings of every contract resource against the latest baseline."""
    environment = target.environment
    report = compare_live(AwsClients.of(target), environment)
    logger = run_logger()
    for d in report.drifts:
        logger.warning("DRIFT %s %s", d.resource, d.describe())
    return report


def replan_result(environment: str, error: BaseException | None, detail: str = "") -> CheckResult:
    """The re-plan as a drift finding: PASS when a no-op, FAIL with why otherwise."""
    if error is None:
        return CheckResult(
            check_id=REPLAN_CHECK,
            title=REPLAN_TITLE,
            status=Status.PASS,
            subject=f"terraform:{environment}",
            message=detail or "the plan changes nothing",
        )
    return CheckResult(
        check_id=REPLAN_CHECK,
        title=REPLAN_TITLE,
        status=Status.FAIL,
        subject=f"terraform:{environment}",
        message=f"re-plan: expected no changes, actual: {error}"[:500],
        evidence=[Evidence(source="re-plan", observed={"error": type(error).__name__})],
    )


def drift_rows(results: list[CheckResult], drifts: list[Drift]) -> list[dict[str, str]]:
    """The ``{env}-drift`` table: one row per difference (resource, attribute, expected, actual)."""
    by_message = {(d.resource, d.describe()): d for d in drifts}
    rows = []
    for r in results:
        d = by_message.get((r.subject, r.message))
        rows.append(
            {
                "check": r.check_id,
                "status": r.status.value,
                "resource": r.subject,
                "attribute": d.attribute
                if d
                else ("re-plan" if r.check_id == REPLAN_CHECK else ""),
                "expected": show(d.expected)[:200] if d else "",
                "actual": show(d.actual)[:200] if d else "",
                "detail": r.message[:300],
            }
        )
    return rows


def publish_drift(environment: str, results: list[CheckResult], drifts: list[Drift]) -> Status:
    verdict = overall(results)
    failed = sum(1 for r in results if r.status is Status.FAIL)
    create_table_artifact(
        key=f"{environment}-drift",
        table=drift_rows(results, drifts),
        description=f"Drift detection of {environment}: {verdict.value} ({failed} finding(s))",
    )
    return verdict
