"""KMS: the one project CMK, its rotation, deletion window, alias, and who names it."""

from __future__ import annotations

from mirror_rollout import contract
from tasks.guardrails.base import Guardrail, PlanGuardrail, not_planned, project_key
from tasks.guardrails.common import Observation, guardrail, unless


@guardrail
class KeyRotation(Guardrail):
    id = "MR-004"
    title = "KMS key rotation on and an explicit key policy"

    def inspect(self, view):
        keys = view.aws.of_type("aws_kms_key")
        if len(keys) != 1:
            yield Observation(
                "aws_kms_key",
                view.tfvars_dir,
                False,
                f"expected exactly one aws_kms_key (the project CMK), found {len(keys)}",
            )
            return
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
        yield from self.observe(key, problems, "rotation on, explicit key policy")


@guardrail
class KeyDeletionWindow(PlanGuardrail):
    id = "MR-005"
    title = "KMS key rotating, deletion window 7 days (30 in production)"

    def inspect(self, plan):
        key = project_key(plan)
        if key is None:
            yield not_planned(plan, "exactly one aws_kms_key")
            return
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
        yield from self.observe(key, problems, f"rotating, {window} days")


@guardrail
class KeyAlias(PlanGuardrail):
    id = "MR-006"
    title = "KMS alias alias/mirror-dissonance-{env} on the project key"

    def inspect(self, plan):
        expected = f"alias/{contract.PREFIX}-{plan.env}"
        aliases = plan.of_type("aws_kms_alias")
        key = project_key(plan)
        if not aliases:
            yield not_planned(plan, "aws_kms_alias")
        for alias in aliases:
            name = alias.values.get("name")
            problems = unless(
                name == expected, "name", f"name is {name!r}, expected {expected!r}"
            ) + unless(
                key is not None and plan.refers_to(alias, "target_key_id", key),
                "target_key_id",
                "target_key_id must refer to the project key",
            )
            yield from self.observe(alias, problems, expected)


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


@guardrail
class EncryptedWithTheCmk(PlanGuardrail):
    id = "MR-007"
    title = "Every encrypted resource names the project CMK (Terraform's own references)"

    def inspect(self, plan):
        key = project_key(plan)
        if key is None:
            yield not_planned(plan, "exactly one aws_kms_key")
            return
        for resource in (r for r in plan.resources if r.type in KMS_ARGUMENTS):
            path = KMS_ARGUMENTS[resource.type]
            expression = plan.expression(resource, path)
            constant = str((expression or {}).get("constant_value") or "")
            ok = plan.refers_to(resource, path, key) or (":kms:" in constant)
            yield from self.observe(
                resource,
                unless(ok, path, f"{path} must refer to {key.config_address}"),
                f"{path} -> {key.config_address}",
            )
