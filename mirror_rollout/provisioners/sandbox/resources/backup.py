"""aws_backup_vault, aws_backup_plan, aws_backup_selection.

Verified against moto 5.2.5 (server mode): CreateBackupVault, DescribeBackupVault,
DeleteBackupVault, CreateBackupPlan, GetBackupPlan, DeleteBackupPlan and tagging
work; UpdateBackupPlan, CreateBackupSelection, GetBackupSelection and
ListBackupSelections answer HTTP 500 (moto raises NotImplementedError). moto never
runs a backup job either, so a vault holds no recovery points.
"""

from __future__ import annotations

from typing import Any

from mirror_rollout.aws import AwsClients

from .base import NotProvisionable, ResourceHandler, handler
from .common import (
    block,
    blocks,
    changed,
    given,
    ignoring,
    moto_gap,
    state,
    tag_changes,
    tags_of,
)

SELECTION_GAP = (
    "moto does not implement AWS Backup selections "
    "(CreateBackupSelection / ListBackupSelections answer HTTP 500 NotImplementedError)"
)
PLAN_UPDATE_GAP = "moto does not implement UpdateBackupPlan (HTTP 500 NotImplementedError)"


def _retag(client: Any, arn: str, prior: dict[str, Any], config: dict[str, Any]) -> None:
    upsert, remove = tag_changes(prior, config)
    if remove:
        client.untag_resource(ResourceArn=arn, TagKeyList=remove)
    if upsert:
        client.tag_resource(ResourceArn=arn, Tags=upsert)


# ---------------------------------------------------------------------------
# aws_backup_vault
# ---------------------------------------------------------------------------


def vault_request(config: dict[str, Any]) -> dict[str, Any]:
    req: dict[str, Any] = {"BackupVaultName": config["name"]}
    if given(config.get("kms_key_arn")):
        req["EncryptionKeyArn"] = config["kms_key_arn"]
    tags = tags_of(config)
    if tags:
        req["BackupVaultTags"] = tags
    return req


@handler
class BackupVault(ResourceHandler):
    type = "aws_backup_vault"
    force_new = frozenset({"name", "kms_key_arn"})

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        out = aws.client("backup").create_backup_vault(**vault_request(config))
        return state(config, id=config["name"], arn=out["BackupVaultArn"], recovery_points=0)

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        # force_destroy lives in state only; tags are the in-place change.
        _retag(aws.client("backup"), prior["arn"], prior, config)
        return state(
            config,
            id=prior["id"],
            arn=prior["arn"],
            recovery_points=prior.get("recovery_points", 0),
        )

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        # A vault with recovery points refuses deletion; moto never creates any (no backup
        # jobs run), so force_destroy has nothing to delete here.
        with ignoring("ResourceNotFoundException", "AccessDeniedException"):
            aws.client("backup").delete_backup_vault(BackupVaultName=prior["id"])


# ---------------------------------------------------------------------------
# aws_backup_plan
# ---------------------------------------------------------------------------


def _lifecycle(config: dict[str, Any]) -> dict[str, Any] | None:
    lifecycle = block(config, "lifecycle")
    if not lifecycle:
        return None
    out: dict[str, Any] = {}
    if lifecycle.get("delete_after"):
        out["DeleteAfterDays"] = int(lifecycle["delete_after"])
    if lifecycle.get("cold_storage_after"):
        out["MoveToColdStorageAfterDays"] = int(lifecycle["cold_storage_after"])
    if lifecycle.get("opt_in_to_archive_for_supported_resources"):
        out["OptInToArchiveForSupportedResources"] = True
    return out


