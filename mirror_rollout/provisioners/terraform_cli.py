"""The one provisioner: the Terraform CLI with the real providers, on AWS and on the sandbox.

Every command runs in the run's own working copy of the root's
``infra/terraform`` (``TF_IN_AUTOMATION=1``, ``TF_INPUT=0``, its own data
directory), so nothing is ever written under ``infra/`` and two runs never
share ``.terraform``. On the sandbox the working copy also holds the generated
``sandbox_override.tf`` (see :mod:`sandbox_override`), and the S3 backend is
pointed at moto through ``-backend-config``; the code path is otherwise the
one used against AWS.

``plan`` writes three files into the output directory:

- ``<workspace>.tfplan``: Terraform's binary plan; its sha256 is what a
  reviewer approves and the only thing ``apply`` will run;
- ``<workspace>.tfplan.json``: ``terraform show -json`` of it (format 1.2), the
  review document;
- ``<workspace>.tfplan.meta.json``: the state serial and lineage the plan was
  made against, so ``apply`` can refuse a stale plan before touching anything
  (Terraform itself would also refuse it, with "Saved plan is stale").

The JSON holds the planned values in full, as the binary plan does: keep both
where the state is kept. (This root has no secret in state: the nonce is not a
Terraform resource.)

The pure parts (argv construction, parsing of ``state pull``, ``output -json``,
apply progress and error output) are module functions, tested without any binary.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.environments import (
    Environment,
    parse_environment,
    terraform_dir,
    tfvars_path,
)
from mirror_rollout.errors import ConfigError, RolloutError
from mirror_rollout.provisioners.base import (
    AppliedChange,
    ApplyInterrupted,
    ApplyRefused,
    ApplyResult,
    PlanResult,
    StateLocked,
    verify_plan_file,
)
from mirror_rollout.provisioners.document import (
    PlanDocument,
    sha256_file,
    summarize,
    unchanged_summary,
)
from mirror_rollout.provisioners.sandbox_override import OVERRIDE_FILE, SandboxGap, excluded
from mirror_rollout.provisioners.terraform_binary import cli_config, find_terraform, plugin_mirror

LOG = logging.getLogger("mirror_rollout.terraform")
#: Process-wide listeners told of every Terraform command that ran: (command, seconds).
#: The benchmark adds Terraform's own share of a rollout with one.
COMMAND_LISTENERS: list[Callable[[str, float], None]] = []

META_FORMAT = "mirror-rollout-terraform-plan-meta/1"
#: Backend settings whose values never reach the log.
SECRET_BACKEND_KEYS = frozenset({"access_key", "secret_key", "token", "sse_customer_key"})
WORKSPACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BOX = "╷│╵ \t"
_COMPLETE = re.compile(
    r"^(?P<address>.+?): (?:Creation|Modifications|Destruction) complete after "
    r"(?P<duration>(?:\d+h)?(?:\d+m)?\d+s)\b"
)
_STARTED = re.compile(r"^(?P<address>.+?): (?:Creating|Modifying|Destroying)\.\.\.")
_LOCK_ID = re.compile(r"^\s*ID:\s+(?P<id>\S+)")
_WITH = re.compile(r"^\s*with (?P<address>[^,]+),\s*$")
#: What a working copy never takes from the root: Terraform's own data and local state.
_NOT_COPIED = shutil.ignore_patterns(
    ".terraform", ".terraform-data", "*.tfstate", "*.tfstate.*", "*.tfplan", OVERRIDE_FILE
)


# -- pure helpers --------------------------------------------------------------------
def render_backend_value(value: Any) -> str:
    """A ``-backend-config`` value: strings as is, bools/numbers as HCL, maps/lists as HCL literals.

    Terraform parses the value of a non-string backend attribute as an HCL
    expression, so ``{"s3": "http://…"}`` becomes ``{s3="http://…"}``.
    """
    if isinstance(value, str):
        return value
    return _hcl_literal(value)


def _hcl_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value).replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}={_hcl_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_hcl_literal(v) for v in value) + "]"
    raise ConfigError(
        f"backend config value {value!r} has unsupported type {type(value).__name__}",
        "use strings, numbers, booleans, lists or maps",
    )


def backend_config_args(backend_config: Mapping[str, Any] | None) -> list[str]:
    return [
        f"-backend-config={k}={render_backend_value(v)}" for k, v in (backend_config or {}).items()
    ]


def command_lines(
    binary: str,
    *,
    workspace: str,
    var_file: Path | str,
    plan_file: Path | str,
    backend_config: Mapping[str, Any] | None = None,
    lock_id: str = "",
) -> dict[str, list[str]]:
    """Pure: every argv the provisioner runs, keyed by the subcommand's name."""
    return {
        "init": [
            binary,
            "init",
            "-input=false",
            "-no-color",
            "-reconfigure",
            *backend_config_args(backend_config),
        ],
        "workspace select": [binary, "workspace", "select", "-no-color", workspace],
        "workspace new": [binary, "workspace", "new", "-no-color", workspace],
        "workspace select or create": [
            binary,
            "workspace",
            "select",
            "-or-create",
            "-no-color",
            workspace,
        ],
        "state pull": [binary, "state", "pull", "-no-color"],
        "plan": [
            binary,
            "plan",
            "-input=false",
            "-no-color",
            f"-var-file={var_file}",
            f"-out={plan_file}",
        ],
        # The re-plan: refreshes, exits 2 when anything would change (0: none).
        "re-plan": [
            binary,
            "plan",
            "-input=false",
            "-no-color",
            "-detailed-exitcode",
            f"-var-file={var_file}",
            f"-out={plan_file}",
        ],
        "show": [binary, "show", "-json", "-no-color", str(plan_file)],
        "apply": [binary, "apply", "-input=false", "-no-color", str(plan_file)],
        "output": [binary, "output", "-json", "-no-color"],
        "force-unlock": [binary, "force-unlock", "-force", "-no-color", lock_id],
        "version": [binary, "version", "-json"],
        "validate": [binary, "validate", "-no-color"],
    }


