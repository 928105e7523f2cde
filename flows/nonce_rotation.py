"""Flows `nonce-rotation` and `nonce-grace-cleanup`: rotate, hand over during a grace period, clean up.

`nonce-rotation` creates v(N+1) next to vN and schedules the grace-period
cleanup as a flow run of the deployment `nonce-grace-cleanup/scheduled` at the
grace end (a scheduled run, not a sleeping one). With ``rollback=true`` it undoes
the rotation still in grace instead: v(N+1) is deleted, vN stays, the pending
cleanup run is cancelled. The rotation id is the flow run id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from mirror_rollout import markdown as md
from mirror_rollout.errors import RolloutError
from mirror_rollout.target import RolloutTarget, target_of
from tasks.nonce.rules import (
    CLEANUP_FLOW,
    DEFAULT_GRACE_SECONDS,
    ROTATION_FLOW,
    NonceState,
    decide_rollback,
    decide_rotation,
    format_time,
    rollback_target,
)
from tasks.nonce.task import (
    RemovalResult,
    RotationResult,
    cleanup_previous,
    read_nonce_state,
    rollback_rotation,
    rotate_nonce,
)

CLEANUP_DEPLOYMENT_NAME = "scheduled"
CLEANUP_DEPLOYMENT = f"{CLEANUP_FLOW}/{CLEANUP_DEPLOYMENT_NAME}"


class CleanupNotScheduled(RolloutError):
    """The rotation is done, but its grace cleanup could not be scheduled."""


def artifact_key(environment: str) -> str:
    return f"{environment}-nonce-rotation"


def _now() -> datetime:
    return datetime.now(UTC)


def _versions(versions: list[int]) -> str:
    return ", ".join(f"v{n}" for n in versions) or "none"


def _table(title: str, rows: list[tuple[str, object]]) -> str:
    lines = [md.heading(1, title), "", *md.table(["", ""], rows)]
    return "\n".join(lines) + "\n"


def _cleanup_command(environment: str, region: str, old_version: int, rotation_id: str) -> str:
    return (
        f"run the {CLEANUP_FLOW} flow with environment={environment} region={region} "
        f"old_version={old_version} rotation_id={rotation_id} "
        f'(`python -c "from flows.nonce_rotation import nonce_grace_cleanup; '
        f"nonce_grace_cleanup('{environment}', '{region}', {old_version}, '{rotation_id}')\"`)"
    )


def schedule_cleanup(rotated: RotationResult, region: str) -> Any:
    """Create the `nonce-grace-cleanup/scheduled` flow run at the grace end; returns the FlowRun.

    Idempotent per rotation (the idempotency key is the rotation id). Raises
    ``CleanupNotScheduled`` when the deployment is not registered.
    """
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    when = rotated.grace_until or _now()
    parameters = {
        "environment": rotated.environment,
        "region": region,
        "old_version": rotated.from_version,
        "rotation_id": rotated.rotation_id,
    }
    try:
        return run_deployment(
            name=CLEANUP_DEPLOYMENT,
            parameters=parameters,
            scheduled_time=when,
            timeout=0,
            flow_run_name=f"{CLEANUP_FLOW}-{rotated.environment}-v{rotated.from_version}",
            tags=["nonce", rotated.environment],
            idempotency_key=f"{CLEANUP_DEPLOYMENT}:{rotated.rotation_id}",
        )
    except ObjectNotFound:
        raise CleanupNotScheduled(
            f"rotation {rotated.rotation_id} is done and valid ({rotated.new_parameter} created; "
            f"v{rotated.from_version} and v{rotated.new_version} both valid until "
            f"{format_time(when)}), but its grace cleanup was NOT scheduled: the deployment "
            f"{CLEANUP_DEPLOYMENT} does not exist on the Prefect API {PREFECT_API_URL.value()}",
            "register the deployments with `prefect deploy --all` for future rotations; for "
            f"this one, after {format_time(when)}, "
            + _cleanup_command(
                rotated.environment, region, rotated.from_version, rotated.rotation_id
            ),
        ) from None


def interrupted_rotation(state: NonceState) -> str | None:
    """The rotation id of the version in grace if its flow run ended without scheduling
    the grace cleanup (it failed after creating the version), else None."""
    from prefect import get_client

    rotation_id = state.grace.rotation_id if state.grace else None
    run_id = _flow_run_id(rotation_id)
    if rotation_id is None or run_id is None:
        return None
    with get_client(sync_client=True) as client:
        interrupted = _ended_unfinished(client, run_id) and not _cleanup_scheduled(
            client, rotation_id
        )
    return rotation_id if interrupted else None


def _flow_run_id(rotation_id: str | None) -> UUID | None:
    """The rotation id as the flow run id it is; None when it is not one."""
    if not rotation_id:
        return None
    try:
        return UUID(rotation_id)
    except ValueError:
        return None


def _ended_unfinished(client: Any, run_id: UUID) -> bool:
    """The flow run ended and did not complete (a run still going, or done, has or will
    have scheduled its cleanup)."""
    from prefect.exceptions import ObjectNotFound

    try:
        run = client.read_flow_run(run_id)
    except ObjectNotFound:
        return False
    return run.state is not None and run.state.is_final() and not run.state.is_completed()


def _cleanup_scheduled(client: Any, rotation_id: str) -> bool:
    """A grace cleanup run of rotation ``rotation_id`` exists (in any state)."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.exceptions import ObjectNotFound

    try:
        deployment = client.read_deployment_by_name(CLEANUP_DEPLOYMENT)
    except ObjectNotFound:
        return False  # no deployment: nothing can have been scheduled
    cleanups = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
    )
    return any((r.parameters or {}).get("rotation_id") == rotation_id for r in cleanups)


