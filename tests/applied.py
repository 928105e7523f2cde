"""An environment applied by the real Terraform on the sandbox, and its state read back from moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.provisioners import terraform_for
from mirror_rollout.provisioners.base import ApplyResult
from mirror_rollout.provisioners.state_backend import BackendSpec


def apply_environment(env: str, work_dir: Path, root: Path | None = None) -> ApplyResult:
    """Plan and apply ``env`` as a reviewed rollout would (no flow, no approval)."""
    terraform = terraform_for(
        env, "sandbox", Path(root or PROJECT_ROOT), Path(work_dir) / "terraform"
    )
    planned = terraform.plan(Path(work_dir))
    return terraform.apply(Path(planned.plan_file), planned.sha256)


def state_document(env: str, spec: BackendSpec | None = None) -> dict[str, Any] | None:
    """The workspace's state object in moto's S3 (what the S3 backend stored), None if absent."""
    import boto3

    spec = spec or BackendSpec()
    s3 = boto3.client("s3", region_name=spec.region)
    try:
        body = s3.get_object(Bucket=spec.bucket, Key=spec.state_key(env))["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


def state_serial(env: str, spec: BackendSpec | None = None) -> int | None:
    state = state_document(env, spec)
    return None if state is None else int(state["serial"])


def state_addresses(env: str) -> set[str]:
    """Managed resource instance addresses tracked by the state."""
    state = state_document(env) or {}
    found = set()
    for resource in state.get("resources", []):
        if resource.get("mode") != "managed":
            continue
        base = f"{resource['type']}.{resource['name']}"
        for instance in resource.get("instances", []):
            key = instance.get("index_key")
            found.add(base if key is None else f"{base}[{json.dumps(key)}]")
    return found
