"""The operator scripts in scripts/: usage, and exit code == the outcome of the flow run they start.

Every script is run as a subprocess against the session's sandbox (moto, GCS
emulator, Prefect server and its process worker for the `mirror-rollout` pool);
the deployments are registered with `prefect --no-prompt deploy --all` first.
Failures are caused honestly: an empty moto account, an approval rejected with
`mirror-rollout approve --reject`, PITR switched off with a real API call, a
rotation while another is in its grace period.

Order matters: the tests on an empty account come first, then the ones sharing
the staging rollout of the module fixture ``staging``, then production (which
resets moto: the sandbox holds one environment at a time).
"""

from __future__ import annotations

import contextvars
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

from mirror_rollout import PROJECT_ROOT, contract
from mirror_rollout.sandbox import auto_reviewer_key_path
from tests.conftest import reset_moto
from tests.rollout_run import task_names

SCRIPTS = PROJECT_ROOT / "scripts"
PREFECT = str(Path(sys.executable).parent / "prefect")
MIRROR_ROLLOUT = str(Path(sys.executable).parent / "mirror-rollout")
NONCE_PREFIX = "/guardian/staging/redaction_nonce_v"
RUN_LINE = re.compile(r"^flow run ([0-9a-f-]{36}) ")

#: script -> options its --help must name
OPTIONS = {
    "deploy-staging.sh": ["--backend", "--approval-timeout", "--timeout", "--no-wait"],
    "deploy-production.sh": [
        "--backend",
        "--region",
        "--approval-timeout",
        "--timeout",
        "--skip-verify",
        "--verify-only",
    ],
    "verify-pitr.sh": ["--env", "--region", "--enable", "--timeout"],
    "rotate-nonce.sh": [
        "--env",
        "--from-version",
        "--grace-seconds",
        "--region",
        "--rollback",
        "--timeout",
    ],
    "test-nonce-rotation.sh": ["--env", "--end", "--grace-seconds", "--region", "--timeout"],
}


def env() -> dict[str, str]:
    return {**os.environ, "MIRROR_ROLLOUT_ROOT": str(PROJECT_ROOT)}


def aws(service: str):
    """A client of the sandbox's moto (a Session per call: the tests use threads)."""
    return boto3.session.Session().client(service)


