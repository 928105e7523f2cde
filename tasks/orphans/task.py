"""Prefect glue for the orphan scan: after apply, and before approval of a plan that creates."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import task

from mirror_rollout.aws import AwsClients
from mirror_rollout.errors import RolloutError
from mirror_rollout.evidence import publish
from mirror_rollout.results import CheckResult
from mirror_rollout.settings import RolloutSettings
from mirror_rollout.target import RolloutTarget
from tasks.orphans.checks import adoption_needed, blocking_orphans, find_orphans, orphan_results
from tasks.orphans.inventory import project_resources


class AdoptionNeeded(RolloutError):
    """The plan would create a resource that already exists in AWS outside the state."""


def scan(target: RolloutTarget, state: dict, plan: dict | None = None):
    live = project_resources(target.environment, AwsClients.of(target))
    return live, find_orphans(live, state, plan)


@task(name="orphan-scan", task_run_name="orphans-{settings.environment}", retries=1)
def orphan_scan(settings: RolloutSettings, run_dir: Path) -> list[CheckResult]:
    """Project-named resources in AWS that state does not track: each a FAIL with its adopt command."""
    from mirror_rollout.provisioners import make_provisioner
    from tasks.plan.task import working_copy

    environment, region = settings.environment, settings.target.region
    terraform = make_provisioner(settings, working_copy(run_dir))
    state = terraform.applied_state_document()
    live, orphans = scan(settings.target, state, applied_plan(run_dir, terraform.workspace))
    results = orphan_results(
        environment, live, orphans, f"AWS ({region}) vs the {environment} state", region
    )
    publish(f"{environment}-orphans", results, "Resources outside Terraform state")
    return results


def applied_plan(run_dir: Path, workspace: str) -> dict | None:
    """The run's plan document (``<workspace>.tfplan.json``): what names each orphan's address."""
    path = Path(run_dir) / f"{workspace}.tfplan.json"
    return json.loads(path.read_text()) if path.is_file() else None


def refuse_creating_what_exists(target: RolloutTarget, state: dict, plan: dict) -> None:
    """Before approval: a planned create of something that exists already cannot succeed."""
    _, orphans = scan(target, state, plan)
    blocking = blocking_orphans(orphans, plan)
    if blocking:
        raise AdoptionNeeded(*adoption_needed(target.environment, blocking))