def redact_argv(argv: list[str]) -> list[str]:
    """The argv as logged: values of secret backend settings replaced by ``***``."""
    out = []
    for arg in argv:
        if arg.startswith("-backend-config="):
            key = arg.removeprefix("-backend-config=").partition("=")[0]
            if key in SECRET_BACKEND_KEYS:
                arg = f"-backend-config={key}=***"
        out.append(arg)
    return out


def parse_state_header(text: str) -> tuple[int, str] | None:
    """``(serial, lineage)`` of ``terraform state pull`` output; None when there is no state yet."""
    if not text.strip():
        return None
    try:
        state = json.loads(text)
        return int(state["serial"]), str(state["lineage"])
    except (ValueError, TypeError, KeyError) as exc:
        raise RolloutError(
            f"`state pull` printed something that is not a Terraform state ({exc.__class__.__name__})",
            "check the backend configuration; the log has the command line",
        ) from None


def planned_state(plan_file: Path) -> str:
    """The prior state a saved plan was made against (its ``tfstate`` member), "" if none."""
    try:
        with zipfile.ZipFile(plan_file) as archive:
            return archive.read("tfstate").decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile):
        return ""


def parse_outputs(json_text: str) -> dict[str, Any]:
    """Values of ``terraform output -json``, sensitive outputs left out."""
    if not json_text.strip():
        return {}
    try:
        outputs = json.loads(json_text)
    except ValueError:
        raise RolloutError(
            "`output -json` printed something that is not JSON",
            "run `terraform output -json` in infra/terraform to see what it prints",
        ) from None
    return {
        name: spec.get("value")
        for name, spec in outputs.items()
        if isinstance(spec, dict) and not spec.get("sensitive")
    }


def first_error_line(text: str, *, fallback: bool = True) -> str | None:
    """The first ``Error:`` line of Terraform's output (boxes and colours removed).

    With ``fallback``, the first non-empty line when there is no ``Error:`` (some
    failures, e.g. of ``workspace select``, print none); None for empty output.
    Progress output (apply's stdout) is read without it: its first line is no error.
    """
    lines = [_ANSI.sub("", line).strip(_BOX).rstrip() for line in text.splitlines()]
    for line in lines:
        if line.startswith("Error:"):
            return line
    return next((line for line in lines if line), None) if fallback else None


def parse_duration(text: str) -> float:
    """Terraform's ``1h2m3s`` / ``45s`` as seconds."""
    seconds = 0.0
    for amount, unit in re.findall(r"(\d+)([hms])", text):
        seconds += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return seconds


def parse_apply_timings(stdout: str) -> dict[str, float]:
    """Seconds per address from apply's ``…: Creation complete after 12s`` lines (a replace sums both)."""
    timings: dict[str, float] = {}
    for line in stdout.splitlines():
        match = _COMPLETE.match(line.strip())
        if match:
            address = match["address"]
            timings[address] = timings.get(address, 0.0) + parse_duration(match["duration"])
    return timings


#: The lock operation each locking command writes into the lock's info.
_LOCK_OPERATIONS = {
    "workspace select or create": "init",
    "workspace new": "init",
    "plan": "OperationTypePlan",
    "re-plan": "OperationTypePlan",
    "apply": "OperationTypeApply",
    "import": "OperationTypeApply",
}


