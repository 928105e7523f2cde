"""Reading the workspace's state: ``state pull``, ``output -json``, a saved plan's prior state."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from mirror_rollout.errors import RolloutError
from mirror_rollout.provisioners.terraform_workspace import NoWorkspace, PreparedWorkspace


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


#: The state an apply of this working copy left, kept in its data dir (private, like
#: the plan file that holds the prior state) for the orphan scan that follows the apply.
APPLIED_STATE = "applied.tfstate"


class StateReads(PreparedWorkspace):
    """The workspace's state and outputs; an environment never planned has none."""

    def _keep_applied_state(self, text: str) -> None:
        path = self.data_dir / APPLIED_STATE
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(text)

    def _forget_applied_state(self) -> None:
        (self.data_dir / APPLIED_STATE).unlink(missing_ok=True)

    def applied_state_document(self) -> dict[str, Any]:
        """The state this working copy's apply left (no Terraform process), else
        :meth:`state_document`: the orphan scan right after an apply reads it so."""
        path = self.data_dir / APPLIED_STATE
        if path.is_file():
            text = path.read_text()
            return json.loads(text) if text.strip() else {}
        return self.state_document()

    def _pull_state(self) -> str:
        """``state pull``: the state's text, never logged (it holds every attribute)."""
        return self._run("state pull", self.commands()["state pull"], echo=None).stdout

    def _state_header(self) -> tuple[int, str] | None:
        return parse_state_header(self._pull_state())

    def _prepared_for_reading(self) -> bool:
        """Prepared without creating the workspace; False when it does not exist."""
        try:
            self._prepare(create_workspace=False)
        except NoWorkspace:
            return False
        return True

    def state_document(self) -> dict[str, Any]:
        """The workspace's current state (``terraform state pull``), {} when there is none."""
        if not self._prepared_for_reading():
            return {}
        text = self._pull_state()
        return json.loads(text) if text.strip() else {}

    def outputs(self) -> dict[str, Any]:
        """Current outputs; {} for an environment that has no state yet."""
        if not self._prepared_for_reading():
            return {}
        return parse_outputs(self._run("output", self.commands()["output"], echo=None).stdout)

    def state_serial(self) -> int | None:
        if not self._prepared_for_reading():
            return None
        header = self._state_header()
        return header[0] if header else None
