"""One interface for both provisioners: plan to a file, apply exactly that file."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mirror_rollout.errors import RolloutError
from mirror_rollout.provisioners.document import PlanDocument, PlanSummary, sha256_file


class ApplyRefused(RolloutError):
    """Apply would not run exactly the reviewed plan; nothing was changed."""


class StateLocked(RolloutError):
    """Another plan or apply holds the workspace's state lock."""


class PlanResult(BaseModel):
    provisioner: str
    environment: str
    workspace: str
    plan_file: str
    sha256: str
    prior_serial: int | None = None
    prior_lineage: str | None = None
    document: PlanDocument
    summary: PlanSummary


class AppliedChange(BaseModel):
    address: str
    action: str
    seconds: float
    note: str = ""


class ApplyResult(BaseModel):
    sha256: str
    applied: list[AppliedChange] = Field(default_factory=list)
    not_provisioned: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    state_serial: int | None = None
    seconds: float = 0.0


def verify_plan_file(plan_file: Path, expected_sha256: str | None) -> str:
    """Refuse a missing hash or a file whose bytes are not the reviewed ones."""
    if not expected_sha256:
        raise ApplyRefused(
            "apply needs the sha256 of the reviewed plan and none was given",
            "approve the plan first; the approval carries its sha256",
        )
    if not plan_file.is_file():
        raise ApplyRefused(
            f"plan file {plan_file} does not exist", "run plan again and have it reviewed"
        )
    actual = sha256_file(plan_file)
    if actual != expected_sha256.lower():
        raise ApplyRefused(
            f"plan file {plan_file.name} has sha256 {actual[:12]}…, the approval is for {expected_sha256[:12]}…",
            "the file changed after review: plan again and have the new plan approved",
        )
    return actual


class Provisioner(ABC):
    """Plans and applies infra/terraform for one environment (workspace)."""

    name: str

    @abstractmethod
    def plan(self, out_dir: Path) -> PlanResult: ...

    @abstractmethod
    def apply(self, plan_file: Path, expected_sha256: str | None) -> ApplyResult: ...

    @abstractmethod
    def outputs(self) -> dict[str, Any]: ...

    @abstractmethod
    def state_serial(self) -> int | None: ...
