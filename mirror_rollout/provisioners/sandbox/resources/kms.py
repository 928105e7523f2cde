"""aws_kms_key, aws_kms_alias."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from mirror_rollout.aws import AwsClients

from .base import ResourceHandler, handler
from .common import (
    arn_account,
    changed,
    error_code,
    given,
    ignoring,
    partition_of,
    reject_unsupported,
    state,
    tag_changes,
    tag_list,
    tags_of,
    unique_name,
)

DEFAULT_DELETION_WINDOW_DAYS = 30


def key_request(config: dict[str, Any]) -> dict[str, Any]:
    """CreateKey arguments. deletion_window_in_days is not one: it is used at delete only."""
    req: dict[str, Any] = {
        "KeyUsage": config.get("key_usage") or "ENCRYPT_DECRYPT",
        "KeySpec": config.get("customer_master_key_spec") or "SYMMETRIC_DEFAULT",
    }
    if given(config.get("description")):
        req["Description"] = config["description"]
    if given(config.get("policy")):
        req["Policy"] = config["policy"]
    if config.get("bypass_policy_lockout_safety_check"):
        req["BypassPolicyLockoutSafetyCheck"] = True
    if config.get("multi_region"):
        req["MultiRegion"] = True
    tags = tags_of(config)
    if tags:
        req["Tags"] = tag_list(tags, "TagKey", "TagValue")
    return req


def rotation_request(key_id: str, config: dict[str, Any]) -> dict[str, Any]:
    req: dict[str, Any] = {"KeyId": key_id}
    if config.get("rotation_period_in_days"):
        req["RotationPeriodInDays"] = int(config["rotation_period_in_days"])
    return req


def deletion_request(prior: dict[str, Any]) -> dict[str, Any]:
    days = prior.get("deletion_window_in_days") or DEFAULT_DELETION_WINDOW_DAYS
    return {"KeyId": prior["id"], "PendingWindowInDays": int(days)}


@handler
class KmsKey(ResourceHandler):
    type = "aws_kms_key"
    force_new = frozenset(
        {
            "key_usage",
            "customer_master_key_spec",
            "multi_region",
            "custom_key_store_id",
            "xks_key_id",
        }
    )

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        reject_unsupported(self.type, config, ("custom_key_store_id", "xks_key_id"))
        kms = aws.client("kms")
        meta = kms.create_key(**key_request(config))["KeyMetadata"]
        key_id = meta["KeyId"]
        if config.get("enable_key_rotation"):
            kms.enable_key_rotation(**rotation_request(key_id, config))
        if config.get("is_enabled") is False:
            kms.disable_key(KeyId=key_id)
        return state(config, id=key_id, key_id=key_id, arn=meta["Arn"])

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        kms = aws.client("kms")
        key_id, arn = prior["id"], prior["arn"]
        enabled = config.get("is_enabled") is not False
        if enabled and prior.get("is_enabled") is False:
            kms.enable_key(KeyId=key_id)  # rotation changes need an enabled key
        if changed(prior, config, "description"):
            kms.update_key_description(KeyId=key_id, Description=config.get("description") or "")
        if changed(prior, config, "policy") and given(config.get("policy")):
            req = {"KeyId": key_id, "PolicyName": "default", "Policy": config["policy"]}
            if config.get("bypass_policy_lockout_safety_check"):
                req["BypassPolicyLockoutSafetyCheck"] = True
            kms.put_key_policy(**req)
        if changed(prior, config, "enable_key_rotation", "rotation_period_in_days"):
            if config.get("enable_key_rotation"):
                kms.enable_key_rotation(**rotation_request(key_id, config))
            else:
                kms.disable_key_rotation(KeyId=key_id)
        if not enabled and prior.get("is_enabled") is not False:
            kms.disable_key(KeyId=key_id)
        upsert, remove = tag_changes(prior, config)
        if remove:
            kms.untag_resource(KeyId=key_id, TagKeys=remove)
        if upsert:
            kms.tag_resource(KeyId=key_id, Tags=tag_list(upsert, "TagKey", "TagValue"))
        return state(config, id=key_id, key_id=key_id, arn=arn)

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        kms = aws.client("kms")
        try:
            kms.schedule_key_deletion(**deletion_request(prior))
        except ClientError as err:
            if error_code(err) == "NotFoundException":
                return
            if error_code(err) == "KMSInvalidStateException":
                with ignoring("NotFoundException"):
                    key_state = kms.describe_key(KeyId=prior["id"])["KeyMetadata"]["KeyState"]
                    if key_state in ("PendingDeletion", "PendingReplicaDeletion"):
                        return  # already scheduled: the key is on its way out
                raise
            raise


def alias_arn(region: str, key_arn: str, name: str) -> str:
    return f"arn:{partition_of(region)}:kms:{region}:{arn_account(key_arn)}:{name}"


@handler
class KmsAlias(ResourceHandler):
    type = "aws_kms_alias"
    force_new = frozenset({"name", "name_prefix"})

    def _computed(self, aws: AwsClients, name: str, target: str) -> dict[str, Any]:
        key_arn = aws.client("kms").describe_key(KeyId=target)["KeyMetadata"]["Arn"]
        return {
            "id": name,
            "name": name,
            "arn": alias_arn(aws.region, key_arn, name),
            "target_key_arn": key_arn,
        }

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        name = config.get("name") or unique_name(config.get("name_prefix") or "alias/")
        aws.client("kms").create_alias(AliasName=name, TargetKeyId=config["target_key_id"])
        return state(config, **self._computed(aws, name, config["target_key_id"]))

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        name = prior["id"]
        if changed(prior, config, "target_key_id"):
            aws.client("kms").update_alias(AliasName=name, TargetKeyId=config["target_key_id"])
        return state(config, **self._computed(aws, name, config["target_key_id"]))

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        with ignoring("NotFoundException"):
            aws.client("kms").delete_alias(AliasName=prior["id"])
