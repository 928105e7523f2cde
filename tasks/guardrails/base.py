"""The two kinds of guardrail (over the .tf files as written, over the plan JSON) and the
small readings their checks share."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from mirror_rollout import contract
from mirror_rollout.documents import as_list
from tasks.guardrails.common import Check, Observation, Problem, observations
from tasks.guardrails.plan_view import Planned, PlanView
from tasks.guardrails.view import Block, InfraView, ModuleView


# -- over the .tf files as written ---------------------------------------------------
class Guardrail(Check[InfraView]):
    reads = "infra"

    @staticmethod
    def observe(
        block: Block, problems: Sequence[Problem], ok_message: str
    ) -> Iterator[Observation]:
        """One observation per (argument path, problem), blamed on that argument's line."""
        return observations(block.address, block.location, block.at, problems, ok_message)


def missing(view: InfraView, what: str) -> Observation:
    return Observation(what, view.tfvars_dir, False, f"{what} is not declared")


def is_cmk(module: ModuleView, value: Any, key_types=("aws_kms_key", "aws_kms_alias")) -> bool:
    """A reference to a KMS key (or alias) of this configuration, or a literal KMS ARN."""
    if isinstance(value, str) and value.startswith("arn:") and ":kms:" in value:
        return True
    return any(a.split(".")[0] in key_types for a in module.references(value))


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


def declared_tables(view: InfraView) -> Iterator[tuple[contract.TableSpec, Block | None]]:
    for spec in contract.TABLES:
        yield spec, view.aws.get(spec.address)


# -- over the plan JSON ---------------------------------------------------------------
class PlanGuardrail(Check[PlanView]):
    reads = "plan"

    @staticmethod
    def observe(resource: Planned, problems: Sequence[Problem], ok: str) -> Iterator[Observation]:
        return observations(resource.address, resource.where(), resource.where, problems, ok)


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
