"""Fan-out: several environments rolled out at once as runs of infra-rollout/rollout.

The CLI (`mirror-rollout run infra-rollout/rollout --env staging --env qa`) runs in its
own process against the sandbox's Prefect server and worker; this test answers each
environment's approval from a third process, as a reviewer would, and reads the runs
back from the API. qa is added the way a user adds an environment
(tests/support/environments.py), in a copy of infra/ the runs get as their root.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from console.fanout import EnvironmentRun, distinct_environments, outcome_table
from console.runner import Outcome
from mirror_rollout import PROJECT_ROOT
from mirror_rollout.errors import ConfigError
from tests.rollout_run import artifacts_of
from tests.support.environments import root_with_environments

DEPLOYMENT = "infra-rollout/rollout"
PREFECT = str(Path(sys.executable).with_name("prefect"))


def test_an_environment_named_twice_is_refused_before_any_run_starts():
    with pytest.raises(ConfigError, match="'qa' is given twice"):
        distinct_environments(["staging", "qa", "qa"])
    refused = subprocess.run(
        [sys.executable, "-m", "console.main", "run", DEPLOYMENT, "--env", "qa", "--env", "qa"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"},  # never reached
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "environment 'qa' is given twice" in refused.stderr
    assert "flow run" not in refused.stdout


def test_the_outcome_table_has_one_row_per_environment_and_says_why_one_failed():
    runs = [
        EnvironmentRun("staging", "1", "brave-fox", "http://ui/runs/flow-run/1"),
        EnvironmentRun("qa", "2", "calm-owl", "http://ui/runs/flow-run/2"),
        EnvironmentRun("perf", "3", "shy-elk", "http://ui/runs/flow-run/3"),
    ]
    runs[0].outcome = Outcome("1", "Completed", completed=True)
    runs[1].outcome = Outcome("2", "Failed", "plan refused: KMS deletion window 7 days")
    runs[2].error = "lost the Prefect API (ConnectError); the outcome is unknown"
    console = Console(width=200, record=True)
    console.print(outcome_table(DEPLOYMENT, runs))
    text = console.export_text()
    assert f"{DEPLOYMENT}: 1 of 3 environments Completed" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 4}
    assert "Completed" in rows["staging"] and "brave-fox" in rows["staging"]
    assert "Failed" in rows["qa"] and "KMS deletion window" in rows["qa"]
    assert "unknown" in rows["perf"] and "lost the Prefect API" in rows["perf"]


@pytest.fixture
def rollout_deployment(prefect_api, clean_aws):
    done = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--name", "rollout"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return DEPLOYMENT


def approve_paused_runs(cli: subprocess.Popen, approved: dict[str, str], deadline: float) -> None:
    """Answer every paused run of the deployment once, signed as a sandbox reviewer."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    from console.rehearsal import auto_reviewer_key
    from tasks.approval.client import send_approval

    while cli.poll() is None and time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            paused = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                )
            )
        for run in paused:
            if str(run.id) not in approved:
                send_approval(str(run.id), key=auto_reviewer_key(1), comment="fan-out test")
                approved[str(run.id)] = run.parameters["environment"]
        time.sleep(1)


def test_two_environments_roll_out_side_by_side_each_with_its_own_approval(
    rollout_deployment, tmp_path
):
    from prefect import get_client

    root = root_with_environments(tmp_path / "project", ["qa"])
    cli = subprocess.Popen(
        [
            *(sys.executable, "-m", "console.main", "run", rollout_deployment),
            *("--env", "staging", "--env", "qa", "--timeout", "600"),
            *("-p", f"root={root}", "-p", "approval_timeout_seconds=300"),
        ],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    approved: dict[str, str] = {}
    try:
        approve_paused_runs(cli, approved, time.monotonic() + 600)
        output, _ = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, output
    assert sorted(approved.values()) == ["qa", "staging"], output
    assert f"{rollout_deployment}: 2 of 2 environments Completed" in output

    with get_client(sync_client=True) as client:
        runs = [client.read_flow_run(run_id) for run_id in approved]
    by_environment = {run.parameters["environment"]: run for run in runs}
    for environment, run in by_environment.items():
        assert run.state.is_completed(), run.state.message
        artifacts = artifacts_of(str(run.id))
        # Each run answered its own approval and wrote its own environment's checklist.
        assert "fan-out test" in artifacts[f"{environment}-approval"]
        assert f"{environment}-production-checklist" in artifacts
        assert f"{environment:<12} " in output
    # Side by side: each started before the other ended (one worker runs both).
    staging, qa = by_environment["staging"], by_environment["qa"]
    assert staging.start_time < qa.end_time and qa.start_time < staging.end_time
