"""Prefect glue for apply and the no-op re-plan."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from mirror_rollout import markdown as md
from mirror_rollout.errors import RolloutError
from mirror_rollout.plan_digest import PlanDigest
from mirror_rollout.provisioners import make_provisioner
from mirror_rollout.provisioners.base import ApplyInterrupted, ApplyResult, PlanResult
from mirror_rollout.retries import is_transient, retry_when
from mirror_rollout.settings import RolloutSettings
from tasks.plan.task import working_copy


class ReplanNotEmpty(RolloutError):
    pass


def _nothing_changed_yet(exc: BaseException | None) -> bool:
    """Retry only while nothing was changed (AWS throttling or unreachable at the start).

    A half-applied plan is stale by construction (the state serial moved), so a retry
    could only be refused; then the operator re-plans instead.
    """
    if isinstance(exc, ApplyInterrupted):
        return exc.applied == 0 and is_transient(exc.cause)
    return is_transient(exc)


@task(
    name="apply",
    task_run_name="apply-{settings.environment}",
    retries=2,
    retry_delay_seconds=[10, 30],
    retry_condition_fn=retry_when(_nothing_changed_yet),
)
def apply(settings: RolloutSettings, plan_file: str, approved_sha256: PlanDigest) -> ApplyResult:
    """Terraform applies the approved plan file (its progress lines go to the run log)."""
    logger = get_run_logger()
    logger.info("Applying %s (approved sha256 %s)", Path(plan_file).name, approved_sha256)
    run_dir = Path(plan_file).parent
    result = make_provisioner(settings, working_copy(run_dir)).apply(
        Path(plan_file), approved_sha256
    )
    create_markdown_artifact(
        key=f"{settings.environment}-outputs",
        markdown=outputs_markdown(settings.environment, result),
        description=f"Outputs after apply of {approved_sha256[:12]}",
    )
    return result


def outputs_markdown(environment: str, result: ApplyResult) -> str:
    lines = [
        f"# Outputs — {environment}",
        "",
        f"Applied {len(result.applied)} change(s) in {result.seconds:.1f} s; state serial {result.state_serial}.",
        "",
    ]
    if result.not_provisioned:
        lines += (
            ["## Not created on the sandbox (moto gaps)", ""]
            + [f"- `{a}`: {why}" for a, why in sorted(result.not_provisioned.items())]
            + [""]
        )
    lines += md.table(
        ["output", "value"],
        [[k, md.code_cell(v)] for k, v in sorted(result.outputs.items())],
    )
    return "\n".join(lines) + "\n"


@task(
    name="re-plan",
    task_run_name="re-plan-{settings.environment}",
    retries=2,
    retry_delay_seconds=[2, 10],
)
def replan_is_noop(
    settings: RolloutSettings, out_dir: Path, first_step: bool = False
) -> PlanResult:
    """After apply, a refreshing plan must change nothing (Terraform's -detailed-exitcode 0).

    In a rollout it plans the copy the rollout applied; as a run's ``first_step`` (drift
    detection) it copies the root as it is now.
    """
    terraform = make_provisioner(settings, working_copy(out_dir), first_step=first_step)
    result = terraform.plan(Path(out_dir) / "replan", replan=True)
    if result.exit_code == 2 or result.summary.has_changes:
        document = result.plan_document
        changed = [
            c.address for c in document.managed_changes() if c.action not in ("no-op", "read")
        ]
        changed += [
            f"output.{k}" for k, c in document.output_changes.items() if c.action != "no-op"
        ]
        raise ReplanNotEmpty(
            f"the plan after apply is not empty: {', '.join(changed[:10])}",
            "investigate drift or a provider inconsistency before going further",
        )
    return result
