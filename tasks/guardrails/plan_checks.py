"""Plan guardrails: pure checks over the JSON of ``terraform show -json <planfile>`` (format 1.x).

Terraform has evaluated everything the plan holds (``tasks.guardrails.plan_view``). A
value known only after apply is "not shown" (SKIPPED when a check sees nothing else),
never PASS on its own. The checks live by resource family in
``tasks.guardrails.families``; this module runs those that read the plan.
"""

from __future__ import annotations

from collections.abc import Iterable

from mirror_rollout.results import CheckResult
from tasks.guardrails import families  # noqa: F401  (registers every guardrail)
from tasks.guardrails.base import PlanGuardrail
from tasks.guardrails.common import GUARDRAILS, run_checks
from tasks.guardrails.plan_view import PlanView, load_plan_file, read_plan

__all__ = [
    "PLAN_REGISTRY",
    "PlanGuardrail",
    "evaluate_plan_guardrails",
    "load_plan_file",
    "read_plan",
    "run_plan_checks",
]

#: The plan guardrails by id.
PLAN_REGISTRY = GUARDRAILS.reading("plan")


def run_plan_checks(plan: PlanView, only: Iterable[str] | None = None) -> list[CheckResult]:
    return run_checks(PLAN_REGISTRY, plan, only)


def evaluate_plan_guardrails(
    plan: dict, environment: str, not_kept: dict[str, tuple[str, ...]] | None = None
) -> list[CheckResult]:
    """Run every plan guardrail on a ``terraform show -json`` document (a dict) for ``environment``.

    ``not_kept`` names attributes the backend does not keep (address -> attributes): a
    check that finds them wrong says so as SKIPPED instead of failing.
    """
    return run_plan_checks(read_plan(plan, environment, not_kept))
