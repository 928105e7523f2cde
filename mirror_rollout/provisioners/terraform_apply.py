"""``apply`` of a reviewed plan file, refused when it is not the one reviewed or is stale."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from pathlib import Path

from pydantic import ValidationError

from mirror_rollout.provisioners.base import (
    AppliedChange,
    ApplyRefused,
    ApplyResult,
    verify_plan_file,
)
from mirror_rollout.provisioners.document import PlanDocument
from mirror_rollout.provisioners.sandbox_override import excluded
from mirror_rollout.provisioners.terraform_output import parse_apply_timings
from mirror_rollout.provisioners.terraform_plan import (
    META_FORMAT,
    PlanMeta,
    Planning,
    json_path,
    meta_path,
)
from mirror_rollout.provisioners.terraform_state import parse_outputs

_PLAN_AGAIN = "plan again and have the new plan reviewed"


def _describe(header: tuple[int, str] | None) -> str:
    return "no state" if header is None else f"serial {header[0]} of lineage {header[1]}"


class Applying(Planning):
    """``apply`` of a plan file whose sha256 was approved, made against the current state."""

    def _read_meta(self, plan_file: Path, sha: str) -> PlanMeta:
        path = meta_path(plan_file)
        if not path.is_file():
            raise ApplyRefused(
                f"{path.name} is missing, so the state the plan was made against is unknown",
                f"keep it next to {plan_file.name}, or {_PLAN_AGAIN}",
            )
        try:
            meta = PlanMeta.model_validate_json(path.read_text())
        except ValidationError:
            raise ApplyRefused(
                f"{path.name} is not a plan sidecar of mirror-rollout", _PLAN_AGAIN
            ) from None
        if meta.format != META_FORMAT or meta.sha256 != sha:
            raise ApplyRefused(
                f"{path.name} belongs to another plan than {plan_file.name}", _PLAN_AGAIN
            )
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
        self._forget_applied_state()
        current = self._state_header()
        if current != meta.prior:
            raise ApplyRefused(
                f"the plan is stale: the {self.workspace} state is now {_describe(current)}, "
                f"the plan was made against {_describe(meta.prior)}",
                _PLAN_AGAIN,
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
        # One read of the new state gives its serial and the outputs (sensitive ones left
        # out), and what the orphan scan after the apply compares AWS with.
        pulled = self._pull_state()
        self._keep_applied_state(pulled)
        state = json.loads(pulled or "{}")
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
