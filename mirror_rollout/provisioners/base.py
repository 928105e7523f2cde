"""What plan and apply produce, and the checks that make apply run exactly the reviewed file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mirror_rollout.errors import ConfigError, RolloutError
from mirror_rollout.plan_digest import PlanDigest
from mirror_rollout.provisioners.document import PlanDocument, PlanSummary
from mirror_rollout.provisioners.sandbox_override import SandboxGap


class ApplyRefused(RolloutError):
    """Apply would not run exactly the reviewed plan; nothing was changed."""


class ApplyInterrupted(RolloutError):
    """Apply stopped part-way: the changes before ``address`` are applied and in state.

    ``applied`` counts them (0: nothing was changed and the plan is still current);
    ``cause`` is the error that stopped it.
    """

    def __init__(self, problem: str, fix: str, address: str, applied: int, cause: BaseException):
        super().__init__(problem, fix)
        self.address = address
        self.applied = applied
        self.cause = cause


class StateLocked(RolloutError):
    """Another plan or apply holds the workspace's state lock; ``output`` is Terraform's."""

    output: str = ""


class PlanResult(BaseModel):
    provisioner: str
    environment: str
    workspace: str
    plan_file: str
    prior_serial: int | None = None
    prior_lineage: str | None = None
    #: ``terraform show -json`` of the plan; None only for a re-plan Terraform reported empty.
    document: PlanDocument | None
    summary: PlanSummary
    #: The run's working copy of infra/terraform that Terraform planned.
    working_copy: str = ""
    #: The generated sandbox_override.tf (None off the sandbox): part of what is reviewed.
    override: str | None = None
    #: The moto gaps the override works around, each a SKIPPED line of the checklist.
    gaps: list[SandboxGap] = Field(default_factory=list)
    #: Terraform's exit code (a re-plan exits 2 when anything would change).
    exit_code: int = 0
    #: Seconds per Terraform subcommand (init, plan, show, ...).
    seconds: dict[str, float] = Field(default_factory=dict)

    @property
    def sha256(self) -> PlanDigest:
        """The plan file's digest: what reviewers approve (kept once, in the summary)."""
        return self.summary.sha256

    @property
    def plan_document(self) -> PlanDocument:
        """The plan document of a plan that has one (every plan but an empty re-plan)."""
        if self.document is None:
            raise RolloutError(
                f"the plan of {self.environment} has no plan document (an empty re-plan)",
                "read the plan document only of a plan that changes something",
            )
        return self.document


class AppliedChange(BaseModel):
    address: str
    action: str
    seconds: float
    note: str = ""


class ApplyResult(BaseModel):
    sha256: PlanDigest
    applied: list[AppliedChange] = Field(default_factory=list)
    not_provisioned: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    state_serial: int | None = None
    seconds: float = 0.0
    terraform_seconds: dict[str, float] = Field(default_factory=dict)


def _require_hash(plan_file: Path, expected_sha256: str | None) -> PlanDigest:
    if not expected_sha256:
        raise ApplyRefused(
            "apply needs the sha256 of the reviewed plan and none was given",
            "approve the plan first; the approval carries its sha256",
        )
    if not plan_file.is_file():
        raise ApplyRefused(
            f"plan file {plan_file} does not exist", "run plan again and have it reviewed"
        )
    try:
        return PlanDigest(expected_sha256)
    except ConfigError:
        # Not a sha256 at all: no plan was reviewed under it, so nothing is applied.
        raise ApplyRefused(
            f"the approved sha256 {expected_sha256[:80]!r} is not 64 hexadecimal digits",
            "approve the plan again; the approval form carries its sha256",
        ) from None


def verify_plan_file(plan_file: Path, expected_sha256: str | None) -> PlanDigest:
    """Refuse a missing hash or a file whose bytes are not the reviewed ones."""
    expected = _require_hash(plan_file, expected_sha256)
    actual = PlanDigest.of_file(plan_file)
    if actual != expected:
        raise ApplyRefused(
            f"plan file {plan_file.name} has sha256 {actual.short}, the approval is for {expected.short}",
            "the file changed after review: plan again and have the new plan approved",
        )
    return actual
