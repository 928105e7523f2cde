"""Prefect glue for the orphan scan: after apply, and before approval of a plan that creates."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from mirror_rollout.aws import AwsClients
from mirror_rollout.errors import RolloutError
from mirror_rollout.evidence import publish
from mirror_rollout.results import CheckResult
from mirror_rollout.settings import RolloutSettings
from tasks.orphans.checks import find_orphans, orphan_results
from tasks.orphans.inventory import project_resources


class AdoptionNeeded(RolloutError):
    """The plan would create a resource that already exists in AWS outside the state."""


def scan(environment: str, region: str, state: dict, plan: dict | None = None):
    live = project_resources(environment, AwsClients(region, environment=environment))
    return live, find_orphans(live, state, plan)


@task(name="orphan-scan", task_run_name="orphans-{settings.environment}", retries=1)
def orphan_scan(settings: RolloutSettings, run_dir: Path, region: str) -> list[CheckResult]:
    """Project-named resources in AWS that state does not track: each a FAIL with its adopt command."""
    from mirror_rollout.provisioners import make_provisioner
    from tasks.plan.task import working_copy

    environment = settings.environment
    state = make_provisioner(settings, working_copy(run_dir)).state_document()
    live, orphans = scan(environment, region, state)
    results = orphan_results(
        environment, live, orphans, f"AWS ({region}) vs the {environment} state"
    )
    publish(f"{environment}-orphans", results, "Resources outside Terraform state")
    return results


def refuse_creating_what_exists(environment: str, region: str, state: dict, plan: dict) -> None:
    """Before approval: a planned create of something that exists already cannot succeed."""
    creates = {
        c["address"]
        for c in plan.get("resource_changes", [])
        if c.get("change", {}).get("actions") == ["create"]
    }
    _, orphans = scan(environment, region, state, plan)
    blocking = [o for o in orphans if o.address in creates]
    if blocking:
        named = "; ".join(f"{o.address} ({o.live.id})" for o in blocking)
        raise AdoptionNeeded(
            f"the plan creates what already exists in AWS but not in the {environment} state "
            f"(an apply was interrupted after the create): {named}",
            "adopt each into state, then run the rollout again: "
            + "; ".join(o.adopt_command(environment) for o in blocking),
        )
