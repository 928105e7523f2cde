"""Static guardrails: small checks with ids over the raw structure of infra/ (python-hcl2).

They run before any plan and read what the files say: which blocks exist, which
literal settings they hold, which resource an argument refers to, what the tfvars
set. Each failing result names the file:line and the resource. Values only
Terraform can compute (names, thresholds, windows, tags) are checked on the plan
JSON by ``tasks.guardrails.plan_checks``. The checks live by resource family in
``tasks.guardrails.families``; this module runs those that read the files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mirror_rollout.results import CheckResult
from tasks.guardrails import families  # noqa: F401  (registers every guardrail)
from tasks.guardrails.base import Guardrail
from tasks.guardrails.common import GUARDRAILS, run_checks
from tasks.guardrails.view import InfraView

__all__ = ["REGISTRY", "Guardrail", "evaluate_guardrails", "run_static_checks"]

#: The static guardrails by id.
REGISTRY = GUARDRAILS.reading("infra")


def run_static_checks(view: InfraView, only: Iterable[str] | None = None) -> list[CheckResult]:
    """Run every static guardrail (or ``only`` those ids) and return typed results."""
    return run_checks(REGISTRY, view, only)


def evaluate_guardrails(environment: str, root: Path | None = None) -> list[CheckResult]:
    """Read infra/ for ``environment`` and run every static guardrail (no Prefect involved)."""
    from mirror_rollout import PROJECT_ROOT
    from mirror_rollout.environments import parse_environment
    from tasks.guardrails.view import load_view

    base = Path(root or PROJECT_ROOT)
    return run_static_checks(load_view(parse_environment(environment, base), base))
