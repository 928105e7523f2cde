"""The two kinds of guardrail (over the .tf files as written, over the plan JSON) and the
small readings their checks share."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mirror_rollout import contract
from mirror_rollout.documents import as_list
from mirror_rollout.results import Severity
from tasks.guardrails.common import GUARDRAILS, Check, Inspect, Observation, Problem, unless
from tasks.guardrails.plan_view import Planned, PlanView
from tasks.guardrails.view import Block, InfraView, ModuleView


class Guardrail(Check[InfraView]):
    """A check class over the .tf files as written (most are decorated functions instead)."""

    reads = "infra"


class PlanGuardrail(Check[PlanView]):
    """A check class over the plan JSON (most are decorated functions instead)."""

    reads = "plan"


def static_check(
    check_id: str, title: str, severity: Severity = Severity.error
) -> Callable[[Inspect], Inspect]:
    """Register a function of an InfraView (the .tf files as written) as a guardrail."""
    return GUARDRAILS.check(check_id, title, "infra", severity)


def plan_check(
    check_id: str, title: str, severity: Severity = Severity.error
) -> Callable[[Inspect], Inspect]:
    """Register a function of a PlanView (the plan JSON) as a guardrail."""
    return GUARDRAILS.check(check_id, title, "plan", severity)


# -- as written -----------------------------------------------------------------------
def missing(view: InfraView, what: str) -> Observation:
    return Observation(what, view.tfvars_dir, False, f"{what} is not declared")


def is_cmk(module: ModuleView, value: Any, key_types=("aws_kms_key", "aws_kms_alias")) -> bool:
    """A reference to a KMS key (or alias) of this configuration, or a literal KMS ARN."""
    if isinstance(value, str) and value.startswith("arn:") and ":kms:" in value:
        return True
    return any(a.split(".")[0] in key_types for a in module.references(value))


def cmk_problems(module: ModuleView, block: Block, argument: str) -> list[Problem]:
    """The block's ``argument`` must name the project CMK."""
    return unless(
        is_cmk(module, block.get(argument)), argument, f"{argument} must refer to the project CMK"
    )


def is_true(module: ModuleView, value: Any) -> tuple[bool, str]:
    """A literal true, or a bare ${var.x} whose tfvars value (or default) is true."""
    resolved = module.resolve(value)
    if resolved is True:
        return True, ""
    return False, f"is {shown(value)}" + (f" (= {shown(resolved)})" if resolved != value else "")


def shown(value: Any) -> str:
    """A value as it reads in HCL (true, null, "text")."""
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(str(value)) if isinstance(value, str) else repr(value)


def declared_named(view: InfraView, rtype: str, key: str, suffix: str) -> Block | None:
    """The ``rtype`` block whose ``key`` resolves to this environment's ``{prefix}-{env}-{suffix}``."""
    expected = contract.name(view.env, suffix)
    return next(
        (b for b in view.aws.of_type(rtype) if view.aws.resolve(b.get(key)) == expected), None
    )


def declared_tables(view: InfraView) -> list[tuple[str, Block | None]]:
    """(address, block or None) of each contract table."""
    return [(spec.address, view.aws.get(spec.address)) for spec in contract.TABLES]


# -- as planned -----------------------------------------------------------------------
def not_planned(plan: PlanView, what: str) -> Observation:
    return Observation(what, "planned_values", False, f"{what} is not in the plan")


def first(value: Any) -> dict[str, Any]:
    """The first entry of a nested block list (planned values list every block)."""
    items = as_list(value)
    return items[0] if items and isinstance(items[0], dict) else {}


def named(plan: PlanView, rtype: str, key: str, expected: str) -> Planned | None:
    return next((r for r in plan.of_type(rtype) if r.values.get(key) == expected), None)


def project_key(plan: PlanView) -> Planned | None:
    """The project CMK: the one planned aws_kms_key (None when there are none or several)."""
    keys = plan.of_type("aws_kms_key")
    return keys[0] if len(keys) == 1 else None


def planned_tables(plan: PlanView) -> list[tuple[str, Planned | None]]:
    """(address, planned resource or None) of each contract table."""
    return [(spec.address, plan.get(spec.address)) for spec in contract.TABLES]
