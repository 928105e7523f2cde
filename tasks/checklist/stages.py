"""Results for the gate's own steps (plan, approval, apply, re-plan), so the checklist can cite them."""

from __future__ import annotations

from mirror_rollout.provisioners.base import ApplyResult, PlanResult
from mirror_rollout.results import CheckResult, Evidence, Status
from tasks.approval.form import ApprovalRecord


def plan_results(plan: PlanResult) -> list[CheckResult]:
    s = plan.summary
    source = f"plan file {plan.plan_file} (sha256 {s.sha256})"
    missing = s.missing_expected
    return [
        CheckResult(
            check_id="PLAN-001",
            title="Every contract resource is in the plan",
            status=Status.FAIL if missing else Status.PASS,
            subject=f"{s.resource_count} resources",
            message=f"missing: {', '.join(missing)}" if missing else s.headline(),
            evidence=[Evidence(source=source, observed={"counts": s.counts, "missing": missing})],
        )
    ]


def approval_results(records: list[ApprovalRecord], needed: int) -> list[CheckResult]:
    ok = len(records) >= needed and len({r.reviewer.casefold() for r in records}) == len(records)
    return [
        CheckResult(
            check_id="APPROVAL-001",
            title="Plan approved by the required reviewers",
            status=Status.PASS if ok else Status.FAIL,
            subject=", ".join(r.reviewer for r in records) or "nobody",
            message=f"{len(records)} of {needed} approval(s) for sha256 {records[0].plan_sha256 if records else '-'}",
            evidence=[
                Evidence(
                    source="Prefect flow run input (approval form)",
                    observed=r.model_dump(mode="json"),
                    at=r.decided_at,
                )
                for r in records
            ],
        )
    ]


def apply_results(applied: ApplyResult, approved_sha256: str) -> list[CheckResult]:
    results = [
        CheckResult(
            check_id="APPLY-001",
            title="Applied exactly the approved plan file",
            status=Status.PASS if applied.sha256 == approved_sha256 else Status.FAIL,
            subject=f"{len(applied.applied)} change(s)",
            message=f"plan sha256 {applied.sha256}, state serial {applied.state_serial}, {applied.seconds:.1f} s",
            evidence=[
                Evidence(
                    source="apply",
                    observed={
                        "sha256": applied.sha256,
                        "approved": approved_sha256,
                        "serial": applied.state_serial,
                    },
                )
            ],
        )
    ]
    results += [
        CheckResult(
            check_id=f"APPLY-{i:03d}",
            title="Resource not provisionable in the sandbox",
            status=Status.SKIPPED,
            subject=address,
            message=f"not provisionable in the sandbox: {reason}",
            evidence=[Evidence(source="apply", observed={"address": address})],
        )
        for i, (address, reason) in enumerate(sorted(applied.not_provisioned.items()), start=2)
    ]
    return results


def replan_results(replan: PlanResult) -> list[CheckResult]:
    s = replan.summary
    return [
        CheckResult(
            check_id="REPLAN-001",
            title="Re-plan after apply is a no-op",
            status=Status.FAIL if s.has_changes else Status.PASS,
            subject=f"{s.resource_count} resources",
            message=s.headline(),
            evidence=[
                Evidence(source=f"re-plan {replan.plan_file}", observed={"counts": s.counts})
            ],
        )
    ]


def baseline_result(stored: dict) -> CheckResult:
    """The drift baseline this rollout recorded (what drift detection compares with)."""
    missing = stored.get("missing") or []
    return CheckResult(
        check_id="DRIFT-100",
        title="Drift baseline recorded from the verified environment",
        status=Status.FAIL if missing else Status.PASS,
        subject=str(stored.get("uri", "")),
        message=f"missing from the snapshot: {', '.join(missing)}"
        if missing
        else "baseline stored",
        evidence=[Evidence(source="s3:PutObject", observed=stored)],
    )
