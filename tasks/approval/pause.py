"""Pause the flow run for approval: the form appears in the Prefect UI; `approve` fills it from a terminal."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run

from mirror_rollout.provisioners.base import PlanResult
from tasks.approval.form import (
    ApprovalRecord,
    ApprovalRejected,
    approval_markdown,
    approvals_needed,
    check_approval,
    prefilled_form,
)
from tasks.approval.reviewers import reviewers_for
from tasks.plan.review import approval_description

#: How often the paused flow looks for the reviewer's answer (approval-to-apply latency):
#: each look is one read of the run; on the local sandbox server four a second cost
#: nothing, against a shared or hosted API once a second is enough for a person.
POLL_SECONDS = {"sandbox": 0.25}
DEFAULT_POLL_SECONDS = 1.0


def _record_final_message(text: str) -> None:
    """The server has already failed the timed-out pause with a generic message; say why instead."""
    from prefect import get_client
    from prefect.runtime import flow_run
    from prefect.states import Failed

    with get_client(sync_client=True) as client:
        run_id = flow_run.get_id()
        if run_id is not None:  # only inside a flow run is there a pause to fail
            client.set_flow_run_state(run_id, Failed(message=text), force=True)


#: Run input key under which the flow answers each stage (read by `mirror-rollout approve`).
DECISION_KEY = "{stage}-decision"


def _record_decision(stage: str, accepted: bool, message: str) -> None:
    """Tell whoever answered the pause what the flow made of it (an approver may not see logs)."""
    from prefect.input.actions import create_flow_run_input

    create_flow_run_input(
        key=DECISION_KEY.format(stage=stage), value={"accepted": accepted, "message": message}
    )


def request_approvals(
    plan: PlanResult, backend: str, timeout_seconds: int, root: Path
) -> list[ApprovalRecord]:
    """Called from the flow: one pause per approval needed, asked one after the other."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    needed = approvals_needed(plan.environment)
    # A bad registry stops the run here, before anyone is asked (nothing is applied).
    reviewers = reviewers_for(plan.environment, backend, root)
    run_id = str(flow_run.get_id())
    records: list[ApprovalRecord] = []
    for position in range(1, needed + 1):
        form_type = prefilled_form(
            approval_description(plan, needed, position), plan_sha256=plan.sha256, approve=False
        )
        logger.info(
            "Waiting for approval %d of %d of plan %s (timeout %ss)",
            position,
            needed,
            plan.sha256,
            timeout_seconds,
        )
        stage = f"approval-{position}"
        try:
            # Prefect types poll_interval as int; it sleeps a float just as well.
            form = pause_flow_run(  # type: ignore[call-overload]
                wait_for_input=form_type,
                timeout=timeout_seconds,
                poll_interval=POLL_SECONDS.get(backend, DEFAULT_POLL_SECONDS),
                key=stage,
            )
        except FlowPauseTimeout:
            rejected = ApprovalRejected(
                f"no approval within {timeout_seconds} s; nothing was applied",
                "run the rollout again and approve it in the Prefect UI or with `mirror-rollout approve`",
            )
            _record_final_message(str(rejected))
            raise rejected from None
        try:
            record = check_approval(form, plan.summary, records, backend, reviewers, run_id, stage)
        except ApprovalRejected as refused:
            _record_decision(stage, False, str(refused))
            raise
        following = (
            f"waiting for approval {position + 1} of {needed}" if position < needed else "applying"
        )
        _record_decision(
            stage,
            True,
            f"approval {position} of {needed} accepted from {record.reviewer} "
            f"(key {record.key_fingerprint}); {following}",
        )
        logger.info(
            "Approved by %s, key %s (%d of %d)",
            record.reviewer,
            record.key_fingerprint,
            position,
            needed,
        )
        records.append(record)
    create_markdown_artifact(
        key=f"{plan.environment}-approval",
        markdown=approval_markdown(plan.environment, records),
        description=f"{len(records)} approval(s) of plan {plan.sha256}",
    )
    return records
