"""Running one Terraform command: its environment, its log, its listeners, its failure.

Every command runs in the working copy (``TF_IN_AUTOMATION=1``, ``TF_INPUT=0``, its own
data directory). A command that failed against a lock it had itself just taken (see
:mod:`terraform_locks`) removes that lock and runs again; any other failure is logged
with Terraform's output under a one-line summary and raised.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.errors import ConfigError, RolloutError
from mirror_rollout.provisioners.base import ApplyInterrupted, StateLocked
from mirror_rollout.provisioners.terraform_commands import command_lines, redact_argv
from mirror_rollout.provisioners.terraform_locks import OWN_LOCK_RECOVERIES, recoverable_own_lock
from mirror_rollout.provisioners.terraform_output import (
    Paragraphs,
    applied_addresses,
    failed_addresses,
    first_error_line,
    held_lock_id,
    in_flight_addresses,
    is_lock_failure,
    signal_name,
)

LOG = logging.getLogger("mirror_rollout.terraform")
#: Process-wide listeners told of every Terraform command that ran: (command, seconds).
#: The benchmark adds Terraform's own share of a rollout with one.
COMMAND_LISTENERS: list[Callable[[str, float], None]] = []

#: What to do about a failed command, by command (others: read the log).
_FIXES = {
    "init": "check the backend configuration and the cloud credentials "
    "(Terraform's output is in the log)",
    "plan": "fix the error Terraform names (configuration, variables or credentials), "
    "then plan again",
    "re-plan": "fix the error Terraform names, then run the rollout again",
}


#: Go's garbage-collection target for Terraform and the providers it starts, unless GOGC
#: is set already. hashicorp/aws builds its very large schema in every process Terraform
#: starts (three or more per plan); collecting at 400 % heap growth instead of Go's 100 %
#: cuts Terraform's CPU per rollout by about a quarter for more peak memory per process
#: (bench/terraform_gc.py has the figures). It changes when memory is freed, nothing else.
TERRAFORM_GOGC = "400"


class TerraformFailed(RolloutError):
    """A Terraform command failed; ``first_line`` is Terraform's own first error line."""

    first_line: str = ""
    command: str = ""


@dataclass
class Completed:
    name: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _run_logger() -> Any:
    """Prefect's run logger inside a flow or task run, else None (Prefect imported lazily)."""
    if "prefect" not in sys.modules:  # not imported: cannot be inside a Prefect run
        return None
    try:
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger
    except ImportError:  # pragma: no cover - prefect is a dependency
        return None
    try:
        return get_run_logger()
    except MissingContextError:
        return None


def log(level: int, message: str) -> None:
    """To the flow/task run's logger inside a Prefect run (console and UI), else to LOG.

    Not both: inside a run Prefect's console handler would print every line twice.
    """
    run_logger = _run_logger()
    (run_logger or LOG).log(level, message)


def failure_summary(result: Completed, *, show_stdout: bool) -> tuple[str, str | None]:
    """Pure: the one-line summary of a failed command, and Terraform's first error line."""
    stdout_line = first_error_line(result.stdout, fallback=result.name != "apply")
    line = first_error_line(result.stderr) or (stdout_line if show_stdout else None)
    summary = f"{result.name} failed (exit {result.returncode})"
    if result.returncode < 0:  # killed: whatever it printed last is no error of its own
        summary = f"{result.name} was killed by {signal_name(-result.returncode)}"
        line = None
    return (f"{summary}: {line}" if line else summary), line


