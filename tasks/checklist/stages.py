"""Results for the gate's own steps (plan, approval, apply, re-plan), so the checklist can cite them."""

from __future__ import annotations

from pathlib import Path

from mirror_rollout.environments import gcp_dir
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
    from mirror_rollout.reviewer_keys import same_name
    from tasks.approval.form import UNSIGNED

    keys = [r.key_fingerprint for r in records if r.key_fingerprint != UNSIGNED]
    distinct = len(set(keys)) == len(keys) and not any(
        same_name(a.reviewer, b.reviewer) for i, a in enumerate(records) for b in records[:i]
    )
    ok = len(records) >= needed and distinct
    return [
        CheckResult(
            check_id="APPROVAL-001",
            title="Plan approved by the required reviewers",
            status=Status.PASS if ok else Status.FAIL,
            subject=", ".join(f"{r.reviewer} (key {r.key_fingerprint})" for r in records)
            or "nobody",
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
    return results


def gap_results(plan: PlanResult) -> list[CheckResult]:
    """One SKIPPED line per moto gap the sandbox override works around (none on AWS)."""
    return [
        CheckResult(
            check_id=f"SANDBOX-{i:03d}",
            title="Not verifiable on the sandbox (moto gap)",
            status=Status.SKIPPED,
            subject=gap.address,
            message=f"{gap.address} {gap.consequence}: {gap.moto_behaviour}",
            evidence=[
                Evidence(
                    source=f"{plan.working_copy}/sandbox_override.tf",
                    observed=gap.model_dump(mode="json"),
                )
            ],
        )
        for i, gap in enumerate(plan.gaps, start=1)
    ]


def gcp_plan_skipped(root: Path) -> CheckResult:
    """infra/gcp cannot be planned here: the provider mirror holds no google provider."""
    return CheckResult(
        check_id="GCP-PLAN",
        title="infra/gcp planned and applied by Terraform",
        status=Status.SKIPPED,
        subject=str(gcp_dir(root)),
        message="the sandbox's provider mirror holds no hashicorp/google provider, so Terraform "
        "cannot plan infra/gcp here; the GCS checks run on a bucket created directly on the "
        "emulator as a fixture. On real GCP the same Terraform CLI path plans and applies infra/gcp.",
        evidence=[Evidence(source="sandbox", observed={"root": str(gcp_dir(root))})],
    )


def replan_results(replan: PlanResult) -> list[CheckResult]:
    s = replan.summary
    return [
        CheckResult(
            check_id="REPLAN-001",
            title="Re-plan after apply is a no-op",
            status=Status.FAIL if s.has_changes or replan.exit_code != 0 else Status.PASS,
            subject=f"{s.resource_count} resources",
            message=s.headline(),
            evidence=[
                Evidence(
                    source=f"re-plan {replan.plan_file} (terraform plan -detailed-exitcode)",
                    observed={"counts": s.counts, "exit_code": replan.exit_code},
                )
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
