"""SSM and the redaction nonce: versions are runtime data of the nonce flows, never Terraform's;
the deploy role may read them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mirror_rollout import contract
from mirror_rollout.documents import as_list, strings
from tasks.guardrails.base import plan_check, static_check
from tasks.guardrails.common import Observation
from tasks.guardrails.plan_view import AFTER_APPLY, PlanView
from tasks.guardrails.policies import actions_of, glob_match
from tasks.guardrails.view import Block, InfraView

NONCE_OWNERSHIP = (
    "nonce versions (/guardian/{env}/redaction_nonce_v{N}) are runtime data owned by the "
    "nonce-bootstrap and nonce-rotation flows, never by Terraform (DESIGN.md, Nonce)"
)

IDENTITY_POLICY_TYPES = (
    "aws_iam_role_policy",
    "aws_iam_policy",
    "aws_iam_user_policy",
    "aws_iam_group_policy",
)


def declares_nonce_version(name: Any, resource_name: str = "") -> bool:
    """Is an SSM parameter with this (resolved) name / resource name a nonce version?"""
    text = str(name or "")
    return (
        "redaction_nonce" in text
        or bool(contract.NONCE_NAME.match(text))
        or bool(contract.NONCE_LEGACY_NAME.search(text))
        or "nonce" in resource_name.lower()
    )


@static_check(
    "MR-010", "No aws_ssm_parameter declares a nonce version (runtime data of the nonce flows)"
)
def nonce_not_declared(view: InfraView) -> Iterator[Observation]:
    params = view.aws.of_type("aws_ssm_parameter")
    for param in params:
        name = view.aws.resolve(param.get("name"))
        if declares_nonce_version(name, param.name):
            yield Observation(
                param.address,
                param.at("name"),
                False,
                f"{param.address} declares {name!r}: {NONCE_OWNERSHIP}; remove the resource "
                "(where it was applied, add a removed { lifecycle { destroy = false } } block "
                "so Terraform forgets it without deleting the live version)",
            )
        else:
            yield Observation(param.address, param.location, True, f"{name!r} is no nonce")
    if not params:
        yield Observation(
            "aws_ssm_parameter",
            view.tfvars_dir,
            True,
            f"none of {len(view.aws.module.resources)} resources is an aws_ssm_parameter",
        )


_COMMENT = re.compile(r"^\s*(#|//)")


@static_check("MR-011", "The retired nonce path guardian/{env}/redaction/nonce/vN appears nowhere")
def legacy_nonce_path(view: InfraView) -> Iterator[Observation]:
    files = [*view.aws.module.files, *(view.gcp.module.files if view.gcp else [])]
    files += [t.file for t in view.tfvars.values()]
    for shown in files:
        text = (view.root / shown).read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            match = contract.NONCE_LEGACY_NAME.search(line)
            if match and not _COMMENT.match(line):
                yield Observation(
                    shown,
                    f"{shown}:{number}",
                    False,
                    f"{match.group(0)!r} uses the retired guardian/{{env}}/redaction/nonce/vN "
                    f"form; nonce versions are /guardian/{{env}}/redaction_nonce_v{{N}}",
                )
    yield Observation(
        "infra/", view.tfvars_dir, True, f"{len(files)} files read for the retired nonce path"
    )


_HEX64 = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")


@static_check(
    "MR-012", "No nonce or secret generated or written by Terraform (random_*, 64-hex literals)"
)
def no_secret_in_terraform(view: InfraView) -> Iterator[Observation]:
    for resource in view.aws.module.resources:
        if resource.type.startswith("random_"):
            yield Observation(
                resource.address,
                resource.location,
                False,
                f"{resource.type} would put a secret into Terraform state; "
                "the nonce flows generate nonces",
            )
        for text in strings(resource.body):
            if _HEX64.search(text):
                yield Observation(
                    resource.address,
                    resource.location,
                    False,
                    "holds a 64-hex literal that looks like a nonce",
                )
    yield Observation(
        "infra/terraform",
        view.tfvars_dir,
        True,
        f"{len(view.aws.module.resources)} resources hold no generated secret",
    )


def _grants_nonce_read(document: Any, wanted: str) -> list[str]:
    """Sids of the Allow statements that let ssm:GetParameter read the parameter ``wanted``."""
    sids = []
    for statement in as_list((document or {}).get("Statement")):
        if statement.get("Effect") != "Allow" or not any(
            glob_match(a, "ssm:GetParameter") for a in actions_of(statement)
        ):
            continue
        for resource in map(str, as_list(statement.get("Resource"))):
            pattern = resource.partition(":parameter")[2]
            if resource == "*" or (pattern and glob_match(pattern, wanted)):
                sids.append(statement.get("Sid", "?"))
    return sids


@static_check(
    "MR-053",
    "The deploy role may read /guardian/{env}/redaction_nonce_v* (Terraform owns the access)",
)
def nonce_read_access(view: InfraView) -> Iterator[Observation]:
    wanted = contract.nonce_parameter(view.env, 1)
    policies = [p for t in IDENTITY_POLICY_TYPES for p in view.aws.of_type(t)]
    granted: list[tuple[Block, str]] = [
        (policy, sid)
        for policy in policies
        for sid in _grants_nonce_read(view.aws.resolve(policy.document("policy")), wanted)
    ]
    if granted:
        policy, sid = granted[0]
        yield Observation(
            policy.address, policy.at("policy"), True, f"statement {sid} covers {wanted}"
        )
        return
    blamed = policies[0] if policies else None
    yield Observation(
        blamed.address if blamed else "aws_iam_role_policy",
        blamed.at("policy") if blamed else view.tfvars_dir,
        False,
        f"no policy allows ssm:GetParameter on {wanted} (…_v*): the pipeline could not "
        "read the nonce the nonce flows write",
    )


@plan_check(
    "MR-013",
    "The plan creates, keeps or deletes no nonce version (runtime data of the nonce flows)",
)
def nonce_not_planned(plan: PlanView) -> Iterator[Observation]:
    params = plan.of_type("aws_ssm_parameter")
    for param in params:
        name = param.values.get("name")
        if declares_nonce_version(name, param.name):
            yield Observation(
                param.address,
                param.where("name"),
                False,
                f"plans {name!r}: {NONCE_OWNERSHIP}; remove the resource from Terraform",
            )
        elif not param.known("name"):
            yield Observation(param.address, param.where("name"), None, f"name {AFTER_APPLY}")
        else:
            yield Observation(param.address, param.where(), True, f"{name!r} is no nonce")
    for change in plan.deleted:
        before = (change.get("change") or {}).get("before") or {}
        if change.get("type") == "aws_ssm_parameter" and declares_nonce_version(
            before.get("name"), str(change.get("name", ""))
        ):
            yield Observation(
                change["address"],
                f"resource_changes {change['address']}",
                False,
                f"the plan deletes the live nonce version {before.get('name')!r}, which the "
                "Oracle reads; let Terraform forget it instead: a removed { from = "
                f"{change['address']} lifecycle {{ destroy = false }} }} block",
            )
    yield Observation(
        "aws_ssm_parameter",
        "planned_values",
        True,
        f"{len(params)} aws_ssm_parameter planned, {len(plan.deleted)} deletions read",
    )
