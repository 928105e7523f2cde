"""Data sources: aws_caller_identity, aws_partition, aws_region."""

from __future__ import annotations

from typing import Any

from mirror_rollout.aws import AwsClients

from .base import DataSource, data_source
from .common import given, partition_info


@data_source
class CallerIdentity(DataSource):
    type = "aws_caller_identity"

    def read(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        who = aws.client("sts").get_caller_identity()
        return {
            **config,
            "id": who["Account"],
            "account_id": who["Account"],
            "arn": who["Arn"],
            "user_id": who["UserId"],
        }


def partition_attributes(region: str) -> dict[str, Any]:
    info = partition_info(region)
    dns_suffix = info["dns_suffix"]
    return {
        "id": info["partition"],
        "partition": info["partition"],
        "dns_suffix": dns_suffix,
        "reverse_dns_prefix": ".".join(reversed(dns_suffix.split("."))),
    }


@data_source
class Partition(DataSource):
    type = "aws_partition"

    def read(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, **partition_attributes(aws.region)}


def region_attributes(region: str) -> dict[str, Any]:
    info = partition_info(region)
    return {
        "id": region,
        "name": region,
        "description": info["description"],
        "endpoint": f"ec2.{region}.{info['dns_suffix']}",
    }


@data_source
class Region(DataSource):
    type = "aws_region"

    def read(self, aws: AwsClients, config: dict[str, Any]) -> dict[str, Any]:
        region = config.get("name") if given(config.get("name")) else aws.region
        return {**config, **region_attributes(str(region))}
