"""Flow `infra-rollout`: guardrails → plan → review → approval → apply → re-plan → validations."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from mirror_rollout.settings import parse_settings
from tasks.apply.task import apply, replan_is_noop
from tasks.approval.pause import request_approvals
from tasks.guardrails.task import guardrails
from tasks.plan.task import plan, publish_review


@flow(name="infra-rollout", log_prints=True)
def infra_rollout(
    environment: str = "staging",
    backend: str = "sandbox",
    provisioner: str = "auto",
    approval_timeout_seconds: int = 3600,
    out_dir: str | None = None,
    root: str | None = None,
) -> dict:
    """Take infra/terraform to a verified environment; nothing is applied without approval."""
    settings = parse_settings(
        environment=environment,
        backend=backend,
        provisioner=provisioner,
        approval_timeout_seconds=approval_timeout_seconds,
        out_dir=out_dir,
        root=root,
    )
    logger = get_run_logger()
    run_dir = settings.output_dir(flow_run.get_name() or "local")
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_info = f"flow run {flow_run.get_id()}"

    checks = guardrails(settings.environment.value, str(settings.root))
    planned = plan(settings, run_dir, lock_info)
    publish_review(planned, checks)
    logger.info("Plan %s: %s", planned.sha256, planned.summary.headline())

    summary = {
        "environment": settings.environment.value,
        "plan_sha256": planned.sha256,
        "output_dir": str(run_dir),
    }
    if not planned.summary.has_changes:
        # Nothing would change, so there is nothing to approve or apply.
        logger.info("The plan changes nothing; skipping approval and apply")
        return {**summary, "approvals": [], "applied": 0, "not_provisioned": {}}

    approvals = request_approvals(planned, settings.backend, settings.approval_timeout_seconds)
    applied = apply(settings, planned.plan_file, approvals[-1].plan_sha256, lock_info)
    replan = replan_is_noop(settings, run_dir, lock_info)
    return {
        **summary,
        "approvals": [a.model_dump(mode="json") for a in approvals],
        "applied": len(applied.applied),
        "not_provisioned": applied.not_provisioned,
        "replan": replan.summary.headline(),
    }
