"""Provisioners: the Terraform CLI for real clouds, the sandbox engine for the sandbox."""

from __future__ import annotations

from mirror_rollout.provisioners.base import Provisioner
from mirror_rollout.settings import RolloutSettings


def make_provisioner(settings: RolloutSettings, lock_info: str = "", on_change=None) -> Provisioner:
    """The provisioner the settings ask for; ``on_change`` hears of each applied change."""
    if settings.engine == "sandbox":
        from mirror_rollout.provisioners.sandbox.engine import SandboxEngine

        return SandboxEngine(
            settings.environment, root=settings.root, lock_info=lock_info, on_change=on_change
        )
    from mirror_rollout.provisioners.terraform_cli import TerraformCli

    return TerraformCli(settings.environment, root=settings.root)