def apply_interrupted(result: Completed, summary: str, environment: str) -> ApplyInterrupted:
    """Pure: what a failed or killed apply did, and what to do next."""
    done = applied_addresses(result.stdout)
    if result.returncode < 0:
        # Killed: during an apply Terraform writes state to the backend only from time to
        # time (and at the end), and releases the lock on exit: the last changes may be
        # missing from state, and the lock stays.
        in_flight = in_flight_addresses(result.stdout)
        return ApplyInterrupted(
            f"{summary} after {len(done)} change(s) completed"
            + (f", while {', '.join(in_flight)} were in progress" if in_flight else "")
            + "; a killed Terraform neither writes its last changes to state nor releases "
            "the state lock",
            "plan again: it names the lock to remove with `mirror-rollout force-unlock "
            f"LOCK_ID --env {environment}`; a plan that would create again what the "
            "killed apply created is refused with the `mirror-rollout adopt` command of each",
            address=in_flight[0] if in_flight else "(none in progress)",
            applied=len(done),
            cause=TerraformFailed(summary),
        )
    failed = failed_addresses(result.stderr)
    where = f"before {', '.join(failed)} failed" if failed else "before it failed"
    return ApplyInterrupted(
        f"{summary}; {len(done)} change(s) were applied and are in state {where}",
        "fix the cause named above, then run the rollout again: the new plan holds "
        "only what is left",
        address=failed[0] if failed else "(unknown)",
        applied=len(done),
        cause=TerraformFailed(summary),
    )


