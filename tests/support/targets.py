"""Rollout targets for tests' throwaway environments, which have no tfvars file."""

from __future__ import annotations

from mirror_rollout.aws import sandbox_account
from mirror_rollout.target import DEFAULT_REGION, RolloutTarget


def sandbox_target(environment: str, region: str = DEFAULT_REGION) -> RolloutTarget:
    """``environment`` on the sandbox, in its own moto account, without reading tfvars."""
    return RolloutTarget(
        environment=environment, region=region, account=sandbox_account(environment)
    )
