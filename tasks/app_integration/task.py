"""Prefect glue of stage ``app-integration-{env}``: the Oracle's own integration suite, run from
its checkout against the environment, told the environment's names from Terraform's outputs.

Configured by the flow parameters ``oracle_repo`` / ``oracle_test_command``, else the Prefect
variables of the same names (a deployment sets them once); SKIPPED when neither is set.
The suite may write JUnit XML to ``$MIRROR_ROLLOUT_REPORT_DIR`` (or ``junit*.xml`` in the
checkout): its counts and first failures are the evidence. Credentials pass through from the
worker's environment and never reach a result.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from mirror_rollout.aws import sandbox_account
from mirror_rollout.results import CheckResult
from mirror_rollout.target import RolloutTarget
from tasks.app_integration.checks import (
    expand,
    judge,
    misconfigured,
    missing_outputs,
    read_junit,
    skipped,
    suite_environment,
)
from tasks.common import publish_or_fail

REPO_VARIABLE = "oracle_repo"
COMMAND_VARIABLE = "oracle_test_command"
REPORT_DIR_VARIABLE = "MIRROR_ROLLOUT_REPORT_DIR"
#: Credentials the suite inherits but no output or result may show.
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
TAIL_LINES = 3


def configured(value: str | None, variable: str) -> str | None:
    """A flow parameter, else the Prefect variable of that name, else None."""
    if value:
        return value
    from prefect.variables import Variable

    found = Variable.get(variable, default=None)
    return str(found) if found else None


def _reports(report_dir: Path, checkout: Path, since: float) -> dict[str, str]:
    """JUnit files the run wrote: all XML in the report dir, junit*.xml in the checkout."""
    paths = list(report_dir.glob("*.xml")) + [
        p for p in checkout.glob("**/junit*.xml") if "node_modules" not in p.parts
    ]
    return {
        str(p): p.read_text(errors="replace")
        for p in sorted(set(paths))
        if p.is_file() and p.stat().st_mtime >= since
    }


def _locate(program: str, checkout: Path, path: str | None) -> str | None:
    """The program's file: a path (relative to the checkout) or a name on PATH."""
    if "/" in program:
        candidate = Path(program) if Path(program).is_absolute() else checkout / program
        return str(candidate) if candidate.is_file() else None
    return shutil.which(program, path=path)


def _redacted(line: str, env: dict[str, str]) -> str:
    for name in SECRET_VARIABLES:
        if env.get(name):
            line = line.replace(env[name], "***")
    return line


def run_suite(
    environment: str,
    region: str,
    outputs: dict[str, Any],
    oracle_repo: str | None,
    oracle_test_command: str | None,
    report_dir: Path,
    timeout_seconds: float = 1800.0,
) -> CheckResult:
    if not oracle_repo and not oracle_test_command:
        return skipped()
    if not oracle_repo or not oracle_test_command:
        unset = "oracle_repo" if not oracle_repo else "oracle_test_command"
        return misconfigured(
            f"{unset} is not set while the other one is",
            "set both (flow parameters or Prefect variables), or neither to skip the stage",
            oracle_repo=oracle_repo,
            command=oracle_test_command,
        )
    checkout = Path(oracle_repo).expanduser()
    if not checkout.is_dir():
        return misconfigured(
            f"oracle_repo {oracle_repo} is not a directory",
            "point oracle_repo at a checkout of the Oracle (the Phase Mirror repository)",
            oracle_repo=oracle_repo,
        )
    try:
        argv = shlex.split(oracle_test_command)
    except ValueError as exc:
        return misconfigured(
            f"oracle_test_command cannot be split into words ({exc})",
            "fix its quoting",
            command=oracle_test_command,
        )
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    names = suite_environment(outputs, region, endpoint)
    names[REPORT_DIR_VARIABLE] = str(report_dir)
    account = sandbox_account(environment)
    if account:  # the sandbox keeps this environment in a moto account of its own
        names["MOTO_ACCOUNT_ID"] = account
    env = {**os.environ, **names}
    argv = expand(argv, env)
    program = argv[0] if argv else ""
    if not program or not _locate(program, checkout, env.get("PATH")):
        return misconfigured(
            f"oracle_test_command: `{program}` is not found"
            + (" on PATH" if "/" not in program else ""),
            "install it on the worker or fix oracle_test_command",
            command=oracle_test_command,
        )
    report_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    process = subprocess.Popen(
        argv,
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group: a timeout stops the whole suite
    )
    returncode: int | None
    try:
        output, _ = process.communicate(timeout=timeout_seconds)
        returncode = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        returncode = None
    tail.extend(_redacted(line, env) for line in output.splitlines() if line.strip())
    junit = read_junit(_reports(report_dir, checkout, started))
    shown = {k: v for k, v in names.items() if k not in SECRET_VARIABLES}
    return judge(
        oracle_test_command,
        returncode,
        time.time() - started,
        junit,
        list(tail),
        shown,
        timeout_seconds,
    )


@task(
    name="app-integration",
    task_run_name="app-integration-{target.environment}",
    cache_policy=NO_CACHE,
)
def app_integration(
    target: RolloutTarget,
    outputs: dict[str, Any],
    out_dir: str,
    oracle_repo: str | None = None,
    oracle_test_command: str | None = None,
    timeout_seconds: float = 1800.0,
) -> list[CheckResult]:
    """Run the Oracle's suite; artifact ``{env}-app-integration``; ValidationFailed on FAIL."""
    environment, region = target.environment, target.region
    repo = configured(oracle_repo, REPO_VARIABLE)
    command = configured(oracle_test_command, COMMAND_VARIABLE)
    result = run_suite(
        environment,
        region,
        outputs,
        repo,
        command,
        Path(out_dir) / "app-integration",
        timeout_seconds,
    )
    lacking = missing_outputs(outputs)
    if lacking and result.evidence:
        result.evidence[0].observed["outputs_not_known"] = lacking
    return publish_or_fail(
        f"{environment}-app-integration",
        [result],
        f"Oracle integration suite ({environment})",
        f"the Oracle's integration suite failed against {environment}",
    )