class TerraformRunner:
    """Runs Terraform's commands for one workspace in the working copy ``workdir``.

    The attributes are set by :class:`~.terraform_cli.TerraformCli`.
    """

    binary: str
    tool: str
    environment: str
    workspace: str
    root: Path
    source: Path
    workdir: Path
    var_file: Path
    data_dir: Path
    backend_config: dict[str, Any]
    extra_env: dict[str, str]
    mirror: Path | None
    backend: str | None
    #: Seconds spent per subcommand (the benchmark reports Terraform's share).
    timings: dict[str, float]

    def commands(self, plan_file: Path | str = "", lock_id: str = "") -> dict[str, list[str]]:
        return command_lines(
            self.binary,
            workspace=self.workspace,
            var_file=self.var_file.name,
            plan_file=plan_file,
            backend_config=self.backend_config,
            lock_id=lock_id,
        )

    def env(self) -> dict[str, str]:
        env = {**os.environ, **self.extra_env}
        # TF_WORKSPACE would override (and make `workspace select` fail); the workspace is ours.
        for key in ("TF_WORKSPACE", "TF_CLI_ARGS", "TF_CLI_ARGS_plan", "TF_CLI_ARGS_apply"):
            env.pop(key, None)
        env.update(
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            TF_DATA_DIR=str(self.data_dir),
            CHECKPOINT_DISABLE="1",
        )
        env.setdefault("GOGC", TERRAFORM_GOGC)
        if self.mirror is not None:
            env["TF_CLI_CONFIG_FILE"] = str(self.workdir / ".terraformrc")
        return env

    def start(self, argv: list[str], **popen: Any) -> subprocess.Popen:
        """``argv`` started as every command is: in the working copy, with :meth:`env`, no stdin."""
        try:
            return subprocess.Popen(
                argv, cwd=self.workdir, env=self.env(), stdin=subprocess.DEVNULL, **popen
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot run {self.binary}: {exc.strerror or exc}",
                "check that terraform is installed and executable",
            ) from None

    def _run(self, name: str, argv: list[str], **options: Any) -> Completed:
        """:meth:`_run_once` (same options), again after removing a lock this very command left behind.

        Only for RECOVERABLE_LOCKS, and only for a lock of this command's operation, by
        this user and host, created after the command started (see :mod:`terraform_locks`).
        """
        # Under load the same retried write can happen to the rerun too: a few times, then stop.
        for attempt in range(OWN_LOCK_RECOVERIES + 1):
            begun = datetime.now(UTC)
            try:
                return self._run_once(name, argv, **options)
            except StateLocked as error:
                locked = error
                lock = recoverable_own_lock(locked.output, name, begun)
                if lock is None or attempt == OWN_LOCK_RECOVERIES:
                    raise
            log(
                logging.WARNING,
                f"{self.tool} {name} failed against the lock {lock} it had itself just taken "
                "(a retried lock write); removing that lock and running the command again",
            )
            self._remove_own_lock(name, lock, locked)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _remove_own_lock(self, name: str, lock: str, locked: StateLocked) -> None:
        if name != "workspace select or create":
            self._run_once("force-unlock", self.commands(lock_id=lock)["force-unlock"])
            return
        # Terraform's force-unlock needs the workspace, which this lock kept from being
        # created: release exactly that lock item, as Terraform's unlock would.
        from mirror_rollout.provisioners.state_backend import read_backend, release_lock

        spec = read_backend(self.source)
        if spec is None:
            raise locked
        release_lock(spec, self.workspace, lock)

    def _run_once(
        self,
        name: str,
        argv: list[str],
        *,
        echo: int | None = logging.DEBUG,
        check: bool = True,
        ok_codes: tuple[int, ...] = (0,),
    ) -> Completed:
        """Run one command; stdout lines are logged at ``echo`` (None: never, it holds state).

        With ``check``, an exit code outside ``ok_codes`` logs the one-line summary
        with Terraform's output unchanged under it (ERROR) and raises RolloutError
        (StateLocked for a held lock).
        """
        log(echo or logging.DEBUG, "$ " + shlex.join([self.tool, *redact_argv(argv)[1:]]))
        started = time.monotonic()
        proc = self.start(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        stdout, stderr = proc.stdout, proc.stderr
        assert stdout is not None and stderr is not None  # both are pipes
        stderr_parts: list[str] = []
        reader = threading.Thread(target=lambda: stderr_parts.append(stderr.read()))
        reader.start()
        stdout_lines = []
        paragraphs = Paragraphs()
        try:
            for line in stdout:
                stdout_lines.append(line)
                if echo is not None:
                    for message in paragraphs.feed(line):
                        log(echo, message)
            if echo is not None:
                for message in paragraphs.flush():
                    log(echo, message)
            returncode = proc.wait()
        except BaseException:
            # Ctrl-C reached Terraform too: let it stop cleanly and release the state lock.
            proc.wait()
            raise
        finally:
            reader.join()
        result = Completed(
            name,
            returncode,
            "".join(stdout_lines),
            "".join(stderr_parts),
            round(time.monotonic() - started, 3),
        )
        if returncode not in ok_codes and check:
            self._fail(result, show_stdout=echo is not None)
        self._ran(result, echo=echo, ok=returncode in ok_codes)
        return result

    def _ran(self, result: Completed, *, echo: int | None, ok: bool) -> None:
        """Log what was not echoed, and tell the timings and listeners."""
        if echo is None:
            log(logging.DEBUG, f"{self.tool} {result.name}: {len(result.stdout)} bytes of output")
        if result.stderr.strip() and ok:  # warnings on success
            log(
                logging.WARNING,
                f"{self.tool} {result.name} (exit {result.returncode}):\n{result.stderr.rstrip()}",
            )
        self.timings[result.name] = self.timings.get(result.name, 0.0) + result.seconds
        for listener in COMMAND_LISTENERS:
            listener(result.name, result.seconds)

    def _fail(self, result: Completed, *, show_stdout: bool) -> None:
        summary, line = failure_summary(result, show_stdout=show_stdout)
        summary = f"{self.tool} {summary}"
        output = result.stderr.rstrip()
        if show_stdout and result.stdout.strip():
            output = f"{output}\n{result.stdout.rstrip()}".strip("\n")
        log(logging.ERROR, f"{summary}\n{output}" if output else summary)
        if is_lock_failure(result.stderr):
            locked = StateLocked(
                f"{summary} (workspace {self.workspace})",
                "wait for the other plan/apply to finish; if it died, run "
                f"`{self.force_unlock_command(held_lock_id(result.stderr))}`",
            )
            locked.output = result.stderr + result.stdout
            raise locked
        if result.name == "apply":
            raise apply_interrupted(result, summary, self.environment)
        error = TerraformFailed(
            summary, _FIXES.get(result.name, "Terraform's output is in the log")
        )
        error.first_line, error.command = line or "", result.name
        raise error

    def force_unlock_command(self, lock_id: str) -> str:
        """The ``mirror-rollout force-unlock`` command line that releases ``lock_id`` of this state."""
        argv = ["mirror-rollout", "force-unlock", lock_id, "--env", self.environment]
        if self.root != Path(PROJECT_ROOT).resolve():
            argv += ["--root", str(self.root)]
        if self.backend not in (None, "sandbox"):  # the command's default backend is sandbox
            argv += ["--backend", self.backend]
        return shlex.join(argv)
