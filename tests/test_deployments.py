"""The user's path: `prefect deploy --all`, then `prefect deployment run infra-rollout/staging-rollout`.

The sandbox's worker (started by `sandbox up`) picks the run up; it pauses for
approval, `mirror-rollout approve` resumes it, and it completes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mirror_rollout import PROJECT_ROOT

PREFECT = str(Path(sys.executable).parent / "prefect")


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MIRROR_ROLLOUT_ROOT": str(PROJECT_ROOT)}
    return subprocess.run(
        args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def wait_for(run_id: str, predicate, seconds: float):
    from prefect import get_client

    deadline = time.monotonic() + seconds
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if run.state and predicate(run.state):
                return run.state
            time.sleep(1)
    raise AssertionError(
        f"flow run {run_id} is {run.state.name if run.state else '?'} after {seconds} s"
    )


def test_prefect_yaml_declares_the_contract_deployments():
    names = {
        f"{d['entrypoint'].split(':')[1]}/{d['name']}"
        for d in yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]
    }
    assert names == {
        "infra_rollout/staging-rollout",
        "infra_rollout/production-rollout",
        "infra_rollout/rollout",
        "nonce_rotation/scheduled",
        "nonce_grace_cleanup/scheduled",
        "drift_detection/daily",
        "pitr_verification/on-demand",
        "nonce_rotation_test/on-demand",
        "restore_drill_flow/weekly",
    }


def test_deploy_then_run_staging_rollout_on_the_sandbox_worker(
    sandbox, prefect_api, clean_aws, tmp_path
):
    deployed = cli(PREFECT, "--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    started = cli(PREFECT, "deployment", "run", "infra-rollout/staging-rollout")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = next(
        line.split("UUID:")[1].strip() for line in started.stdout.splitlines() if "UUID:" in line
    )

    paused = wait_for(run_id, lambda s: s.is_paused() or s.is_final(), 240)
    assert paused.is_paused(), paused.message
    approve_in_the_ui_or_cli(sandbox.config.ui_url, run_id, tmp_path)
    final = wait_for(run_id, lambda s: s.is_final(), 240)
    assert final.is_completed(), final.message


def approve_in_the_ui_or_cli(ui_url: str, run_id: str, screenshots: Path) -> None:
    """In the Prefect UI with chromium where it is installed (always in CI), else the CLI."""
    from tests.test_browser_approval import CHROMIUM, approve_in_ui, browser_page

    if CHROMIUM.exists():
        from tasks.approval.client import pending_approval

        sha = pending_approval(run_id).plan_sha256
        with browser_page(ui_url, screenshots / "failed.png") as page:
            approve_in_ui(page, run_id, sha, screenshots / "approval-form.png")
        return
    approved = cli(sys.executable, "-m", "console.main", "approve", run_id, "--reviewer", "alice")
    assert approved.returncode == 0, approved.stdout + approved.stderr
