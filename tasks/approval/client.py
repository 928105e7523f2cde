"""Answer a paused rollout from a terminal or CI with the same input the UI form sends."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError

from mirror_rollout.errors import ConfigError, RolloutError
from tasks.approval.form import ApprovalForm


class PendingApproval(BaseModel):
    flow_run_id: str
    flow_run_name: str
    plan_sha256: str
    description: str
    pause_key: str


def _run_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ConfigError(
            f"{value!r} is not a flow run id",
            "copy the id from the Prefect UI or the rehearse output",
        ) from None


def pending_approval(run_id: str) -> PendingApproval:
    """The approval a paused run waits for; a clear error if it waits for none."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.input.actions import read_flow_run_input
    from prefect.input.run_input import keyset_from_paused_state

    flow_run_id = _run_id(run_id)
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            raise RolloutError(
                f"no flow run {run_id} on this Prefect API", "check PREFECT_API_URL and the run id"
            ) from None
    state = run.state
    if state is None or not state.is_paused():
        raise RolloutError(
            f"flow run {run.name} ({run_id}) is {state.name if state else 'without state'}, not waiting for approval",
            "approve a run while it is Paused",
        )
    keyset = keyset_from_paused_state(state)
    schema: dict[str, Any] = read_flow_run_input(keyset["schema"], flow_run_id=flow_run_id) or {}
    sha = (schema.get("properties", {}).get("plan_sha256") or {}).get("default", "")
    description = read_flow_run_input(keyset["description"], flow_run_id=flow_run_id) or ""
    return PendingApproval(
        flow_run_id=str(flow_run_id),
        flow_run_name=run.name,
        plan_sha256=sha,
        description=str(description),
        pause_key=str(state.state_details.pause_key),
    )


def send_approval(
    run_id: str,
    reviewer: str,
    *,
    approve: bool = True,
    comment: str = "",
    allow_destroy: bool = False,
    plan_sha256: str | None = None,
) -> ApprovalForm:
    """Resume the paused run with an ApprovalForm; the flow then checks it like a UI answer."""
    from prefect.flow_runs import resume_flow_run

    pending = pending_approval(run_id)
    try:
        form = ApprovalForm(
            approve=approve,
            reviewer=reviewer.strip(),
            comment=comment,
            plan_sha256=(plan_sha256 or pending.plan_sha256).lower(),
            allow_destroy=allow_destroy,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"invalid approval: {field}: {first['msg']}",
            f"give a valid --{field.replace('_', '-')}",
        ) from None
    try:
        resume_flow_run(UUID(pending.flow_run_id), run_input=form.model_dump(mode="json"))
    except RuntimeError as exc:
        raise RolloutError(
            f"the run did not accept the approval: {exc}", "check the run in the Prefect UI"
        ) from None
    return form
