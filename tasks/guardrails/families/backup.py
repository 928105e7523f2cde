"""AWS Backup: a CMK-encrypted vault, a plan with retention into it, a selection of the tables."""

from __future__ import annotations

from collections.abc import Iterator

from mirror_rollout import contract
from tasks.guardrails.base import cmk_problems, missing, static_check
from tasks.guardrails.common import Observation, Problem, observe, unless
from tasks.guardrails.view import Block, InfraView, ModuleView


def rule_problems(aws: ModuleView, plan: Block, vaults: list[Block]) -> list[Problem]:
    """Each backup rule keeps its recovery points for a while, in the declared vault."""
    rules = plan.blocks("rule")
    problems = unless(bool(rules), "", "the plan has no rule")
    for i, rule in enumerate(rules):
        path = "rule" if i == 0 else f"rule[{i}]"
        name = rule.get("rule_name")
        problems += unless(
            bool((rule.get("lifecycle") or [{}])[0].get("delete_after")),
            path,
            f"rule {name!r}: lifecycle.delete_after is required",
        ) + unless(
            aws.refers_to(rule.get("target_vault_name"), *(v.address for v in vaults)),
            path,
            f"rule {name!r}: target_vault_name must refer to the vault",
        )
    return problems


@static_check(
    "MR-062",
    ("AWS Backup: CMK-encrypted vault, a plan with retention, a selection of the three tables"),
)
def backup_coverage(view: InfraView) -> Iterator[Observation]:
    aws = view.aws
    found = {
        t: aws.of_type(t) for t in ("aws_backup_vault", "aws_backup_plan", "aws_backup_selection")
    }
    for what, blocks in found.items():
        if not blocks:
            yield missing(view, what)
    vaults = found["aws_backup_vault"]
    for vault in vaults:
        yield from observe(vault, cmk_problems(aws, vault, "kms_key_arn"), "CMK-encrypted vault")
    for plan in found["aws_backup_plan"]:
        rules = plan.blocks("rule")
        yield from observe(
            plan, rule_problems(aws, plan, vaults), f"{len(rules)} rule(s) with retention"
        )
    for selection in found["aws_backup_selection"]:
        chosen = aws.references(selection.get("resources"))
        lacking = [s.address for s in contract.TABLES if s.address not in chosen]
        yield from observe(
            selection,
            [("resources", f"does not select {a}") for a in lacking],
            "all three tables",
        )
