"""The working copy initialised and the environment's workspace selected, before any command.

``init`` runs once per working copy and set of init arguments; the workspace is
selected, or created for a plan. Reads and repairs never create one: an environment
that was never planned has no state to read.
"""

from __future__ import annotations

import json

from mirror_rollout.errors import RolloutError
from mirror_rollout.provisioners.terraform_commands import redact_argv
from mirror_rollout.provisioners.terraform_run import TerraformRunner
from mirror_rollout.provisioners.working_copy import refresh_working_copy


class NoWorkspace(RolloutError):
    """The environment's workspace does not exist in the backend (never planned)."""


class PreparedWorkspace(TerraformRunner):
    """Commands that need the working copy, ``init`` and the workspace selected."""

    override: str | None
    #: A later step of a run (apply, re-plan, orphan scan) works on the copy its plan
    #: made, even if the root changed since: the re-plan checks the applied code.
    keep_copy: bool
    _prepared: bool

    def _working_copy(self) -> None:
        refresh_working_copy(
            self.source,
            self.workdir,
            override=self.override,
            mirror=self.mirror,
            keep=self.keep_copy,
        )

    def _prepare(self, *, create_workspace: bool = True) -> None:
        """Working copy, ``init`` and the workspace selected (or created), once per instance.

        Reads and repairs pass ``create_workspace=False``: an environment that was never
        planned raises :class:`NoWorkspace` rather than getting an empty state.
        """
        if self._prepared:
            return
        self._working_copy()
        self._init()
        selected_file = self.data_dir / "environment"  # where Terraform keeps the selection
        current = selected_file.read_text().strip() if selected_file.is_file() else "default"
        if current != self.workspace:
            self._select_workspace(create=create_workspace)
        self._prepared = True

    def _init(self) -> None:
        # A working copy already initialised with these exact init arguments (an earlier
        # step of the same run) is reused: same backend, same providers, same lock file.
        init = self.commands()["init"]
        marker = self.data_dir / "mirror-rollout-init"
        fingerprint = json.dumps([redact_argv(init), str(self.mirror)])
        if not (marker.is_file() and marker.read_text() == fingerprint):
            self._run("init", init)
            marker.write_text(fingerprint)

    def _select_workspace(self, *, create: bool) -> None:
        commands = self.commands()
        if create:
            self._run("workspace select or create", commands["workspace select or create"])
            return
        selected = self._run("workspace select", commands["workspace select"], check=False)
        if selected.returncode != 0:
            raise NoWorkspace(
                f"{self.environment} has no Terraform state yet (no workspace "
                f"{self.workspace!r} in the backend)",
                f"plan and apply {self.environment} first (mirror-rollout rehearse)",
            )
