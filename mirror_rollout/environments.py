"""The environments a rollout can target and where their inputs live."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.errors import ConfigError


class Environment(StrEnum):
    staging = "staging"
    production = "production"


def parse_environment(value: str) -> Environment:
    try:
        return Environment(value)
    except ValueError:
        allowed = ", ".join(e.value for e in Environment)
        raise ConfigError(f"unknown environment {value!r}", f"use one of: {allowed}") from None


def terraform_dir(root: Path | None = None) -> Path:
    return (root or PROJECT_ROOT) / "infra" / "terraform"


def gcp_dir(root: Path | None = None) -> Path:
    return (root or PROJECT_ROOT) / "infra" / "gcp"


def tfvars_path(env: Environment, root: Path | None = None) -> Path:
    return terraform_dir(root) / f"{env.value}.tfvars"
