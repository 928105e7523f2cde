"""aws_dynamodb_table."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from mirror_rollout.aws import AwsClients

from .base import ResourceHandler, handler
from .common import (
    block,
    blocks,
    changed,
    error_code,
    given,
    ignoring,
    reject_unsupported,
    state,
    tag_changes,
    tag_list,
    tags_of,
    wait_until,
)

# Arguments the provider accepts but the sandbox engine does not apply.
UNSUPPORTED = (
    "replica",
    "import_table",
    "restore_source_name",
    "restore_source_table_arn",
    "restore_date_time",
    "restore_to_latest_time",
    "on_demand_throughput",
)


def _billing(config: dict[str, Any]) -> str:
    return config.get("billing_mode") or "PROVISIONED"  # the provider's default


def _throughput(spec: dict[str, Any]) -> dict[str, int]:
    return {
        "ReadCapacityUnits": int(spec.get("read_capacity") or 0),
        "WriteCapacityUnits": int(spec.get("write_capacity") or 0),
    }


def key_schema(hash_key: str, range_key: str | None = None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if given(range_key):
        schema.append({"AttributeName": str(range_key), "KeyType": "RANGE"})
    return schema


def _projection(index: dict[str, Any]) -> dict[str, Any]:
    projection: dict[str, Any] = {"ProjectionType": index.get("projection_type") or "ALL"}
    if index.get("non_key_attributes"):
        projection["NonKeyAttributes"] = list(index["non_key_attributes"])
    return projection


def gsi_request(index: dict[str, Any], billing_mode: str) -> dict[str, Any]:
    req: dict[str, Any] = {
        "IndexName": index["name"],
        "KeySchema": key_schema(index["hash_key"], index.get("range_key")),
        "Projection": _projection(index),
    }
    if billing_mode == "PROVISIONED":
        req["ProvisionedThroughput"] = _throughput(index)
    return req


def attribute_definitions(config: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"AttributeName": a["name"], "AttributeType": a["type"]}
        for a in blocks(config, "attribute")
    ]


def sse_specification(config: dict[str, Any]) -> dict[str, Any] | None:
    """SSESpecification; None when the block is absent (AWS-owned key, the AWS default)."""
    sse = block(config, "server_side_encryption")
    if not sse:
        return None
    if not sse.get("enabled"):
        return {"Enabled": False}
    spec: dict[str, Any] = {"Enabled": True, "SSEType": "KMS"}
    if given(sse.get("kms_key_arn")):
        spec["KMSMasterKeyId"] = sse["kms_key_arn"]
    return spec


def stream_specification(config: dict[str, Any]) -> dict[str, Any] | None:
    if config.get("stream_enabled"):
        return {"StreamEnabled": True, "StreamViewType": config.get("stream_view_type") or ""}
    return None


def table_request(config: dict[str, Any]) -> dict[str, Any]:
    """CreateTable arguments for a table's configuration."""
    billing = _billing(config)
    req: dict[str, Any] = {
        "TableName": config["name"],
        "BillingMode": billing,
        "KeySchema": key_schema(config["hash_key"], config.get("range_key")),
        "AttributeDefinitions": attribute_definitions(config),
    }
    if billing == "PROVISIONED":
        req["ProvisionedThroughput"] = _throughput(config)
    gsis = [gsi_request(i, billing) for i in blocks(config, "global_secondary_index")]
    if gsis:
        req["GlobalSecondaryIndexes"] = gsis
    lsis = [
        {
            "IndexName": i["name"],
            "KeySchema": key_schema(config["hash_key"], i["range_key"]),
            "Projection": _projection(i),
        }
        for i in blocks(config, "local_secondary_index")
    ]
    if lsis:
        req["LocalSecondaryIndexes"] = lsis
    sse = sse_specification(config)
    if sse and sse["Enabled"]:
        req["SSESpecification"] = sse
    stream = stream_specification(config)
    if stream:
        req["StreamSpecification"] = stream
    if given(config.get("table_class")):
        req["TableClass"] = config["table_class"]
    if config.get("deletion_protection_enabled") is not None:
        req["DeletionProtectionEnabled"] = bool(config["deletion_protection_enabled"])
    tags = tags_of(config)
    if tags:
        req["Tags"] = tag_list(tags)
    return req


def ttl_specification(config: dict[str, Any]) -> dict[str, Any] | None:
    """TimeToLiveSpecification when TTL is enabled, else None."""
    ttl = block(config, "ttl")
    if ttl.get("enabled") and given(ttl.get("attribute_name")):
        return {"Enabled": True, "AttributeName": ttl["attribute_name"]}
    return None


def pitr_specification(config: dict[str, Any]) -> dict[str, Any]:
    pitr = block(config, "point_in_time_recovery")
    spec: dict[str, Any] = {"PointInTimeRecoveryEnabled": bool(pitr.get("enabled"))}
    if pitr.get("enabled") and pitr.get("recovery_period_in_days"):
        spec["RecoveryPeriodInDays"] = int(pitr["recovery_period_in_days"])
    return spec


def _describe(ddb: Any, name: str) -> dict[str, Any]:
    return ddb.describe_table(TableName=name)["Table"]


def _wait_active(ddb: Any, name: str) -> dict[str, Any]:
    """Wait until the table and all its GSIs are ACTIVE; return the description."""
    found: dict[str, Any] = {}

    def active() -> bool:
        found.update(_describe(ddb, name))
        return found.get("TableStatus") == "ACTIVE" and all(
            g.get("IndexStatus", "ACTIVE") == "ACTIVE"
            for g in found.get("GlobalSecondaryIndexes", [])
        )

    wait_until(active, f"DynamoDB table {name} to become ACTIVE")
    return found


