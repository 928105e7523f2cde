"""The Terraform CLI provisioner: plan and apply infra/terraform with ``terraform`` or ``tofu``.

Used against real clouds. Every command runs in ``infra/terraform`` with
``TF_IN_AUTOMATION=1``, ``TF_INPUT=0`` and a data directory of its own per
workspace (``<root>/.terraform-data/<workspace>``), so two workspaces planned
side by side never share ``.terraform`` (backend config, selected workspace,
providers).

``plan`` writes three files into the output directory:

- ``<workspace>.tfplan``: Terraform's binary plan; its sha256 is what a
  reviewer approves and the only thing ``apply`` will run;
- ``<workspace>.tfplan.json``: ``terraform show -json`` of it, the review artifact;
- ``<workspace>.tfplan.meta.json``: the state serial and lineage the plan was
  made against, so ``apply`` can refuse a stale plan before touching anything
  (Terraform itself would also refuse it, with "Saved plan is stale").

The JSON artifact holds the planned values in full, sensitive ones included
(Terraform's ``show -json`` marks them in ``*_sensitive`` but does not mask
them), exactly like the binary plan file: keep both where the state is kept.

The pure parts (argv construction, parsing of ``state pull``, ``output -json``
and error output) are module functions, tested without any binary.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
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
    ApplyRefused,
    ApplyResult,
    PlanResult,
    Provisioner,
    StateLocked,
    verify_plan_file,
)
from mirror_rollout.provisioners.document import PlanDocument, sha256_file, summarize

LOG = logging.getLogger("mirror_rollout.terraform")

#: Looked up on PATH in this order when no binary is given.
CANDIDATES = ("terraform", "tofu")
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
_LOCK_ID = re.compile(r"^\s*ID:\s+(?P<id>\S+)")


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
        "state pull": [binary, "state", "pull", "-no-color"],
        "plan": [
            binary,
            "plan",
            "-input=false",
            "-no-color",
            f"-var-file={var_file}",
            f"-out={plan_file}",
        ],
        "show": [binary, "show", "-json", "-no-color", str(plan_file)],
        "apply": [binary, "apply", "-input=false", "-no-color", str(plan_file)],
        "output": [binary, "output", "-json", "-no-color"],
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


def first_error_line(text: str) -> str | None:
    """The first ``Error:`` line of Terraform's output (boxes and colours removed).

    Falls back to the first non-empty line (some failures, e.g. of ``workspace
    select``, print no ``Error:``); None for empty output.
    """
    lines = [_ANSI.sub("", line).strip(_BOX).rstrip() for line in text.splitlines()]
    for line in lines:
        if line.startswith("Error:"):
            return line
    return next((line for line in lines if line), None)


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


def find_binary(binary: str | None = None) -> str:
    """Absolute path of the binary to run: the given one, else terraform, else tofu, on PATH."""
    if binary:
        found = shutil.which(binary)
        if found is None:
            raise ConfigError(
                f"the Terraform binary {binary!r} is not an executable on PATH",
                "give the name or path of a terraform or tofu executable",
            )
        return found
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError(
        "neither terraform nor tofu is on PATH",
        "install Terraform >= 1.6 (https://developer.hashicorp.com/terraform/install) or "
        "OpenTofu (https://opentofu.org/docs/intro/install/), or use `--provisioner sandbox` "
        "on the sandbox",
    )


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
class TerraformCli(Provisioner):
    """Drives ``terraform`` (or ``tofu``) for one environment / workspace.

    ``backend_config`` adds ``-backend-config=key=value`` to ``init`` (on top of
    the ``backend "s3"`` block in backend.tf). Values are strings, numbers,
    booleans, or maps/lists rendered as HCL literals. To point the S3 backend
    at the sandbox's moto server (Terraform >= 1.6)::

        url = sandbox_config.url("moto")
        TerraformCli(
            "staging",
            backend_config={
                "endpoints": {"s3": url, "dynamodb": url, "sts": url},
                "use_path_style": True,
                "skip_credentials_validation": True,
                "skip_requesting_account_id": True,
                "skip_metadata_api_check": True,
            },
            extra_env=sandbox.exports(sandbox_config),  # AWS_ENDPOINT_URL, test credentials
        )

    The AWS provider reads ``AWS_ENDPOINT_URL`` from ``extra_env``; provider
    plugins are still downloaded from the registry by ``init``. The sandbox
    engine (``--provisioner sandbox``) needs neither a binary nor a network.
    """

    name = "terraform"

    def __init__(
        self,
        environment: Environment | str,
        *,
        binary: str | None = None,
        root: Path | None = None,
        workspace: str | None = None,
        backend_config: Mapping[str, Any] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ):
        self.root = Path(root or PROJECT_ROOT).resolve()
        self.environment = parse_environment(environment, self.root)
        self.workspace = workspace or self.environment
        if not WORKSPACE_NAME.match(self.workspace):
            raise ConfigError(
                f"workspace name {self.workspace!r} is not valid",
                "use letters, digits, '-', '_' and '.'",
            )
        self.workdir = terraform_dir(self.root)
        if not self.workdir.is_dir():
            raise ConfigError(
                f"{self.workdir} does not exist", "pass the project root that holds infra/terraform"
            )
        self.var_file = tfvars_path(self.environment, self.root)
        if not self.var_file.is_file():
            raise ConfigError(
                f"{self.var_file} does not exist",
                f"create {self.var_file.name} next to the .tf files",
            )
        self.binary = find_binary(binary)
        self.tool = Path(self.binary).name
        self.backend_config = dict(backend_config or {})
        self.extra_env = dict(extra_env or {})
        self.data_dir = self.root / ".terraform-data" / self.workspace
        self._prepared = False

    # -- commands ------------------------------------------------------------------------
    def commands(self, plan_file: Path | str = "") -> dict[str, list[str]]:
        return command_lines(
            self.binary,
            workspace=self.workspace,
            var_file=self.var_file,
            plan_file=plan_file,
            backend_config=self.backend_config,
        )

    def env(self) -> dict[str, str]:
        env = {**os.environ, **self.extra_env}
        # TF_WORKSPACE would override (and make `workspace select` fail); the workspace is ours.
        env.pop("TF_WORKSPACE", None)
        env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", TF_DATA_DIR=str(self.data_dir))
        return env

    def _run(
        self, name: str, argv: list[str], *, echo: int | None = logging.DEBUG, check: bool = True
    ) -> Completed:
        """Run one command; stdout lines are logged at ``echo`` (None: never, it holds state).

        With ``check``, a non-zero exit logs the one-line summary with
        Terraform's output unchanged under it (ERROR) and raises RolloutError
        (StateLocked for a held lock).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
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
                "check that the terraform/tofu binary is installed and executable",
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
        if returncode != 0 and check:
            self._fail(result, show_stdout=echo is not None)
        if echo is None:
            _log(logging.DEBUG, f"{self.tool} {name}: {len(result.stdout)} bytes of output")
        if result.stderr.strip():  # warnings on success; the expected failure of a probe
            level = logging.WARNING if returncode == 0 else logging.INFO
            _log(level, f"{self.tool} {name} (exit {returncode}):\n{result.stderr.rstrip()}")
        return result

    def _fail(self, result: Completed, *, show_stdout: bool) -> None:
        line = first_error_line(result.stderr) or (
            first_error_line(result.stdout) if show_stdout else None
        )
        summary = f"{self.tool} {result.name} failed (exit {result.returncode})"
        if line:
            summary += f": {line}"
        output = result.stderr.rstrip()
        if show_stdout and result.stdout.strip():
            output = f"{output}\n{result.stdout.rstrip()}".strip("\n")
        _log(logging.ERROR, f"{summary}\n{output}" if output else summary)
        if "Error acquiring the state lock" in result.stderr:
            lock_id = next(
                (
                    m["id"]
                    for m in map(_LOCK_ID.match, result.stderr.replace("│", " ").splitlines())
                    if m
                ),
                "<ID>",
            )
            raise StateLocked(
                f"{summary} (workspace {self.workspace})",
                "wait for the other plan/apply to finish; if it died, run "
                f"`TF_DATA_DIR={self.data_dir} {self.tool} force-unlock {lock_id}` in infra/terraform",
            )
        fixes = {
            "init": "check the backend configuration and the cloud credentials "
            "(Terraform's output is in the log)",
            "plan": "fix the error shown in the log (configuration, variables or credentials), "
            "then plan again",
            "apply": "the apply may have changed part of the infrastructure: read the log, "
            "fix the cause, then plan again and have the new plan reviewed",
        }
        raise RolloutError(summary, fixes.get(result.name, "Terraform's output is in the log"))

    def _prepare(self) -> None:
        """``init`` and select (or create) the workspace, once per instance."""
        if self._prepared:
            return
        commands = self.commands()
        self._run("init", commands["init"])
        selected = self._run("workspace select", commands["workspace select"], check=False)
        if selected.returncode != 0:
            _log(logging.INFO, f"workspace {self.workspace!r} does not exist yet; creating it")
            self._run("workspace new", commands["workspace new"])
        self._prepared = True

    def _state_header(self) -> tuple[int, str] | None:
        return parse_state_header(
            self._run("state pull", self.commands()["state pull"], echo=None).stdout
        )

    def _show(self, plan_file: Path) -> tuple[PlanDocument, str]:
        text = self._run("show", self.commands(plan_file)["show"], echo=None).stdout
        try:
            document = PlanDocument.model_validate_json(text)
        except ValidationError as exc:
            raise RolloutError(
                f"`{self.tool} show -json` did not print a plan document: "
                f"{exc.errors()[0]['msg']} at {'.'.join(map(str, exc.errors()[0]['loc']))}",
                "use Terraform >= 1.6 or OpenTofu; the log has the command line",
            ) from None
        document.check_version()
        return document, text

    # -- plan ----------------------------------------------------------------------------
    def plan(self, out_dir: Path) -> PlanResult:
        out_dir = Path(out_dir).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        plan_file = out_dir / f"{self.workspace}.tfplan"
        for stale in (plan_file, json_path(plan_file), meta_path(plan_file)):
            stale.unlink(missing_ok=True)  # a failed plan must not leave an older one behind
        self._prepare()
        prior = self._state_header()
        self._run("plan", self.commands(plan_file)["plan"], echo=logging.INFO)
        document, text = self._show(plan_file)
        sha = sha256_file(plan_file)
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
        summary = summarize(document, sha)
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
            document, _ = self._show(reviewed)
            run = self._run("apply", self.commands(reviewed)["apply"], echo=logging.INFO)
        finally:
            reviewed.unlink(missing_ok=True)
        timings = parse_apply_timings(run.stdout)
        applied = [
            AppliedChange(address=c.address, action=c.action, seconds=timings.get(c.address, 0.0))
            for c in document.managed_changes()
            if c.action not in ("no-op", "read")
        ]
        outputs = self.outputs()
        header = self._state_header()
        return ApplyResult(
            sha256=sha,
            applied=applied,
            outputs=outputs,
            state_serial=header[0] if header else None,
            seconds=round(time.monotonic() - started, 3),
        )

    # -- reads ---------------------------------------------------------------------------
    def outputs(self) -> dict[str, Any]:
        self._prepare()
        return parse_outputs(self._run("output", self.commands()["output"], echo=None).stdout)

    def state_serial(self) -> int | None:
        self._prepare()
        header = self._state_header()
        return header[0] if header else None
