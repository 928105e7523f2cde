"""Plain boto3 reads of the sandbox, to prove what a run did or did not change."""

from __future__ import annotations

import boto3

from mirror_rollout import contract


def client(service: str):
    return boto3.client(service, region_name="us-east-1")


#: The state backend (bucket + lock table) is bootstrapped by the first plan; it is
#: not part of the environment an apply changes.
BACKEND = {contract.STATE_BUCKET, contract.LOCK_TABLE}


def inventory() -> dict[str, list[str]]:
    return {
        "tables": sorted(set(client("dynamodb").list_tables()["TableNames"]) - BACKEND),
        "alarms": sorted(
            a["AlarmName"] for a in client("cloudwatch").describe_alarms()["MetricAlarms"]
        ),
        "buckets": sorted({b["Name"] for b in client("s3").list_buckets()["Buckets"]} - BACKEND),
        "parameters": sorted(p["Name"] for p in client("ssm").describe_parameters()["Parameters"]),
        "topics": sorted(t["TopicArn"] for t in client("sns").list_topics()["Topics"]),
    }
