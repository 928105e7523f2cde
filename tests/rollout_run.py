"""Run `infra-rollout` in the test process and answer its pauses from a second thread."""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

Answer = Callable[[str, str], None]  # (flow_run_id, pause_key) -> None


@dataclass
class RolloutRun:
    state: object
    flow_run_id: str
    pauses: list[str] = field(default_factory=list)
    answer_errors: list[BaseException] = field(default_factory=list)


def run_rollout(answer: Answer | None, **params) -> RolloutRun:
    from prefect import get_client, tags

    from console.rehearsal import _find_run
    from flows.rollout import infra_rollout

    tag = f"test-{uuid.uuid4().hex[:10]}"
    pauses: list[str] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def approver() -> None:
        try:
            with get_client(sync_client=True) as client:
                while not done.is_set():
                    run = _find_run(client, tag)
                    state = run.state if run else None
                    if state is not None and state.is_paused():
                        key = str(state.state_details.pause_key)
                        if key not in pauses:
                            pauses.append(key)
                            if answer is not None:
                                answer(str(run.id), key)
                    if state is not None and state.is_final():
                        return
                    time.sleep(0.2)
        except BaseException as exc:  # surfaced by the test
            errors.append(exc)

    # The approver sees the test's Prefect settings (a context variable), not the import-time ones.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(approver,), daemon=True)
    thread.start()
    with tags(tag):
        state = infra_rollout(return_state=True, **params)
    done.set()
    thread.join(timeout=10)
    return RolloutRun(state, str(state.state_details.flow_run_id), pauses, errors)


def approve_as(reviewer: str, **kwargs) -> Answer:
    from tasks.approval.client import send_approval

    def answer(run_id: str, _key: str) -> None:
        send_approval(run_id, reviewer, **kwargs)

    return answer


def sandbox_key(nth: int):
    """The session sandbox's nth auto-reviewer key (registered for every environment there)."""
    from console.rehearsal import auto_reviewer_key

    return auto_reviewer_key(nth)


def approve_signed(key, **kwargs) -> Answer:
    """Answer with an approval signed by ``key`` (its name unless ``reviewer`` is given)."""
    from tasks.approval.client import send_approval

    def answer(run_id: str, _key: str) -> None:
        send_approval(run_id, key=key, **kwargs)

    return answer


def approve_by_sandbox_reviewers(**kwargs) -> Answer:
    """Production's two approvals, by the sandbox's two auto-reviewer keys in turn."""
    from tasks.approval.client import send_approval

    def answer(run_id: str, pause_key: str) -> None:
        nth = int(pause_key.rsplit("-", 1)[-1])
        send_approval(run_id, key=sandbox_key(nth), **kwargs)

    return answer


def artifacts_of(flow_run_id: str) -> dict[str, str]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)])
            )
        )
    return {a.key: str(a.data) for a in found if a.key}


def task_names(flow_run_id: str) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)]))
        )
    return sorted(r.name for r in runs)
