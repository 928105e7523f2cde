"""The drift baseline: a snapshot in the environment's baselines bucket, SSE-KMS with the CMK."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from mirror_rollout.aws import AwsClients
from mirror_rollout.errors import RolloutError
from mirror_rollout.retries import error_code
from tasks.drift.snapshot import Snapshot, bucket_name, kms_alias

LATEST_KEY = "drift/baseline.json"
FORMAT = 1


class BaselineMissing(RolloutError):
    """There is no baseline to compare the live environment with."""


def run_key(run_id: str) -> str:
    return f"drift/{run_id}.json"


def baseline_uri(environment: str, key: str = LATEST_KEY) -> str:
    return f"s3://{bucket_name(environment)}/{key}"


def baseline_document(
    environment: str, region: str, snapshot: Snapshot, run_id: str, at: datetime | None = None
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "environment": environment,
        "region": region,
        "run_id": run_id,
        "captured_at": (at or datetime.now(UTC)).isoformat(),
        "resources": snapshot,
    }


def store_baseline(
    environment: str,
    region: str,
    snapshot: Snapshot,
    run_id: str,
    clients: AwsClients | None = None,
) -> dict[str, Any]:
    """Write ``drift/baseline.json`` and ``drift/{run_id}.json``; returns where and the version."""
    clients = clients or AwsClients(region, environment=environment)
    s3 = clients.client("s3")
    document = baseline_document(environment, region, snapshot, run_id)
    body = json.dumps(document, indent=2, sort_keys=True).encode()
    bucket = bucket_name(environment)
    stored = {}
    for key in (LATEST_KEY, run_key(run_id)):
        response = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=kms_alias(environment),
        )
        stored[key] = response.get("VersionId")
    return {
        "uri": baseline_uri(environment),
        "copy": baseline_uri(environment, run_key(run_id)),
        "version_id": stored[LATEST_KEY],
        "run_id": run_id,
        "captured_at": document["captured_at"],
        "resources": len(snapshot),
    }


def load_baseline(
    environment: str, region: str, clients: AwsClients | None = None
) -> dict[str, Any]:
    """The latest baseline document (``resources`` holds the snapshot); BaselineMissing if none."""
    clients = clients or AwsClients(region, environment=environment)
    uri = baseline_uri(environment)
    try:
        response = clients.client("s3").get_object(Bucket=bucket_name(environment), Key=LATEST_KEY)
    except Exception as exc:
        code = error_code(exc)
        if code in {"NoSuchKey", "NoSuchBucket", "404"}:
            where = "the bucket does not exist" if code == "NoSuchBucket" else "no such object"
            raise BaselineMissing(
                f"no drift baseline for {environment} at {uri} ({where})",
                f"run a rollout of {environment} first: it records the baseline after its "
                "validations pass",
            ) from None
        raise
    try:
        document = json.loads(response["Body"].read())
        resources = document["resources"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RolloutError(
            f"the drift baseline at {uri} is not a baseline document ({exc})",
            f"run a rollout of {environment} to record a new one",
        ) from None
    if document.get("environment") != environment or not isinstance(resources, dict):
        raise RolloutError(
            f"the drift baseline at {uri} is for {document.get('environment')!r}, "
            f"not {environment!r}",
            f"run a rollout of {environment} to record a new one",
        )
    document["version_id"] = response.get("VersionId")
    document["uri"] = uri
    return document
