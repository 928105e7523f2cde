"""Prefect glue for plan: run the provisioner, publish the review artifact."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from mirror_rollout.provisioners import make_provisioner
from mirror_rollout.provisioners.base import PlanResult
from mirror_rollout.results import CheckResult
from mirror_rollout.settings import RolloutSettings
from tasks.orphans.task import refuse_creating_what_exists
from tasks.plan.review import review_markdown


@task(
    name="plan",
    task_run_name="plan-{settings.environment}",
    retries=2,
    retry_delay_seconds=[2, 10],
)
def plan(settings: RolloutSettings, out_dir: Path) -> PlanResult:
    """Terraform plans the run's working copy (``<out_dir>/terraform``) into ``out_dir``.

    A plan that creates something already in AWS but not in state (an interrupted
    apply) is refused here, before anyone reviews it, naming the adopt command.
    """
    terraform = make_provisioner(settings, working_copy(out_dir), first_step=True)
    planned = terraform.plan(out_dir)
    if planned.summary.counts.get("create") or planned.summary.counts.get("replace"):
        document = planned.plan_document.model_dump(mode="json")
        refuse_creating_what_exists(settings.target, terraform.prior_state, document)
    return planned


def working_copy(run_dir: Path) -> Path:
    """The run's copy of infra/terraform (with the sandbox override): what plan and apply use."""
    return Path(run_dir) / "terraform"


@task(name="review-artifact", task_run_name="review-{result.environment}")
def publish_review(result: PlanResult, guardrails: list[CheckResult] | None) -> str:
    markdown = review_markdown(result, guardrails)
    Path(result.plan_file).with_suffix(".review.md").write_text(markdown)
    create_markdown_artifact(
        key=f"{result.environment}-plan",
        markdown=markdown,
        description=f"{result.summary.headline()} — sha256 {result.sha256}",
    )
    return markdown