def backup_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """One ``rule`` block -> BackupRuleInput, with the provider's defaults."""
    out: dict[str, Any] = {
        "RuleName": rule["rule_name"],
        "TargetBackupVaultName": rule["target_vault_name"],
        "StartWindowMinutes": int(rule.get("start_window") or 60),
        "CompletionWindowMinutes": int(rule.get("completion_window") or 180),
        "EnableContinuousBackup": bool(rule.get("enable_continuous_backup")),
        "ScheduleExpressionTimezone": rule.get("schedule_expression_timezone") or "Etc/UTC",
    }
    if given(rule.get("schedule")):
        out["ScheduleExpression"] = rule["schedule"]
    lifecycle = _lifecycle(rule)
    if lifecycle:
        out["Lifecycle"] = lifecycle
    if rule.get("recovery_point_tags"):
        out["RecoveryPointTags"] = {str(k): str(v) for k, v in rule["recovery_point_tags"].items()}
    copies = []
    for copy in blocks(rule, "copy_action"):
        action: dict[str, Any] = {"DestinationBackupVaultArn": copy["destination_vault_arn"]}
        copy_lifecycle = _lifecycle(copy)
        if copy_lifecycle:
            action["Lifecycle"] = copy_lifecycle
        copies.append(action)
    if copies:
        out["CopyActions"] = copies
    return out


def backup_plan_input(config: dict[str, Any]) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "BackupPlanName": config["name"],
        "Rules": [backup_rule(r) for r in blocks(config, "rule")],
    }
    settings = [
        {"ResourceType": s["resource_type"], "BackupOptions": dict(s.get("backup_options") or {})}
        for s in blocks(config, "advanced_backup_setting")
    ]
    if settings:
        plan["AdvancedBackupSettings"] = settings
    return plan


def plan_request(config: dict[str, Any]) -> dict[str, Any]:
    req: dict[str, Any] = {"BackupPlan": backup_plan_input(config)}
    tags = tags_of(config)
    if tags:
        req["BackupPlanTags"] = tags
    return req


@handler
class BackupPlan(ResourceHandler):
    type = "aws_backup_plan"
    force_new = frozenset({"name"})

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        out = aws.client("backup").create_backup_plan(**plan_request(config))
        return state(
            config, id=out["BackupPlanId"], arn=out["BackupPlanArn"], version=out["VersionId"]
        )

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        backup = aws.client("backup")
        version = prior.get("version")
        if changed(prior, config, "rule", "advanced_backup_setting"):
            with moto_gap(PLAN_UPDATE_GAP):
                version = backup.update_backup_plan(
                    BackupPlanId=prior["id"], BackupPlan=backup_plan_input(config)
                )["VersionId"]
        _retag(backup, prior["arn"], prior, config)
        return state(config, id=prior["id"], arn=prior["arn"], version=version)

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        with ignoring("ResourceNotFoundException"):
            aws.client("backup").delete_backup_plan(BackupPlanId=prior["id"])


# ---------------------------------------------------------------------------
# aws_backup_selection
# ---------------------------------------------------------------------------


def selection_request(config: dict[str, Any]) -> dict[str, Any]:
    """CreateBackupSelection arguments (what a real account receives; moto has no such call)."""
    selection: dict[str, Any] = {
        "SelectionName": config["name"],
        "IamRoleArn": config["iam_role_arn"],
    }
    if config.get("resources"):
        selection["Resources"] = list(config["resources"])
    if config.get("not_resources"):
        selection["NotResources"] = list(config["not_resources"])
    tags = [
        {"ConditionType": t["type"], "ConditionKey": t["key"], "ConditionValue": t["value"]}
        for t in blocks(config, "selection_tag")
    ]
    if tags:
        selection["ListOfTags"] = tags
    return {"BackupPlanId": config["plan_id"], "BackupSelection": selection}


@handler
class BackupSelection(ResourceHandler):
    type = "aws_backup_selection"
    force_new = frozenset(
        {
            "name",
            "plan_id",
            "iam_role_arn",
            "resources",
            "not_resources",
            "selection_tag",
            "condition",
        }
    )
    provisionable = False
    not_provisionable_reason = SELECTION_GAP

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        raise NotProvisionable(SELECTION_GAP)

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        raise NotProvisionable(SELECTION_GAP)

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        raise NotProvisionable(SELECTION_GAP)
