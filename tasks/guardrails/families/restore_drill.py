"""The restore drill's grants to the deploy role: restore from the three tables only, touch
no table but the drill's own copies."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from mirror_rollout import contract
from mirror_rollout.documents import as_list
from tasks.guardrails.base import missing, not_planned, plan_check, static_check
from tasks.guardrails.common import Observation, each_found, observe
from tasks.guardrails.families.nonce import IDENTITY_POLICY_TYPES
from tasks.guardrails.plan_view import AFTER_APPLY, Planned, PlanView, planned_document
from tasks.guardrails.policies import actions_of, allows, glob_match
from tasks.guardrails.view import InfraView

#: What the drill may do to its own copies: describe, scan, delete, and the item writes
#: DynamoDB needs on a restore's target table. Nothing else, and nothing on other tables.
DRILL_COPY_ACTIONS = frozenset(
    {
        "dynamodb:DescribeTable",
        "dynamodb:Scan",
        "dynamodb:DeleteTable",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    }
)
#: The drill's needs that must be granted on its copies.
DRILL_COPY_NEEDS = ("dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:DeleteTable")
RESTORE = "dynamodb:RestoreTableToPointInTime"
DELETE_TABLE = "dynamodb:DeleteTable"
DEPLOY_ROLE = "aws_iam_role.github_deploy"
DEPLOY_POLICY = f"aws_iam_role_policy of {DEPLOY_ROLE}"


def _table_of(environment: str, resource: str) -> str:
    """The table name (pattern) an IAM resource names; "*" for every table, "" for no table.

    A resource is an ARN (as planned, or as written with interpolations resolved) or a
    reference to a contract table's ``arn`` (as written).
    """
    for spec in contract.TABLES:
        if resource.strip() == f"${{{spec.address}.arn}}":
            return spec.name(environment)
    if resource == "*":
        return "*"
    arn = resource.split(":", 5)
    if len(arn) == 6 and arn[2] in ("dynamodb", "*"):
        kind, _, name = arn[5].partition("/")
        if kind in ("table", "*") and "/" not in name:
            return name or "*"
        return "*" if kind == "*" else ""
    # An expression the reader cannot resolve: itself, which no rule accepts.
    return resource if "${" in resource else ""


def drill_only(environment: str, pattern: str) -> bool:
    """Can the table name pattern match nothing but this environment's drill copies?"""
    from tasks.restore_drill.checks import DRILL_MARKER

    prefix = contract.name(environment, "")
    return pattern.startswith(prefix) and DRILL_MARKER in pattern and "${" not in pattern


@dataclass
class _Grants:
    """What the Allow statements of one document grant the drill, read one at a time."""

    env: str
    sources: set[str]
    a_copy: str  # one drill copy's name, to see what the copies are granted
    problems: list[str] = field(default_factory=list)
    restorable: set[str] = field(default_factory=set)
    on_copies: set[str] = field(default_factory=set)

    def read(self, statement: dict) -> None:
        sid = statement.get("Sid", "?")
        actions = actions_of(statement)
        tables = [_table_of(self.env, str(r)) for r in as_list(statement.get("Resource"))]
        if any(glob_match(a, RESTORE) for a in actions):
            self._restores(sid, tables)
        if any(glob_match(a, DELETE_TABLE) for a in actions):
            self.problems += [
                f"statement {sid} allows deleting {table!r}, not only drill copies "
                f"({contract.name(self.env, '')}<table>-drill-*)"
                for table in tables
                if table and not drill_only(self.env, table)
            ]
        drill = [t for t in tables if t and drill_only(self.env, t)]
        if drill:
            self._on_copies(sid, actions, drill)

    def _restores(self, sid: str, tables: list[str]) -> None:
        for table in tables:
            if table in self.sources:
                self.restorable.add(table)
            else:
                self.problems.append(
                    f"statement {sid} allows restoring from {table or 'a non-table resource'}"
                    f": only {', '.join(sorted(self.sources))}"
                )

    def _on_copies(self, sid: str, actions: list[str], drill: list[str]) -> None:
        wider = [a for a in actions if not any(glob_match(a, d) for d in DRILL_COPY_ACTIONS)]
        wider += [a for a in actions if "*" in a or "?" in a]
        if wider:
            self.problems.append(
                f"statement {sid} grants {sorted(set(wider))} on drill copies: only "
                + ", ".join(sorted(DRILL_COPY_ACTIONS))
            )
        if any(glob_match(t, self.a_copy) for t in drill):
            self.on_copies |= {need for need in DRILL_COPY_NEEDS if need in actions}

    def lacking(self) -> list[str]:
        """What the drill needs and no statement grants."""
        problems = []
        missing_sources = sorted(self.sources - self.restorable)
        if missing_sources:
            problems.append(f"no statement allows {RESTORE} on {', '.join(missing_sources)}")
        lacking = [need for need in DRILL_COPY_NEEDS if need not in self.on_copies]
        if lacking:
            problems.append(
                f"no statement allows {', '.join(lacking)} on the drill copies ({self.a_copy})"
            )
        return problems


def drill_grant_problems(env: str, document: Any, require: bool = True) -> list[str]:
    """Why an identity policy grants the restore drill more (or, with ``require``, less)
    than it needs."""
    from tasks.restore_drill.checks import drill_table_name, source_tables

    grants = _Grants(
        env, source_tables(env), drill_table_name(env, contract.TABLES[0].key, "0" * 8)
    )
    for statement in allows(document):
        grants.read(statement)
    return grants.problems + (grants.lacking() if require else [])


def _drill_grants(env: str, policy: Any, document: Any) -> Iterator[Observation]:
    problems = [("policy", p) for p in drill_grant_problems(env, document)]
    return observe(policy, problems, "restore drill scoped to its copies")


@static_check(
    "MR-057",
    "Deploy role: restores from the three tables only; describes, reads and deletes only "
    "restore-drill copies",
)
def restore_drill_grants(view: InfraView) -> Iterator[Observation]:
    policies = [
        p
        for t in IDENTITY_POLICY_TYPES
        for p in view.aws.of_type(t)
        if view.aws.refers_to(p.get("role"), DEPLOY_ROLE)
    ]
    return each_found(
        policies,
        missing(view, DEPLOY_POLICY),
        lambda p: _drill_grants(view.env, p, view.aws.resolve(p.document("policy"))),
    )


def _planned_drill_grants(env: str, policy: Planned) -> Iterator[Observation]:
    document, why = planned_document(policy, "policy")
    if why:
        after_apply = why.endswith(AFTER_APPLY)
        note = f"{why} (it names the tables' ARNs); MR-057 read it as written"
        yield Observation(
            policy.address,
            policy.where("policy"),
            None if after_apply else False,
            note if after_apply else why,
        )
        return
    # What the drill lacks is MR-057's; evaluated values must never grant more.
    problems = [("policy", p) for p in drill_grant_problems(env, document, require=False)]
    yield from observe(policy, problems, "restore drill scoped to its copies")


@plan_check(
    "MR-058",
    "Deploy role as planned: restores from no other table than the three, deletes no table "
    "but restore-drill copies",
)
def planned_restore_drill_grants(plan: PlanView) -> Iterator[Observation]:
    role = plan.get(DEPLOY_ROLE)
    policies = [
        r
        for r in plan.resources
        if r.type in IDENTITY_POLICY_TYPES and role is not None and plan.refers_to(r, "role", role)
    ]
    return each_found(
        policies, not_planned(plan, DEPLOY_POLICY), partial(_planned_drill_grants, plan.env)
    )
