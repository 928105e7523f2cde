"""Answer a paused rollout from a terminal or CI with the same input the UI form sends."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError

from mirror_rollout.errors import ConfigError, RolloutError
from mirror_rollout.plan_digest import PlanDigest
from mirror_rollout.reviewer_keys import PrivateKeyFile, approval_message
from tasks.approval.form import ApprovalForm


class PendingApproval(BaseModel):
    flow_run_id: str
    flow_run_name: str
    plan_sha256: PlanDigest
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
    # Prefect types read_flow_run_input as sync-or-async; this is the sync client's dict.
    schema: dict[str, Any] = read_flow_run_input(keyset["schema"], flow_run_id=flow_run_id) or {}  # type: ignore[assignment]
    sha = (schema.get("properties", {}).get("plan_sha256") or {}).get("default", "")
    description = read_flow_run_input(keyset["description"], flow_run_id=flow_run_id) or ""
    return PendingApproval(
        flow_run_id=str(flow_run_id),
        flow_run_name=run.name,
        plan_sha256=sha,
        description=str(description),
        pause_key=str(state.state_details.pause_key),
    )


def signature_for(
    pending: PendingApproval,
    key: PrivateKeyFile,
    *,
    approve: bool = True,
    allow_destroy: bool = False,
    plan_sha256: str | None = None,
) -> str:
    """The signature of this run's pending stage, for the form's ``signature`` field."""
    message = approval_message(
        pending.flow_run_id,
        pending.pause_key,
        PlanDigest(plan_sha256) if plan_sha256 else pending.plan_sha256,
        approve,
        allow_destroy,
    )
    return key.sign(message)


def send_approval(
    run_id: str,
    reviewer: str | None = None,
    *,
    approve: bool = True,
    comment: str = "",
    allow_destroy: bool = False,
    plan_sha256: str | None = None,
    key: PrivateKeyFile | None = None,
    signature: str | None = None,
) -> tuple[ApprovalForm, PendingApproval]:
    """Resume the paused run with an ApprovalForm; the flow then checks it like a UI answer.

    With ``key`` the approval is signed for this run, stage, plan and decision, and
    the reviewer defaults to the key's name.
    """
    pending = pending_approval(run_id)
    name = reviewer if reviewer is not None else (key.reviewer if key else "")
    sha = PlanDigest(plan_sha256) if plan_sha256 else pending.plan_sha256
    if key is not None and signature is None:
        signature = signature_for(
            pending, key, approve=approve, allow_destroy=allow_destroy, plan_sha256=sha
        )
    try:
        form = ApprovalForm(
            approve=approve,
            reviewer=name.strip(),
            comment=comment,
            plan_sha256=sha,
            allow_destroy=allow_destroy,
            signature=signature or "",
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"invalid approval: {field}: {first['msg']}",
            f"give a valid --{field.replace('_', '-')}",
        ) from None
    _resume(UUID(pending.flow_run_id), form.model_dump(mode="json"))
    return form, pending


#: Tries of a resume the server failed with a 5xx while the run stayed Paused.
RESUME_TRIES = 4


def _resume(flow_run_id: UUID, run_input: dict[str, Any]) -> None:
    """Resume the run with ``run_input``; again when the server failed and the run still waits.

    Prefect's SQLite backend answers a resume with HTTP 500 ("database is locked") when
    another writer committed during its read-then-write transaction. The transaction
    rolled back, so the run is still Paused and sending the same answer again is safe.
    """
    import time

    import httpx
    from prefect import get_client
    from prefect.flow_runs import resume_flow_run

    for attempt in range(1, RESUME_TRIES + 1):
        try:
            resume_flow_run(flow_run_id, run_input=run_input)
            return
        except RuntimeError as exc:
            raise RolloutError(
                f"the run did not accept the approval: {exc}", "check the run in the Prefect UI"
            ) from None
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(flow_run_id).state
            if status < 500 or state is None or not state.is_paused() or attempt == RESUME_TRIES:
                raise RolloutError(
                    f"the Prefect server failed to record the approval (HTTP {status}); "
                    f"the run is {state.name if state else 'without state'}",
                    "send the approval again; if the server's log shows 'database is locked', "
                    "run the server on PostgreSQL (mirror-rollout sandbox up --database postgres)",
                ) from None
            time.sleep(0.5 * attempt)


class Decision(BaseModel):
    """What the flow made of an answer: accepted (and what comes next) or refused and why."""

    accepted: bool
    message: str


def await_decision(run_id: str, stage: str, timeout: float = 120, poll: float = 0.5) -> Decision:
    """Wait until the run has decided on the answer to ``stage`` (or ended)."""
    import time

    from prefect import get_client
    from prefect.input.actions import read_flow_run_input

    from tasks.approval.pause import DECISION_KEY

    flow_run_id = _run_id(run_id)
    deadline = time.monotonic() + timeout
    while True:
        found = read_flow_run_input(DECISION_KEY.format(stage=stage), flow_run_id=flow_run_id)
        if found is not None:
            return Decision.model_validate(found)
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
        if state is not None and state.is_final():
            # Ended without a decision record (crashed, cancelled): report the state.
            found = read_flow_run_input(DECISION_KEY.format(stage=stage), flow_run_id=flow_run_id)
            if found is not None:
                return Decision.model_validate(found)
            return Decision(accepted=False, message=f"the run ended {state.name}: {state.message}")
        if time.monotonic() > deadline:
            raise RolloutError(
                f"the run did not decide on the approval within {timeout:.0f} s",
                "see the run in the Prefect UI",
            )
        time.sleep(poll)