#: Commands whose own stale lock :meth:`TerraformCli._run` removes: a command that failed
#: to take its lock changed nothing. (Applies run inside a rollout, which holds the
#: environment's slot, so no other apply of this environment can own a lock taken here
#: after this one started.)
RECOVERABLE_LOCKS = frozenset({"plan", "re-plan", "workspace select or create", "apply"})
#: How many times in a row one command may remove its own stale lock and run again.
OWN_LOCK_RECOVERIES = 3


def lock_owner() -> str:
    """``user@host`` as Terraform writes it into a lock's ``Who``."""
    import getpass
    import socket

    return f"{getpass.getuser()}@{socket.gethostname()}"


def own_lock(output: str, command: str, begun: datetime, owner: str) -> str | None:
    """Pure: the id of the lock ``command`` failed against, if that command took it itself.

    That is: Terraform's lock info names this command's operation and ``owner``, and
    the lock was created after ``begun`` (when the command started).
    """
    info = {}
    for line in output.replace("│", " ").splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key in ("ID", "Operation", "Who", "Created"):
            info[key] = value.strip()
    if "ConditionalCheckFailed" not in output or not info.get("ID"):
        return None
    if info.get("Operation") != _LOCK_OPERATIONS.get(command) or info.get("Who") != owner:
        return None
    match = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d+))?", info.get("Created", ""))
    if not match:
        return None
    created = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    created += timedelta(microseconds=int((match[2] or "0")[:6].ljust(6, "0")))
    # Same machine, same clock: a lock dated before the command began is someone else's.
    return info["ID"] if created >= begun else None


def applied_addresses(stdout: str) -> list[str]:
    """Addresses apply finished (created, changed or destroyed), in order, each once.

    A replace prints two completions (destroy, then create) for one change.
    """
    done = [m["address"] for m in map(_COMPLETE.match, map(str.strip, stdout.splitlines())) if m]
    return list(dict.fromkeys(done))


def in_flight_addresses(stdout: str) -> list[str]:
    """Addresses apply had started (``Creating...`` ...) and not finished, in order."""
    started = [m["address"] for m in map(_STARTED.match, map(str.strip, stdout.splitlines())) if m]
    done = set(applied_addresses(stdout))
    return [a for a in dict.fromkeys(started) if a not in done]


def failed_addresses(output: str) -> list[str]:
    """Addresses named by apply's errors (``with aws_x.y,`` under each ``Error:``), in order."""
    found = []
    for line in output.splitlines():
        match = _WITH.match(_ANSI.sub("", line).strip(_BOX))
        if match and match["address"] not in found:
            found.append(match["address"])
    return found


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; the number when the platform has no name for it."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class PlanMeta(BaseModel):
    """The sidecar ``<plan>.meta.json``: what the plan was made against."""

    format: str = META_FORMAT
    environment: str
    workspace: str
    sha256: str
    prior_serial: int | None = None
    prior_lineage: str | None = None
    terraform_version: str | None = None

    @property
    def prior(self) -> tuple[int, str] | None:
        if self.prior_serial is None or self.prior_lineage is None:
            return None
        return self.prior_serial, self.prior_lineage


def meta_path(plan_file: Path) -> Path:
    return plan_file.with_name(plan_file.name + ".meta.json")


def json_path(plan_file: Path) -> Path:
    return plan_file.with_name(plan_file.name + ".json")


def _describe(header: tuple[int, str] | None) -> str:
    return "no state" if header is None else f"serial {header[0]} of lineage {header[1]}"


# -- logging -------------------------------------------------------------------------
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


def _log(level: int, message: str) -> None:
    """To the flow/task run's logger inside a Prefect run (console and UI), else to LOG.

    Not both: inside a run Prefect's console handler would print every line twice.
    """
    run_logger = _run_logger()
    (run_logger or LOG).log(level, message)


@dataclass
class Completed:
    name: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float


