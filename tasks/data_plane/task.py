"""Prefect glue of stage ``data-plane-contract-{env}``: infra/data-plane.yaml vs the live tables.

Results DATAPLANE-001.. : one per table (keys, GSIs and projections, TTL attribute and
status, encryption), then one per access pattern performed with a test item. Artifact
``{env}-data-plane-contract``; raises ``ValidationFailed`` (carrying the results) on a FAIL.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from mirror_rollout.aws import AwsClients
from mirror_rollout.results import CheckResult
from mirror_rollout.target import RolloutTarget
from tasks.common import publish_or_fail
from tasks.data_plane.live import pattern_results, read_shapes, table_results
from tasks.data_plane.spec import load_data_plane
from tasks.nonce.rules import kms_alias
from tasks.nonce.store import key_arn


def check_data_plane(
    clients: AwsClients, environment: str, root: Path | None = None, token: str | None = None
) -> list[CheckResult]:
    plane = load_data_plane(root)
    shapes = read_shapes(clients, environment, plane)
    cmk = key_arn(clients, kms_alias(environment))
    tables = table_results(plane, shapes, environment, clients.region, cmk)
    token = token or uuid.uuid4().hex[:12]
    return tables + pattern_results(clients, environment, plane, tables, token)


@task(
    name="data-plane-contract",
    task_run_name="data-plane-contract-{target.environment}",
    cache_policy=NO_CACHE,
)
def data_plane_contract(target: RolloutTarget, root: str | None = None) -> list[CheckResult]:
    environment, backend = target.environment, target.backend
    clients = AwsClients.of(target)
    results = check_data_plane(clients, environment, Path(root) if root else None)
    return publish_or_fail(
        f"{environment}-data-plane-contract",
        results,
        f"Data-plane contract (infra/data-plane.yaml vs {environment}, {backend})",
        "the live tables do not serve the Oracle's access patterns",
        "fix infra/terraform or infra/data-plane.yaml",
        with_ids=True,
    )
