"""``plan``: the binary plan a reviewer approves, its ``show -json`` document and its sidecar.

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
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mirror_rollout.errors import RolloutError
from mirror_rollout.plan_digest import PlanDigest
from mirror_rollout.provisioners.base import PlanResult
from mirror_rollout.provisioners.document import (
    PlanDocument,
    summarize,
    unchanged_summary,
)
from mirror_rollout.provisioners.sandbox_override import SandboxGap, excluded
from mirror_rollout.provisioners.terraform_run import log
from mirror_rollout.provisioners.terraform_state import (
    StateReads,
    parse_state_header,
    planned_state,
)

META_FORMAT = "mirror-rollout-terraform-plan-meta/1"


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


class Planning(StateReads):
    """``plan`` and ``re-plan`` into an output directory, and ``show`` of a plan file."""

    name = "terraform"
    gaps: list[SandboxGap]
    #: The state the last plan was made against (the orphan check before review reads it).
    prior_state: dict[str, Any]

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

    def plan(self, out_dir: Path, *, replan: bool = False) -> PlanResult:
        """Plan into ``out_dir``; ``replan`` adds ``-detailed-exitcode`` (exit 2: changes)."""
        out_dir = Path(out_dir).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        plan_file = out_dir / f"{self.workspace}.tfplan"
        for stale in (plan_file, json_path(plan_file), meta_path(plan_file)):
            stale.unlink(missing_ok=True)  # a failed plan must not leave an older one behind
        self._prepare()
        command = "re-plan" if replan else "plan"
        done = self._run(
            command, self.commands(plan_file)[command], echo=logging.INFO, ok_codes=(0, 2)
        )
        # The plan file keeps the state it was made against, serial and lineage included:
        # no `state pull` (another Terraform process) racing the plan to see it.
        pulled = planned_state(plan_file)
        prior = parse_state_header(pulled)
        self.prior_state = json.loads(pulled) if pulled.strip() else {}
        sha = PlanDigest.of_file(plan_file)
        if replan and done.returncode == 0:
            # Terraform itself says nothing would change: no document to review or list.
            document = None
            summary = unchanged_summary(sha, self.prior_state, excluded(self.gaps))
        else:
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
        kind = "re-plan" if document is None else "plan"
        log(logging.INFO, f"{kind} {plan_file.name} ({sha.short}): {summary.headline()}")
        return PlanResult(
            provisioner=self.name,
            environment=self.environment,
            workspace=self.workspace,
            plan_file=str(plan_file),
            prior_serial=prior[0] if prior else None,
            prior_lineage=prior[1] if prior else None,
            document=document,
            summary=summary,
            working_copy=str(self.workdir),
            override=self.override,
            gaps=self.gaps,
            exit_code=done.returncode,
            seconds=dict(self.timings),
        )