def cancel_scheduled_cleanup(rotation_id: str, reason: str) -> list[str]:
    """Cancel the not yet started cleanup runs of rotation ``rotation_id``; returns their ids."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelled

    cancelled: list[str] = []
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(CLEANUP_DEPLOYMENT)
        except ObjectNotFound:
            return cancelled
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.SCHEDULED, StateType.PENDING])
                )
            ),
        )
        for run in runs:
            if (run.parameters or {}).get("rotation_id") == rotation_id:
                client.set_flow_run_state(run.id, Cancelled(message=reason), force=True)
                cancelled.append(str(run.id))
    return cancelled


@flow(name=ROTATION_FLOW)
def nonce_rotation(
    environment: str,
    region: str | None = None,
    from_version: int | None = None,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
    rollback: bool = False,
) -> dict:
    """Rotate the redaction nonce vN -> v(N+1) with a grace period (or roll the rotation back).

    ``from_version`` None means the current version (rollback: the version to return to);
    ``region`` None means the region of the environment's tfvars.
    """
    target = target_of(environment, region=region)
    if rollback:
        return _rollback(target, from_version)
    logger = get_run_logger()
    rotation_id = str(flow_run.get_id())
    before = read_nonce_state(target)
    interrupted = interrupted_rotation(before)
    if interrupted is not None:
        # An earlier run created v(N+1) and then failed before scheduling its cleanup:
        # finish that rotation (no new version) instead of refusing or rotating again.
        logger.warning(
            "Rotation %s created v%s but its run ended before scheduling the grace cleanup; "
            "resuming it instead of creating another version",
            interrupted,
            before.current.version if before.current else "?",
        )
        rotation_id = interrupted
        from_version = before.grace.old_versions[-1] if before.grace else from_version
    if from_version is None:
        decide_rotation(before, None, rotation_id).raise_if_refused()
        from_version = before.current.version if before.current else 0
    rotated = rotate_nonce(target, from_version, grace_seconds, rotation_id)
    try:
        run = schedule_cleanup(rotated, target.region)
    except CleanupNotScheduled as exc:
        _publish_rotation(rotated, cleanup=f"**NOT scheduled** — {exc.problem}. Fix: {exc.fix}")
        raise
    scheduled_at = run.state.state_details.scheduled_time if run.state else None
    _publish_rotation(
        rotated,
        cleanup=(
            f"flow run `{run.id}` ({run.name}) of {CLEANUP_DEPLOYMENT} scheduled for "
            f"{format_time(scheduled_at) if scheduled_at else '?'}"
        ),
    )
    logger.info(
        "Rotation %s: v%s -> v%s; cleanup of v%s scheduled as flow run %s",
        rotation_id,
        rotated.from_version,
        rotated.new_version,
        rotated.from_version,
        run.id,
    )
    return {
        **rotated.model_dump(mode="json"),
        "cleanup_flow_run_id": str(run.id),
        "cleanup_scheduled_time": scheduled_at.isoformat() if scheduled_at else None,
    }


def _publish_rotation(rotated: RotationResult, cleanup: str) -> None:
    grace = format_time(rotated.grace_until) if rotated.grace_until else "?"
    create_markdown_artifact(
        key=artifact_key(rotated.environment),
        markdown=_table(
            f"Nonce rotation — {rotated.environment}",
            [
                ("action", "rotate" + ("" if rotated.created else " (found from an earlier try)")),
                ("rotation id", md.code_cell(rotated.rotation_id)),
                ("versions before", _versions(rotated.versions_before)),
                ("versions after", _versions(rotated.versions_after)),
                (
                    "new version",
                    md.Raw(f"{md.code(rotated.new_parameter)} (KeyId {md.code(rotated.key_id)})"),
                ),
                ("grace end", f"{grace} — v{rotated.from_version} stays valid until then"),
                ("grace cleanup", cleanup),
            ],
        ),
        description=(
            f"Nonce rotation {rotated.environment}: v{rotated.from_version} -> "
            f"v{rotated.new_version}, grace until {grace}"
        ),
    )


def _publish_removal(removed: RemovalResult, action: str, extra: list[tuple[str, str]]) -> None:
    create_markdown_artifact(
        key=artifact_key(removed.environment),
        markdown=_table(
            f"Nonce {action} — {removed.environment}",
            [
                ("action", action),
                ("rotation id", md.code_cell(removed.rotation_id)),
                ("result", removed.note),
                ("versions after", _versions(removed.versions_after)),
                *extra,
            ],
        ),
        description=f"Nonce {action} {removed.environment}: {removed.note}",
    )


def _rollback(target: RolloutTarget, to_version: int | None) -> dict:
    state = read_nonce_state(target)
    if to_version is None:
        decision = rollback_target(state)
        rotation_id = state.current.rotation_id if state.current else None
    else:
        newer = state.get(to_version + 1)
        rotation_id = newer.rotation_id if newer else None
        decision = decide_rollback(state, to_version + 1, rotation_id or "")
    decision.raise_if_refused()
    assert decision.version is not None
    removed = rollback_rotation(target, decision.version, rotation_id or "")
    cancelled = cancel_scheduled_cleanup(
        removed.rotation_id, f"rotation {removed.rotation_id} rolled back"
    )
    _publish_removal(
        removed,
        "rollback",
        [("cancelled cleanup runs", ", ".join(f"`{c}`" for c in cancelled) or "none")],
    )
    get_run_logger().info("%s; cancelled cleanup runs: %s", removed.note, cancelled or "none")
    return {**removed.model_dump(mode="json"), "cancelled_cleanup_runs": cancelled}


@flow(name=CLEANUP_FLOW)
def nonce_grace_cleanup(
    environment: str, region: str, old_version: int, rotation_id: str, force: bool = False
) -> dict:
    """End rotation ``rotation_id``'s grace period: delete v{old_version} (refuses before the
    grace end unless ``force``, and whenever that rotation's new version is missing)."""
    target = target_of(environment, region=region)
    removed = cleanup_previous(target, old_version, rotation_id, force)
    _publish_removal(removed, "grace cleanup", [])
    return removed.model_dump(mode="json")


def register_cleanup_deployment() -> UUID:
    """Apply `nonce-grace-cleanup/scheduled` (no schedule, no work pool) to the current Prefect API.

    For tests and the rehearsal; real deployments come from prefect.yaml. Runs of a
    deployment without a work pool are executed by a `serve` process.
    """
    deployment = nonce_grace_cleanup.to_deployment(
        name=CLEANUP_DEPLOYMENT_NAME,
        description="Grace-period cleanup of a nonce rotation (scheduled by nonce-rotation).",
        tags=["nonce"],
    )
    return deployment.apply()