# -- the provisioner -----------------------------------------------------------------
class TerraformCli:
    """Drives ``terraform`` for one environment (workspace) in a working copy of the root.

    ``work_dir`` receives a copy of ``<root>/infra/terraform`` (plus ``override``,
    the sandbox's ``sandbox_override.tf``, when given) and Terraform's data
    directory. ``backend_config`` adds ``-backend-config=key=value`` to ``init``
    on top of the ``backend "s3"`` block (maps and lists are rendered as HCL).
    ``extra_env`` is added to every command's environment (credentials, region).
    ``backend`` ("sandbox" or "aws") only completes the commands suggested to operators.
    """

    name = "terraform"

    def __init__(
        self,
        environment: Environment | str,
        *,
        work_dir: Path,
        root: Path | None = None,
        workspace: str | None = None,
        backend_config: Mapping[str, Any] | None = None,
        extra_env: Mapping[str, str] | None = None,
        override: str | None = None,
        gaps: list[SandboxGap] | None = None,
        binary: str | None = None,
        backend: str | None = None,
        keep_copy: bool = False,
    ):
        self.root = Path(root or PROJECT_ROOT).resolve()
        self.environment = parse_environment(environment, self.root)
        self.workspace = workspace or self.environment
        if not WORKSPACE_NAME.match(self.workspace):
            raise ConfigError(
                f"workspace name {self.workspace!r} is not valid",
                "use letters, digits, '-', '_' and '.'",
            )
        self.source = terraform_dir(self.root)
        if not self.source.is_dir():
            raise ConfigError(
                f"{self.source} does not exist", "pass the project root that holds infra/terraform"
            )
        if not tfvars_path(self.environment, self.root).is_file():
            raise ConfigError(
                f"{tfvars_path(self.environment, self.root)} does not exist",
                f"create {self.environment}.tfvars next to the .tf files",
            )
        self.binary, version = find_terraform(binary)
        self.version = ".".join(map(str, version))
        self.tool = Path(self.binary).name
        self.workdir = Path(work_dir).resolve()
        self.var_file = self.workdir / f"{self.environment}.tfvars"
        self.data_dir = self.workdir / ".terraform"
        self.backend_config = dict(backend_config or {})
        self.extra_env = dict(extra_env or {})
        self.override = override
        #: A later step of a run (apply, re-plan, orphan scan) works on the copy its plan
        #: made, even if the root changed since: the re-plan checks the applied code.
        self.keep_copy = keep_copy
        self.gaps = list(gaps or [])
        #: "sandbox" or "aws" when known (named in the force-unlock command of a held lock).
        self.backend = backend
        self.mirror = plugin_mirror()
        #: Seconds spent per subcommand (the benchmark reports Terraform's share).
        self.timings: dict[str, float] = {}
        self._prepared = False

    # -- working copy --------------------------------------------------------------------
    def _working_copy(self) -> None:
        """Copy the root's .tf (and modules) into the working copy; add the override, CLI config.

        Steps of one run share the working copy (some concurrently: the re-plan beside the
        orphan scan), so an up-to-date copy is left alone rather than rewritten under them.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        marker = self.workdir / ".mirror-rollout-copy"
        if self.keep_copy and marker.is_file():
            return
        fingerprint = self._source_fingerprint()
        if marker.is_file() and marker.read_text() == fingerprint:
            return
        for old in self.workdir.iterdir():  # the root's files as they are now, nothing stale
            if old.name in (".terraform", ".terraform.lock.hcl", ".terraformrc"):
                continue
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
        shutil.copytree(self.source, self.workdir, ignore=_NOT_COPIED, dirs_exist_ok=True)
        if self.override is not None:
            (self.workdir / OVERRIDE_FILE).write_text(self.override)
        if self.mirror is not None:
            (self.workdir / ".terraformrc").write_text(cli_config(self.mirror))
        marker.write_text(fingerprint)

    def _source_fingerprint(self) -> str:
        digest = hashlib.sha256()
        ignored = {".terraform", ".terraform-data"}
        for path in sorted(self.source.rglob("*")):
            relative = path.relative_to(self.source)
            if path.is_file() and not ignored & set(relative.parts):
                digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
        digest.update((self.override or "").encode() + str(self.mirror).encode())
        return digest.hexdigest()

    # -- commands ------------------------------------------------------------------------
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
        if self.mirror is not None:
            env["TF_CLI_CONFIG_FILE"] = str(self.workdir / ".terraformrc")
        return env

    def _run(self, name: str, argv: list[str], **options: Any) -> Completed:
        """:meth:`_run_once` (same options), again once after removing a lock this very command left behind.

        A lock write the SDK retried after its first attempt had landed fails against
        the lock it just created, and that lock is never released (a known S3-backend
        failure mode, seen here under load: moto logs the first PutItem answered 200 and
        a second one, a second later, 400). Only for RECOVERABLE_LOCKS, and only for a
        lock of this command's operation, by this user and host, created after the
        command started.
        """
        # Under load the same retried write can happen to the rerun too: a few times, then stop.
        for attempt in range(OWN_LOCK_RECOVERIES + 1):
            begun = datetime.now(UTC)
            try:
                return self._run_once(name, argv, **options)
            except StateLocked as error:
                locked = error
                lock = own_lock(locked.output, name, begun, lock_owner())
                if lock is None or name not in RECOVERABLE_LOCKS or attempt == OWN_LOCK_RECOVERIES:
                    raise
            _log(
                logging.WARNING,
                f"{self.tool} {name} failed against the lock {lock} it had itself just taken "
                "(a retried lock write); removing that lock and running the command again",
            )
            if name == "workspace select or create":
                # Terraform's force-unlock needs the workspace, which this lock kept from being
                # created: release exactly that lock item, as Terraform's unlock would.
                from mirror_rollout.provisioners.state_backend import read_backend, release_lock

                spec = read_backend(self.source)
                if spec is None:
                    raise locked
                release_lock(spec, self.workspace, lock)
            else:
                self._run_once("force-unlock", self.commands(lock_id=lock)["force-unlock"])
        raise AssertionError("unreachable: the last attempt returns or raises")

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
        _log(echo or logging.DEBUG, "$ " + shlex.join([self.tool, *redact_argv(argv)[1:]]))
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot run {self.binary}: {exc.strerror or exc}",
                "check that terraform is installed and executable",
            ) from None
        stderr_parts: list[str] = []
        reader = threading.Thread(target=lambda: stderr_parts.append(proc.stderr.read()))
        reader.start()
        stdout_lines = []
        try:
            for line in proc.stdout:
                stdout_lines.append(line)
                if echo is not None:
                    _log(echo, line.rstrip("\n"))
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
        if echo is None:
            _log(logging.DEBUG, f"{self.tool} {name}: {len(result.stdout)} bytes of output")
        if result.stderr.strip() and returncode in ok_codes:  # warnings on success
            _log(
                logging.WARNING,
                f"{self.tool} {name} (exit {returncode}):\n{result.stderr.rstrip()}",
            )
        self.timings[name] = self.timings.get(name, 0.0) + result.seconds
        for listener in COMMAND_LISTENERS:
            listener(name, result.seconds)
        return result

    def _fail(self, result: Completed, *, show_stdout: bool) -> None:
        stdout_line = first_error_line(result.stdout, fallback=result.name != "apply")
        line = first_error_line(result.stderr) or (stdout_line if show_stdout else None)
        summary = f"{self.tool} {result.name} failed (exit {result.returncode})"
        if result.returncode < 0:  # killed: whatever it printed last is no error of its own
            summary = f"{self.tool} {result.name} was killed by {signal_name(-result.returncode)}"
            line = None
        if line:
            summary += f": {line}"
        output = result.stderr.rstrip()
        if show_stdout and result.stdout.strip():
            output = f"{output}\n{result.stdout.rstrip()}".strip("\n")
        _log(logging.ERROR, f"{summary}\n{output}" if output else summary)
        if "Error acquiring the state lock" in result.stderr or "failed to lock" in result.stderr:
            lock_id = next(
                (
                    m["id"]
                    for m in map(_LOCK_ID.match, result.stderr.replace("│", " ").splitlines())
                    if m
                ),
                "<ID>",
            )
            locked = StateLocked(
                f"{summary} (workspace {self.workspace})",
                "wait for the other plan/apply to finish; if it died, run "
                f"`{self.force_unlock_command(lock_id)}`",
            )
            locked.output = result.stderr + result.stdout
            raise locked
        if result.name == "apply":
            self._interrupted(result, summary)
        fixes = {
            "init": "check the backend configuration and the cloud credentials "
            "(Terraform's output is in the log)",
            "plan": "fix the error Terraform names (configuration, variables or credentials), "
            "then plan again",
            "re-plan": "fix the error Terraform names, then run the rollout again",
        }
        error = TerraformFailed(summary, fixes.get(result.name, "Terraform's output is in the log"))
        error.first_line, error.command = line or "", result.name
        raise error

    def _interrupted(self, result: Completed, summary: str) -> None:
        done = applied_addresses(result.stdout)
        if result.returncode < 0:
            # Killed: during an apply Terraform writes state to the backend only from time to
            # time (and at the end), and releases the lock on exit: the last changes may be
            # missing from state, and the lock stays.
            in_flight = in_flight_addresses(result.stdout)
            raise ApplyInterrupted(
                f"{summary} after {len(done)} change(s) completed"
                + (f", while {', '.join(in_flight)} were in progress" if in_flight else "")
                + "; a killed Terraform neither writes its last changes to state nor releases "
                "the state lock",
                "plan again: it names the lock to remove with `mirror-rollout force-unlock "
                f"LOCK_ID --env {self.environment}`; a plan that would create again what the "
                "killed apply created is refused with the `mirror-rollout adopt` command of each",
                address=in_flight[0] if in_flight else "(none in progress)",
                applied=len(done),
                cause=TerraformFailed(summary),
            )
        failed = failed_addresses(result.stderr)
        where = f"before {', '.join(failed)} failed" if failed else "before it failed"
        raise ApplyInterrupted(
            f"{summary}; {len(done)} change(s) were applied and are in state {where}",
            "fix the cause named above, then run the rollout again: the new plan holds "
            "only what is left",
            address=failed[0] if failed else "(unknown)",
            applied=len(done),
            cause=TerraformFailed(summary),
        )

    def _prepare(self, *, create_workspace: bool = True) -> None:
        """Working copy, ``init`` and the workspace selected (or created), once per instance.

        Reads and repairs pass ``create_workspace=False``: an environment that was never
        planned raises :class:`NoWorkspace` rather than getting an empty state.
        """
        if self._prepared:
            return
        self._working_copy()
        commands = self.commands()
        # A working copy already initialised with these exact init arguments (an earlier
        # step of the same run) is reused: same backend, same providers, same lock file.
        marker = self.data_dir / "mirror-rollout-init"
        fingerprint = json.dumps([redact_argv(commands["init"]), str(self.mirror)])
        if not (marker.is_file() and marker.read_text() == fingerprint):
            self._run("init", commands["init"])
            marker.write_text(fingerprint)
        selected_file = self.data_dir / "environment"  # where Terraform keeps the selection
        current = selected_file.read_text().strip() if selected_file.is_file() else "default"
        if current != self.workspace and create_workspace:
            self._run("workspace select or create", commands["workspace select or create"])
        elif current != self.workspace:
            selected = self._run("workspace select", commands["workspace select"], check=False)
            if selected.returncode != 0:
                raise NoWorkspace(
                    f"{self.environment} has no Terraform state yet (no workspace "
                    f"{self.workspace!r} in the backend)",
                    f"plan and apply {self.environment} first (mirror-rollout rehearse)",
                )
        self._prepared = True

    def _state_header(self) -> tuple[int, str] | None:
        return parse_state_header(
            self._run("state pull", self.commands()["state pull"], echo=None).stdout
        )

    def state_document(self) -> dict[str, Any]:
        """The workspace's current state (``terraform state pull``), {} when there is none."""
        try:
            self._prepare(create_workspace=False)
        except NoWorkspace:
            return {}
        text = self._run("state pull", self.commands()["state pull"], echo=None).stdout
        return json.loads(text) if text.strip() else {}

    def _show(self, plan_file: Path) -> tuple[PlanDocument, str]:
        text = self._run("show", self.commands(plan_file)["show"], echo=None).stdout
        try:
            document = PlanDocument.model_validate_json(text)
        except ValidationError as exc:
            raise RolloutError(
                f"`{self.tool} show -json` did not print a plan document: "
                f"{exc.errors()[0]['msg']} at {'.'.join(map(str, exc.errors()[0]['loc']))}",
                "use Terraform >= 1.11; the log has the command line",
            ) from None
        document.check_version()
        return document, text

    # -- plan ----------------------------------------------------------------------------
    def plan(self, out_dir: Path, *, replan: bool = False) -> PlanResult:
        """Plan into ``out_dir``; ``replan`` adds ``-detailed-exitcode`` (exit 2: changes)."""
        out_dir = Path(out_dir).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        plan_file = out_dir / f"{self.workspace}.tfplan"
        for stale in (plan_file, json_path(plan_file), meta_path(plan_file)):
            stale.unlink(missing_ok=True)  # a failed plan must not leave an older one behind
        self._prepare()
        name = "re-plan" if replan else "plan"
        if replan:
            # Nobody applies a re-plan: the state it was made against, as the plan file
            # keeps it, is enough (and saves a `state pull` on the way to the checklist).
            done = self._run(
                name, self.commands(plan_file)[name], echo=logging.INFO, ok_codes=(0, 2)
            )
            pulled = planned_state(plan_file)
        else:
            # The state is read beside the plan, not before it: a read that lands before the
            # plan takes the lock can only see an older state than the plan's (writers hold
            # the lock), and an older prior only makes the apply refuse the plan as stale.
            with ThreadPoolExecutor(max_workers=1) as reader:
                pulling = reader.submit(
                    self._run, "state pull", self.commands()["state pull"], echo=None
                )
                done = self._run(
                    name, self.commands(plan_file)[name], echo=logging.INFO, ok_codes=(0, 2)
                )
                pulled = pulling.result().stdout
        prior = parse_state_header(pulled)
        #: The state the plan was made against (the orphan check before review reads it).
        self.prior_state: dict[str, Any] = json.loads(pulled) if pulled.strip() else {}
        sha = sha256_file(plan_file)
        if replan and done.returncode == 0:
            # Terraform itself says nothing would change: no document to review or list.
            summary = unchanged_summary(sha, self.prior_state, excluded(self.gaps))
            _log(logging.INFO, f"re-plan {plan_file.name} ({sha[:12]}…): {summary.headline()}")
            return PlanResult(
                provisioner=self.name,
                environment=self.environment,
                workspace=self.workspace,
                plan_file=str(plan_file),
                sha256=sha,
                prior_serial=prior[0] if prior else None,
                prior_lineage=prior[1] if prior else None,
                document=None,
                summary=summary,
                working_copy=str(self.workdir),
                override=self.override,
                gaps=self.gaps,
                exit_code=0,
                seconds=dict(self.timings),
            )
        document, text = self._show(plan_file)
        json_path(plan_file).write_text(text)
        meta = PlanMeta(
            environment=self.environment,
            workspace=self.workspace,
            sha256=sha,
            prior_serial=prior[0] if prior else None,
            prior_lineage=prior[1] if prior else None,
            terraform_version=document.terraform_version,
        )
        meta_path(plan_file).write_text(meta.model_dump_json(indent=1) + "\n")
        summary = summarize(document, sha, excluded(self.gaps))
        _log(logging.INFO, f"plan {plan_file.name} ({sha[:12]}…): {summary.headline()}")
        return PlanResult(
            provisioner=self.name,
            environment=self.environment,
            workspace=self.workspace,
            plan_file=str(plan_file),
            sha256=sha,
            prior_serial=meta.prior_serial,
            prior_lineage=meta.prior_lineage,
            document=document,
            summary=summary,
            working_copy=str(self.workdir),
            override=self.override,
            gaps=self.gaps,
            exit_code=done.returncode,
            seconds=dict(self.timings),
        )

    # -- apply ---------------------------------------------------------------------------
    def _read_meta(self, plan_file: Path, sha: str) -> PlanMeta:
        path = meta_path(plan_file)
        again = "plan again and have the new plan reviewed"
        if not path.is_file():
            raise ApplyRefused(
                f"{path.name} is missing, so the state the plan was made against is unknown",
                f"keep it next to {plan_file.name}, or {again}",
            )
        try:
            meta = PlanMeta.model_validate_json(path.read_text())
        except ValidationError:
            raise ApplyRefused(
                f"{path.name} is not a plan sidecar of mirror-rollout", again
            ) from None
        if meta.format != META_FORMAT or meta.sha256 != sha:
            raise ApplyRefused(f"{path.name} belongs to another plan than {plan_file.name}", again)
        if (meta.environment, meta.workspace) != (self.environment, self.workspace):
            raise ApplyRefused(
                f"{plan_file.name} was made for {meta.environment} (workspace {meta.workspace}), "
                f"not {self.environment} (workspace {self.workspace})",
                f"apply it with --env {meta.environment}, or plan {self.environment}",
            )
        return meta

    def apply(self, plan_file: Path, expected_sha256: str | None) -> ApplyResult:
        started = time.monotonic()
        plan_file = Path(plan_file).resolve()
        sha = verify_plan_file(plan_file, expected_sha256)
        meta = self._read_meta(plan_file, sha)
        self._prepare()
        current = self._state_header()
        if current != meta.prior:
            raise ApplyRefused(
                f"the plan is stale: the {self.workspace} state is now {_describe(current)}, "
                f"the plan was made against {_describe(meta.prior)}",
                "plan again and have the new plan reviewed",
            )
        # Apply a private copy, re-verified, so the file cannot change between check and use.
        reviewed = self.data_dir / "apply" / plan_file.name
        reviewed.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plan_file, reviewed)
        try:
            verify_plan_file(reviewed, sha)
            document = self._reviewed_document(plan_file, reviewed)
            run = self._run("apply", self.commands(reviewed)["apply"], echo=logging.INFO)
        finally:
            reviewed.unlink(missing_ok=True)
        timings = parse_apply_timings(run.stdout)
        applied = [
            AppliedChange(address=c.address, action=c.action, seconds=timings.get(c.address, 0.0))
            for c in document.managed_changes()
            if c.action not in ("no-op", "read")
        ]
        # One read of the new state gives its serial and the outputs (sensitive ones left out).
        state = json.loads(
            self._run("state pull", self.commands()["state pull"], echo=None).stdout or "{}"
        )
        return ApplyResult(
            sha256=sha,
            applied=applied,
            not_provisioned=dict(excluded(self.gaps)),
            outputs=parse_outputs(json.dumps(state.get("outputs", {}))),
            state_serial=state.get("serial"),
            seconds=round(time.monotonic() - started, 3),
            terraform_seconds=dict(self.timings),
        )

    def _reviewed_document(self, plan_file: Path, reviewed: Path) -> PlanDocument:
        """The plan document the reviewer saw (written at plan time), else ``show`` of the copy.

        It only lists the changes for the apply report: Terraform applies the binary file.
        """
        path = json_path(plan_file)
        if path.is_file():
            with contextlib.suppress(ValidationError, ValueError):
                return PlanDocument.model_validate_json(path.read_text())
        return self._show(reviewed)[0]

    # -- reads and repairs ---------------------------------------------------------------
    def outputs(self) -> dict[str, Any]:
        """Current outputs; {} for an environment that has no state yet."""
        try:
            self._prepare(create_workspace=False)
        except NoWorkspace:
            return {}
        return parse_outputs(self._run("output", self.commands()["output"], echo=None).stdout)

    def state_serial(self) -> int | None:
        try:
            self._prepare(create_workspace=False)
        except NoWorkspace:
            return None
        header = self._state_header()
        return header[0] if header else None

    def refuses_configuration(self, failure: TerraformFailed) -> str | None:
        """Terraform's first error line if ``failure`` is Terraform refusing the configuration.

        ``terraform validate`` decides for what it can see; plan-time refusals
        (prevent_destroy, invalid count, preconditions ...) are told by their title.
        """
        if failure.command in ("plan", "re-plan") and self._prepared:
            checked = self._run("validate", self.commands()["validate"], check=False)
            if checked.returncode != 0:
                return first_error_line(checked.stderr) or first_error_line(checked.stdout)
        if failure.first_line.startswith(PLAN_TIME_REFUSALS):
            return failure.first_line
        return None

    def import_resource(self, address: str, resource_id: str) -> None:
        """Adopt a resource that exists in the cloud into state (Terraform's own ``import``)."""
        self._prepare()
        argv = [
            self.binary,
            "import",
            "-input=false",
            "-no-color",
            f"-var-file={self.var_file.name}",
            address,
            resource_id,
        ]
        self._run("import", argv, echo=logging.INFO)

    def force_unlock_command(self, lock_id: str) -> str:
        """The ``mirror-rollout force-unlock`` command line that releases ``lock_id`` of this state."""
        argv = ["mirror-rollout", "force-unlock", lock_id, "--env", self.environment]
        if self.root != Path(PROJECT_ROOT).resolve():
            argv += ["--root", str(self.root)]
        if self.backend not in (None, "sandbox"):  # the command's default backend is sandbox
            argv += ["--backend", self.backend]
        return shlex.join(argv)

    def force_unlock(self, lock_id: str) -> None:
        """Terraform's own ``force-unlock`` of the workspace's state lock."""
        try:
            self._prepare(create_workspace=False)
        except NoWorkspace as missing:
            raise RolloutError(
                f"there is no lock {lock_id!r} to remove: {missing.problem}",
                "nothing was changed; check --env and the lock ID",
            ) from None
        done = self._run(
            "force-unlock",
            self.commands(lock_id=lock_id)["force-unlock"],
            echo=logging.INFO,
            check=False,
        )
        if done.returncode != 0:
            if "failed to retrieve lock info" in done.stderr + done.stdout:
                raise RolloutError(
                    f"there is no lock {lock_id!r} on the {self.environment} state",
                    "copy the lock ID from the 'Error acquiring the state lock' message; "
                    "nothing was changed",
                )
            self._fail(done, show_stdout=True)


class NoWorkspace(RolloutError):
    """The environment's workspace does not exist in the backend (never planned)."""


class TerraformFailed(RolloutError):
    """A Terraform command failed; ``first_line`` is Terraform's own first error line."""

    first_line: str = ""
    command: str = ""


#: Terraform's own refusals of a configuration that only show at plan time (validate passes).
PLAN_TIME_REFUSALS = (
    "Error: Instance cannot be destroyed",
    "Error: Invalid count argument",
    "Error: Invalid for_each argument",
    "Error: Resource precondition failed",
    "Error: Invalid value for variable",
    "Error: No value for required variable",
    "Error: Cycle",
    "Error: Moved object still exists",
    "Error: Ambiguous move statements",
    "Error: Invalid function argument",
    "Error: Error in function call",
    "Error: Invalid index",
    "Error: Unsupported attribute",
    "Error: Missing required argument",
    "Error: Unsupported argument",
    "Error: Unsupported block type",
    "Error: Reference to undeclared",
    "Error: Module not installed",
    "Error: Unreadable module directory",
    "Error: Argument or block definition required",
    "Error: Invalid expression",
)
