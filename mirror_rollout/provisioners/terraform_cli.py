"""The one provisioner: the Terraform CLI with the real providers, on AWS and on the sandbox.

Every command runs in the run's own working copy of the root's ``infra/terraform``
(:mod:`working_copy`), so nothing is ever written under ``infra/`` and two runs never
share ``.terraform``. On the sandbox the working copy also holds the generated
``sandbox_override.tf`` (see :mod:`sandbox_override`), and the S3 backend is pointed at
moto through ``-backend-config``; the code path is otherwise the one used against AWS.

:class:`TerraformCli` is built up by responsibility, each in its module: running one
command (:mod:`terraform_run`), the workspace prepared (:mod:`terraform_workspace`),
state reads (:mod:`terraform_state`), ``plan`` (:mod:`terraform_plan`) and ``apply``
(:mod:`terraform_apply`); the pure parts (argv, Terraform's output, own stale locks) are
in :mod:`terraform_commands`, :mod:`terraform_output` and :mod:`terraform_locks`, tested
without any binary.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.environments import (
    Environment,
    parse_environment,
    terraform_dir,
    tfvars_path,
)
from mirror_rollout.errors import ConfigError, RolloutError
from mirror_rollout.provisioners.sandbox_override import SandboxGap
from mirror_rollout.provisioners.terraform_apply import Applying
from mirror_rollout.provisioners.terraform_binary import find_terraform, plugin_mirror
from mirror_rollout.provisioners.terraform_output import first_error_line
from mirror_rollout.provisioners.terraform_run import TerraformFailed
from mirror_rollout.provisioners.terraform_workspace import NoWorkspace

WORKSPACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class TerraformCli(Applying):
    """Drives ``terraform`` for one environment (workspace) in a working copy of the root.

    ``work_dir`` receives a copy of ``<root>/infra/terraform`` (plus ``override``,
    the sandbox's ``sandbox_override.tf``, when given) and Terraform's data
    directory. ``backend_config`` adds ``-backend-config=key=value`` to ``init``
    on top of the ``backend "s3"`` block (maps and lists are rendered as HCL).
    ``extra_env`` is added to every command's environment (credentials, region).
    ``backend`` ("sandbox" or "aws") only completes the commands suggested to operators.
    ``keep_copy``: an existing working copy is used as it is (a later step of a run).
    """

    # Every setting is the caller's to choose, by keyword (terraform_for builds the sandbox's).
    def __init__(  # noqa: PLR0913
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
        self.keep_copy = keep_copy
        self.gaps = list(gaps or [])
        #: "sandbox" or "aws" when known (named in the force-unlock command of a held lock).
        self.backend = backend
        self.mirror = plugin_mirror()
        self.timings = {}
        self._prepared = False

    # -- repairs -------------------------------------------------------------------------
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