def script(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPTS / name), *args],
        cwd="/",  # the scripts find the repository themselves
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def output(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def run_ids(text: str) -> list[str]:
    return [m[1] for line in text.splitlines() if (m := RUN_LINE.match(line))]


@dataclass
class Running:
    """A script started in the background; stdout and stderr are collected line by line."""

    name: str
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, name: str, *args: str) -> Running:
        proc = subprocess.Popen(
            [str(SCRIPTS / name), *args],
            cwd="/",  # the scripts find the repository themselves
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        running = cls(name, proc)
        for stream, sink in ((proc.stdout, running.lines), (proc.stderr, running.errors)):
            threading.Thread(target=_collect, args=(stream, sink), daemon=True).start()
        return running

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def first_run_id(self, seconds: float = 90) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ids := run_ids(self.text):
                return ids[0]
            assert self.proc.poll() is None, self.text + "\n".join(self.errors)
            time.sleep(0.2)
        raise AssertionError(f"no flow run id printed after {seconds} s:\n{self.text}")

    def wait(self, seconds: float = 400) -> subprocess.CompletedProcess:
        try:
            code = self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(
                f"{self.name} still running after {seconds} s:\n{self.text}"
            ) from None
        time.sleep(0.3)  # let the readers take the last lines
        return subprocess.CompletedProcess(
            [self.name], code, self.text + "\n", "\n".join(self.errors) + "\n"
        )


def _collect(stream, sink: list[str]) -> None:
    for line in stream:
        sink.append(line.rstrip("\n"))


def together(*scripts: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """Run scripts concurrently (the worker runs their flows side by side); wait for all."""
    running = [Running.start(*s) for s in scripts]
    return [r.wait() for r in running]


def wait_paused(run_id: str, answered: set[str], seconds: float = 180) -> str:
    """Wait until the run pauses with a pause key not in ``answered``; returns the key."""
    from prefect import get_client

    deadline = time.monotonic() + seconds
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(run_id).state
            if state is not None and state.is_paused():
                key = str(state.state_details.pause_key)
                if key not in answered:
                    return key
            assert state is None or not state.is_final(), f"run ended {state.name}: {state.message}"
            time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not pause within {seconds} s")


def approve(run_id: str, reviewer: str | None, *extra: str) -> None:
    named = ["--reviewer", reviewer] if reviewer is not None else []
    done = subprocess.run(
        [MIRROR_ROLLOUT, "approve", run_id, *named, *extra],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, output(done)


def final_state(run_id: str):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


def assert_outcome(done: subprocess.CompletedProcess, completed: bool) -> str:
    """Exit code 0/1 agrees with the final state of the run the script printed."""
    text = output(done)
    assert done.returncode == (0 if completed else 1), text
    ids = run_ids(done.stdout)
    assert ids, text
    state = final_state(ids[-1])
    assert state is not None and state.is_completed() is completed, (state, text)
    assert f"/runs/flow-run/{ids[-1]}" in done.stdout, text
    return text


# -- usage ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_help_names_every_option_and_exits_0(name):
    done = script(name, "--help")
    assert done.returncode == 0, output(done)
    assert done.stdout.startswith(f"usage: {name}")
    for option in [*OPTIONS[name], "--help"]:
        assert option in done.stdout, f"{name} --help does not name {option}"
    assert script(name, "-h").stdout == done.stdout


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_unknown_option_is_one_line_and_exit_2(name):
    done = script(name, "--frobnicate")
    assert done.returncode == 2, output(done)
    assert done.stdout == ""
    assert done.stderr.splitlines() == [f"{name}: unknown option --frobnicate (see {name} --help)"]
    missing = script(name, "--timeout")
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        f"{name}: option --timeout needs a value (see {name} --help)"
    ]


def test_bad_values_are_usage_errors():
    assert script("rotate-nonce.sh", "staging", "x").returncode == 2
    assert script("test-nonce-rotation.sh", "--end", "never").returncode == 2
    assert script("deploy-production.sh", "--backend", "gcp").returncode == 2
    both = script("deploy-production.sh", "--skip-verify", "--verify-only")
    assert both.returncode == 2 and "exclude each other" in both.stderr


def test_run_params_and_ui_url():
    from console.runner import parse_params, ui_base_url
    from mirror_rollout.errors import ConfigError

    assert parse_params(["environment=staging", "from_version=2", "rollback=true", "a=b=c"]) == {
        "environment": "staging",
        "from_version": 2,
        "rollback": True,
        "a": "b=c",
    }
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        parse_params(["novalue"])
    api = {"PREFECT_API_URL": "http://127.0.0.1:4200/api"}
    assert ui_base_url(api) == "http://127.0.0.1:4200"
    assert ui_base_url({**api, "PREFECT_UI_URL": "https://ui.example/"}) == "https://ui.example"


# -- on the sandbox ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def deployed(prefect_api, sandbox):
    done = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--all"],
        cwd=PROJECT_ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, output(done)
    return prefect_api


def test_a_missing_deployment_is_a_usage_error(deployed):
    done = subprocess.run(
        [MIRROR_ROLLOUT, "run", "no-such-flow/nowhere"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, output(done)
    assert "deployment no-such-flow/nowhere does not exist" in done.stderr
    assert "prefect --no-prompt deploy --all" in done.stderr


def test_on_an_empty_account_the_scripts_exit_1_with_their_failed_runs(deployed, clean_aws):
    """verify-pitr (no tables), rotate-nonce (no nonce), a timed-out run, a rejected staging plan."""
    staging = Running.start("deploy-staging.sh", "--approval-timeout", "120")
    others = [
        Running.start("verify-pitr.sh", "staging"),
        Running.start("rotate-nonce.sh", "staging"),
        Running.start("verify-pitr.sh", "--env", "staging", "--timeout", "1"),
    ]
    run_id = staging.first_run_id()
    wait_paused(run_id, set())
    approve(run_id, "x", "--reject", "--comment", "not today")
    rejected, pitr_run, rotation, timed_out = [r.wait() for r in (staging, *others)]

    text = assert_outcome(pitr_run, completed=False)
    assert "pitr-verification/on-demand: Failed" in text
    assert f"table {contract.name('staging', 'fp-events')} does not exist" in text

    text = assert_outcome(rotation, completed=False)
    assert "nonce-rotation/scheduled: Failed" in text
    assert "no nonce parameter /guardian/staging/redaction_nonce_v{N} exists" in text

    text = assert_outcome(timed_out, completed=False)
    assert "not finished after 1 s" in text and "timed out after 1 s" in text
    assert final_state(run_ids(timed_out.stdout)[0]).is_cancelled(), text

    text = assert_outcome(rejected, completed=False)
    assert "waiting for input (approval-1)" in text and f"approve {run_id}" in text
    assert "infra-rollout/staging-rollout: Failed" in text
    tables = aws("dynamodb").list_tables()["TableNames"]
    assert contract.name("staging", "fp-events") not in tables  # nothing applied


@pytest.fixture(scope="module")
def staging(deployed):
    """One staging rollout through deploy-staging.sh, approved by alice; shared below."""
    reset_moto()
    running = Running.start("deploy-staging.sh", "--approval-timeout", "120", "--timeout", "400")
    run_id = running.first_run_id()
    wait_paused(run_id, set())
    approve(run_id, "alice", "--comment", "scripts test")
    return running.wait()


def test_deploy_staging_approved_exits_0(staging):
    text = assert_outcome(staging, completed=True)
    assert "infra-rollout/staging-rollout: Completed" in text
    assert "Completed  checklist-staging" in text  # task progress lines
    # The follower reads only tasks that may still change: none may end unseen.
    names = task_names(run_ids(staging.stdout)[-1])
    assert len(names) > 20, names
    assert [n for n in names if f"Completed  {n}" not in text] == [], text


def nonce_versions() -> list[int]:
    found = aws("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [NONCE_PREFIX]}]
    )["Parameters"]
    return sorted(int(p["Name"].removeprefix(NONCE_PREFIX)) for p in found)


def pitr_status(table: str) -> str:
    status = aws("dynamodb").describe_continuous_backups(TableName=table)
    desc = status["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    return desc["PointInTimeRecoveryStatus"]


def test_on_staging_the_scripts_exit_with_their_runs(staging):
    """Three independent chains of script runs side by side (PITR, nonce, production verify)."""
    assert staging.returncode == 0, output(staging)
    assert nonce_versions() == [1]
    table = contract.name("staging", "consent")

    def pitr_chain() -> None:
        text = assert_outcome(script("verify-pitr.sh", "staging"), completed=True)
        assert "pitr-verification/on-demand: Completed" in text
        # Switched off out of band (a real UpdateContinuousBackups): read-only verify fails.
        aws("dynamodb").update_continuous_backups(
            TableName=table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False},
        )
        text = assert_outcome(script("verify-pitr.sh", "--env", "staging"), completed=False)
        assert f"{table}: PITR is DISABLED" in text
        assert pitr_status(table) == "DISABLED"  # read-only
        assert_outcome(script("verify-pitr.sh", "staging", "--enable"), completed=True)
        assert pitr_status(table) == "ENABLED"

    def nonce_chain() -> None:
        # The test rotation: v1 -> v2, checked during the grace period, rolled back.
        text = assert_outcome(script("test-nonce-rotation.sh", "staging"), completed=True)
        assert "nonce-rotation-test/on-demand: Completed" in text
        assert nonce_versions() == [1]
        # A real rotation; during its grace period another one (or the test) is refused.
        text = assert_outcome(script("rotate-nonce.sh", "staging", "1"), completed=True)
        assert "nonce-rotation/scheduled: Completed" in text
        assert nonce_versions() == [1, 2]
        again, nonce_test = together(
            ("rotate-nonce.sh", "--env", "staging"), ("test-nonce-rotation.sh", "staging")
        )
        assert "still in its grace period" in assert_outcome(again, completed=False)
        assert "still in its grace period" in assert_outcome(nonce_test, completed=False)
        assert nonce_versions() == [1, 2]

    def production_verify() -> None:
        # Production is not deployed in this account: both verify runs run and fail.
        done = script("deploy-production.sh", "--verify-only", "--backend", "sandbox")
        assert done.returncode == 1, output(done)
        assert "rollout:" not in done.stdout  # --verify-only
        verify_runs = run_ids(done.stdout)
        assert len(verify_runs) == 2, output(done)
        assert not any(final_state(r).is_completed() for r in verify_runs)
        assert "verify step failed (exit 1)" in done.stderr

    with ThreadPoolExecutor(3) as pool:
        # Each thread sees the session's Prefect settings (a context variable).
        chains = [
            pool.submit(contextvars.copy_context().run, f)
            for f in (pitr_chain, nonce_chain, production_verify)
        ]
        for chain in chains:
            chain.result()


def test_deploy_production_two_approvals_then_verify(deployed):
    reset_moto()  # staging and production cannot share the sandbox's one account
    running = Running.start(
        "deploy-production.sh", "--backend", "sandbox", "--approval-timeout", "120"
    )
    run_id = running.first_run_id()
    answered: set[str] = set()
    # Two registered keys: the sandbox's auto-reviewers (registered on the sandbox only).
    for nth in (1, 2):
        answered.add(wait_paused(run_id, answered))
        key = auto_reviewer_key_path(Path(env()["MIRROR_ROLLOUT_SANDBOX_REVIEWERS"]), nth)
        approve(run_id, None, "--key", str(key), "--comment", "scripts test")
    done = running.wait()
    assert done.returncode == 0, output(done)
    rollout, pitr_run, drift_run = run_ids(done.stdout)
    assert rollout == run_id
    assert all(final_state(r).is_completed() for r in (rollout, pitr_run, drift_run))
    assert "infra-rollout/production-rollout: Completed" in done.stdout
    assert "pitr-verification/on-demand: Completed" in done.stdout
    assert "drift-detection/daily: Completed" in done.stdout
    assert done.stdout.splitlines()[-1] == "deploy-production.sh: production verified"
