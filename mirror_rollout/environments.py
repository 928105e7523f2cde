"""The environments a rollout can target and where their inputs live.

An environment is a name with its own `infra/terraform/<name>.tfvars`: adding
one is adding a tfvars file (and, on GCP, `infra/gcp/<name>.tfvars`). Only
`production` has rules of its own (two approvals, a 30-day key deletion window).
"""

from __future__ import annotations

import re
from pathlib import Path

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.errors import ConfigError

#: The name of an environment (a tfvars file stem, a workspace, a part of resource names).
Environment = str
PRODUCTION: Environment = "production"
NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")


def terraform_dir(root: Path | None = None) -> Path:
    return (root or PROJECT_ROOT) / "infra" / "terraform"


def gcp_dir(root: Path | None = None) -> Path:
    return (root or PROJECT_ROOT) / "infra" / "gcp"


def tfvars_path(env: Environment, root: Path | None = None) -> Path:
    return terraform_dir(root) / f"{env}.tfvars"


def environments(root: Path | None = None) -> list[Environment]:
    """Every environment of the checkout at ``root``: the stems of infra/terraform/*.tfvars."""
    return sorted(p.stem for p in terraform_dir(root).glob("*.tfvars") if NAME.fullmatch(p.stem))


def check_name(value: str) -> Environment:
    """A well-formed environment name (for steps that run after the flow checked its tfvars)."""
    if not NAME.fullmatch(str(value)):
        raise ConfigError(
            f"malformed environment name {value!r}",
            "use lowercase letters, digits and dashes, as in infra/terraform/<name>.tfvars",
        )
    return value


def parse_environment(value: str, root: Path | None = None) -> Environment:
    if not terraform_dir(root).is_dir():
        raise ConfigError(
            f"{terraform_dir(root)} does not exist", "point --root at a mirror-rollout checkout"
        )
    known = environments(root)
    if value in known:
        return value
    raise ConfigError(
        f"unknown environment {value!r}",
        f"use one of: {', '.join(known) or '(none)'} (each has an infra/terraform/<name>.tfvars)",
    )
