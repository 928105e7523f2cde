"""KMS: the one project CMK, its rotation, deletion window, alias, and who names it."""

from __future__ import annotations

from collections.abc import Iterator

from mirror_rollout import contract
from mirror_rollout.documents import as_list
from tasks.guardrails.base import not_planned, plan_check, project_key, static_check
from tasks.guardrails.common import Observation, each_found, observe, unless
from tasks.guardrails.plan_view import Planned, PlanView
from tasks.guardrails.view import InfraView

ONE_KEY = "exactly one aws_kms_key"


@static_check("MR-004", "KMS key rotation on and an explicit key policy")
def key_rotation(view: InfraView) -> Iterator[Observation]:
    keys = view.aws.of_type("aws_kms_key")
    if len(keys) != 1:
        message = f"expected exactly one aws_kms_key (the project CMK), found {len(keys)}"
        return iter([Observation("aws_kms_key", view.tfvars_dir, False, message)])
    key = keys[0]
    problems = unless(
        key.get("enable_key_rotation") is True,
        "enable_key_rotation",
        "enable_key_rotation must be true",
    ) + unless(
        isinstance(key.document("policy"), dict),
        "policy",
        "an explicit key policy (policy = jsonencode({...})) is required",
    )
    return observe(key, problems, "rotation on, explicit key policy")


def _deletion_window(plan: PlanView, key: Planned) -> Iterator[Observation]:
    expected = contract.kms_deletion_window_days(plan.env)
    window = key.values.get("deletion_window_in_days")
    problems = unless(
        window == expected,
        "deletion_window_in_days",
        f"deletion_window_in_days is {window!r} for {plan.env}, expected {expected} "
        f"(set kms_deletion_window_days in {plan.env}.tfvars)",
    ) + unless(
        key.values.get("enable_key_rotation") is True,
        "enable_key_rotation",
        "enable_key_rotation is not true",
    )
    return observe(key, problems, f"rotating, {window} days")


@plan_check("MR-005", "KMS key rotating, deletion window 7 days (30 in production)")
def key_deletion_window(plan: PlanView) -> Iterator[Observation]:
    key = project_key(plan)
    found = as_list(key)
    return each_found(found, not_planned(plan, ONE_KEY), lambda k: _deletion_window(plan, k))


@plan_check("MR-006", "KMS alias alias/mirror-dissonance-{env} on the project key")
def key_alias(plan: PlanView) -> Iterator[Observation]:
    expected = f"alias/{contract.PREFIX}-{plan.env}"
    key = project_key(plan)

    def judge(alias: Planned) -> Iterator[Observation]:
        name = alias.values.get("name")
        problems = unless(
            name == expected, "name", f"name is {name!r}, expected {expected!r}"
        ) + unless(
            key is not None and plan.refers_to(alias, "target_key_id", key),
            "target_key_id",
            "target_key_id must refer to the project key",
        )
        return observe(alias, problems, expected)

    return each_found(plan.of_type("aws_kms_alias"), not_planned(plan, "aws_kms_alias"), judge)


#: Where each encrypted resource type names its KMS key.
KMS_ARGUMENTS: dict[str, str] = {
    "aws_dynamodb_table": "server_side_encryption.kms_key_arn",
    "aws_sns_topic": "kms_master_key_id",
    "aws_s3_bucket_server_side_encryption_configuration": (
        "rule.apply_server_side_encryption_by_default.kms_master_key_id"
    ),
    "aws_cloudtrail": "kms_key_id",
    "aws_backup_vault": "kms_key_arn",
    "aws_cloudwatch_log_group": "kms_key_id",
}


def _names_the_key(plan: PlanView, key: Planned) -> Iterator[Observation]:
    for resource in (r for r in plan.resources if r.type in KMS_ARGUMENTS):
        path = KMS_ARGUMENTS[resource.type]
        expression = plan.expression(resource, path)
        constant = str((expression or {}).get("constant_value") or "")
        ok = plan.refers_to(resource, path, key) or (":kms:" in constant)
        yield from observe(
            resource,
            unless(ok, path, f"{path} must refer to {key.config_address}"),
            f"{path} -> {key.config_address}",
        )


@plan_check("MR-007", "Every encrypted resource names the project CMK (Terraform's own references)")
def encrypted_with_the_cmk(plan: PlanView) -> Iterator[Observation]:
    key = project_key(plan)
    found = as_list(key)
    return each_found(found, not_planned(plan, ONE_KEY), lambda k: _names_the_key(plan, k))
