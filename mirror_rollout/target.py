"""What a rollout acts on, validated once: the environment, where, on which backend, by whose rules.

The flow builds one ``RolloutTarget`` from its parameters (``target_of``) and hands it
to every task and AWS client; nothing downstream checks the environment name again,
compares it with ``"production"`` or guesses a region. Per-environment rules are data
(``RULES``), so adding an environment with rules of its own is adding a row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.environments import PRODUCTION, Environment, parse_environment, tfvars_path
from mirror_rollout.errors import RolloutError

Backend = Literal["sandbox", "aws"]

#: Where the Terraform state backend lives and where a stack goes when nothing says otherwise.
DEFAULT_REGION = "us-east-1"


class EnvironmentRules(BaseModel):
    """What an environment demands beyond the contract every environment meets."""

    model_config = ConfigDict(frozen=True)

    #: Distinct registered reviewers whose signed approvals an apply needs.
    reviewers_required: int = 1
    #: How long a scheduled KMS key deletion waits (AWS allows 7 to 30 days).
    kms_deletion_window_days: int = 7
    #: Whether a rollout drills a PITR restore without being asked (restore_drill=true).
    restore_drill_by_default: bool = True
    #: Whether deployments/reviewers.yaml may allow unsigned approvals here.
    unsigned_approvals_allowed: bool = True


#: Environments with rules of their own; every other one gets ``EnvironmentRules()``.
RULES: dict[Environment, EnvironmentRules] = {
    PRODUCTION: EnvironmentRules(
        reviewers_required=2,
        kms_deletion_window_days=30,
        restore_drill_by_default=False,
        unsigned_approvals_allowed=False,
    ),
}


def check_auto_approve(backend: str) -> None:
    """Auto-approval exists only on the sandbox (whose auto-reviewers the flow trusts there only)."""
    if backend != "sandbox":
        raise RolloutError(
            f"--auto-approve is refused for backend {backend!r}",
            "auto-approval exists only for the sandbox; approve real plans in the Prefect UI",
        )


def rules_for(environment: Environment) -> EnvironmentRules:
    return RULES.get(environment, EnvironmentRules())


class RolloutTarget(BaseModel):
    """One environment on one backend, as every step sees it (frozen: nobody re-derives it)."""

    model_config = ConfigDict(frozen=True)

    environment: Environment
    backend: Backend = "sandbox"
    root: Path = PROJECT_ROOT
    region: str = DEFAULT_REGION
    #: The AWS account that holds the environment when it is pinned: on the sandbox each
    #: environment but staging has a moto account of its own; on AWS the credentials decide.
    account: str | None = None

    @property
    def rules(self) -> EnvironmentRules:
        return rules_for(self.environment)

    @property
    def reviewers_required(self) -> int:
        return self.rules.reviewers_required


def tfvars_region(environment: Environment, root: Path | None = None) -> str:
    """The ``region`` of ``<environment>.tfvars`` (a static read), else the default region."""
    from mirror_rollout.provisioners.raw_hcl import load, unquote

    values = load(tfvars_path(environment, root))
    region = values.get("region")
    return unquote(region) if region else DEFAULT_REGION


def target_of(
    environment: str,
    backend: Backend = "sandbox",
    root: Path | None = None,
    region: str | None = None,
) -> RolloutTarget:
    """The target of a run: the environment must have a tfvars file, the region must exist.

    Raises one ConfigError naming the bad value and the fix; nothing is reached yet.
    """
    from mirror_rollout.aws import sandbox_account
    from mirror_rollout.regions import check_region

    root = root or PROJECT_ROOT
    env = parse_environment(environment, root)
    return RolloutTarget(
        environment=env,
        backend=backend,
        root=root,
        region=check_region(region or tfvars_region(env, root)),
        account=sandbox_account(env),
    )