def _computed(table: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": table["TableName"],
        "arn": table["TableArn"],
        "stream_arn": table.get("LatestStreamArn", ""),
        "stream_label": table.get("LatestStreamLabel", ""),
    }


@handler
class DynamoDbTable(ResourceHandler):
    type = "aws_dynamodb_table"
    force_new = frozenset(
        {
            "name",
            "hash_key",
            "range_key",
            "local_secondary_index",
            "restore_source_name",
            "restore_source_table_arn",
            "restore_date_time",
            "restore_to_latest_time",
            "import_table",
        }
    )

    def create(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        reject_unsupported(self.type, config, UNSUPPORTED)
        ddb = aws.client("dynamodb")
        name = config["name"]
        ddb.create_table(**table_request(config))
        table = _wait_active(ddb, name)
        ttl = ttl_specification(config)
        if ttl:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        if block(config, "point_in_time_recovery").get("enabled"):
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification=pitr_specification(config)
            )
        return state(config, **_computed(table))

    def update(
        self, aws: AwsClients, prior: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        reject_unsupported(self.type, config, UNSUPPORTED)
        ddb = aws.client("dynamodb")
        name = prior["id"]
        billing = _billing(config)

        def update_table(**kwargs: Any) -> None:
            ddb.update_table(TableName=name, **kwargs)
            _wait_active(ddb, name)

        if changed(prior, config, "billing_mode", "read_capacity", "write_capacity"):
            kwargs: dict[str, Any] = {"BillingMode": billing}
            if billing == "PROVISIONED":
                kwargs["ProvisionedThroughput"] = _throughput(config)
            update_table(**kwargs)
        if changed(prior, config, "stream_enabled", "stream_view_type"):
            update_table(
                StreamSpecification=stream_specification(config) or {"StreamEnabled": False}
            )
        self._update_gsis(prior, config, update_table)
        if changed(prior, config, "server_side_encryption"):
            update_table(SSESpecification=sse_specification(config) or {"Enabled": False})
        if changed(prior, config, "deletion_protection_enabled"):
            update_table(DeletionProtectionEnabled=bool(config.get("deletion_protection_enabled")))
        if changed(prior, config, "table_class") and given(config.get("table_class")):
            update_table(TableClass=config["table_class"])
        if changed(prior, config, "ttl"):
            self._update_ttl(ddb, name, prior, config)
        if changed(prior, config, "point_in_time_recovery"):
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification=pitr_specification(config)
            )
        upsert, remove = tag_changes(prior, config)
        if remove:
            ddb.untag_resource(ResourceArn=prior["arn"], TagKeys=remove)
        if upsert:
            ddb.tag_resource(ResourceArn=prior["arn"], Tags=tag_list(upsert))
        return state(config, **_computed(_describe(ddb, name)))

    @staticmethod
    def _update_gsis(prior: dict[str, Any], config: dict[str, Any], update_table: Any) -> None:
        """One index change per UpdateTable call, as DynamoDB requires. A changed index
        (keys or projection) is deleted and created again, as the provider does."""
        billing = _billing(config)
        old = {i["name"]: i for i in blocks(prior, "global_secondary_index")}
        new = {i["name"]: i for i in blocks(config, "global_secondary_index")}
        attrs = attribute_definitions(config)
        for name, index in old.items():
            if name not in new or _gsi_shape(index) != _gsi_shape(new[name]):
                update_table(GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": name}}])
        for name, index in new.items():
            if name not in old or _gsi_shape(index) != _gsi_shape(old[name]):
                update_table(
                    AttributeDefinitions=attrs,
                    GlobalSecondaryIndexUpdates=[{"Create": gsi_request(index, billing)}],
                )
            elif billing == "PROVISIONED" and _throughput(index) != _throughput(old[name]):
                update_table(
                    GlobalSecondaryIndexUpdates=[
                        {"Update": {"IndexName": name, "ProvisionedThroughput": _throughput(index)}}
                    ]
                )

    @staticmethod
    def _update_ttl(ddb: Any, name: str, prior: dict[str, Any], config: dict[str, Any]) -> None:
        old, new = ttl_specification(prior), ttl_specification(config)
        if old and (not new or old["AttributeName"] != new["AttributeName"]):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": False, "AttributeName": old["AttributeName"]},
            )
        if new and new != old:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=new)

    def delete(self, aws: AwsClients, prior: dict[str, Any]) -> None:
        # A table with deletion protection on refuses deletion (ValidationException), as
        # it does under Terraform: turn protection off in the config and apply first.
        ddb = aws.client("dynamodb")
        name = prior["id"]
        with ignoring("ResourceNotFoundException"):
            ddb.delete_table(TableName=name)

        def gone() -> bool:
            try:
                _describe(ddb, name)
            except ClientError as err:
                if error_code(err) == "ResourceNotFoundException":
                    return True
                raise
            return False

        wait_until(gone, f"DynamoDB table {name} to be deleted")


def _gsi_shape(index: dict[str, Any]) -> tuple[Any, ...]:
    return (
        index.get("hash_key"),
        index.get("range_key") or None,
        index.get("projection_type") or "ALL",
        tuple(sorted(index.get("non_key_attributes") or ())),
    )
