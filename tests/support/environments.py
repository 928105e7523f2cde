"""A copy of infra/ with more environments, made the way a user adds one.

Each added environment gets its tfvars (staging's values under its own name) and its
name in the `environment` variable's validation; staging and production stay as they are.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from mirror_rollout import PROJECT_ROOT

#: The allow-list in infra/*/variables.tf that an added environment joins.
ALLOWED = 'var.environment == "staging" || var.environment == "production"'


def root_with_environments(base: Path, environments: list[str]) -> Path:
    """``base`` holding a copy of infra/ where ``environments`` exist too; returns ``base``."""
    shutil.copytree(PROJECT_ROOT / "infra", base / "infra")
    more = "".join(f' || var.environment == "{env}"' for env in environments)
    for stack in ("terraform", "gcp"):
        variables = base / "infra" / stack / "variables.tf"
        text = variables.read_text()
        assert ALLOWED in text, f"{variables} no longer has the environment allow-list"
        variables.write_text(text.replace(ALLOWED, ALLOWED + more))
        staging = (base / "infra" / stack / "staging.tfvars").read_text()
        for environment in environments:
            values = re.sub(r'"(phase-mirror-)?staging"', rf'"\g<1>{environment}"', staging)
            (base / "infra" / stack / f"{environment}.tfvars").write_text(values)
    return base
