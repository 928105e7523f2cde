"""Several rollouts of one environment at once: exactly one applies.

The environment's Prefect concurrency slot makes the others wait (and then
find nothing to apply) or, with busy_wait_seconds=0, fail at once naming the
rollout that holds it; the state lock stays the last line of defence.
"""

from __future__ import annotations

import contextvars
import threading

from tests.rollout_run import RolloutRun, approve_as, approve_by_sandbox_reviewers, task_names


def run_concurrently(
    rollout, count: int, environments: list[str] | None = None, **params
) -> list[RolloutRun]:
    """Start `count` rollouts together (each in its own thread and Prefect context)."""
    runs: list[RolloutRun | BaseException | None] = [None] * count
    start = threading.Barrier(count)

    def one(i: int) -> None:
        environment = environments[i] if environments else "staging"
        # Production needs two approvals signed by two registered keys.
        answer = (
            approve_by_sandbox_reviewers()
            if environment != "staging"
            else approve_as(f"reviewer-{i}")
        )
        try:
            start.wait()
            runs[i] = rollout(
                answer,
                environment=environment,
                **params,
            )
        except BaseException as exc:
            runs[i] = exc

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(one, i)) for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=400)
    for run in runs:
        if isinstance(run, BaseException):
            raise run
        assert run is not None, "a rollout did not finish in time"
    return runs  # type: ignore[return-value]


def applied(run: RolloutRun) -> int:
    return run.state.result()["applied"] if run.state.is_completed() else 0


def apply_tasks(runs: list[RolloutRun]) -> int:
    """Apply task runs across all the flow runs (Prefect's own record)."""
    return sum(n.startswith("apply-") for r in runs for n in task_names(r.flow_run_id))


def test_two_rollouts_of_staging_queue_and_only_the_first_applies(rollout):
    runs = run_concurrently(rollout, 2, approval_timeout_seconds=120)

    assert all(r.state.is_completed() for r in runs), [r.state.message for r in runs]
    assert sorted(applied(r) for r in runs) == [0, 32]
    # Only the first paused for approval; the second waited for the slot, then planned nothing.
    assert sorted(len(r.pauses) for r in runs) == [0, 1]
    assert apply_tasks(runs) == 1


def test_five_rollouts_fail_fast_naming_the_holder_and_one_applies(rollout):
    runs = run_concurrently(rollout, 5, approval_timeout_seconds=120, busy_wait_seconds=0)

    winners = [r for r in runs if r.state.is_completed()]
    assert len(winners) == 1, [r.state.message for r in runs]
    assert applied(winners[0]) == 32
    losers = [r for r in runs if r is not winners[0]]
    for run in losers:
        assert run.state.is_failed()
        assert "another rollout of staging is in progress" in run.state.message
        assert winners[0].flow_run_id in run.state.message  # the holder, by id
        assert run.pauses == []  # nothing was planned or put up for approval
    assert apply_tasks(runs) == 1


def test_staging_and_production_roll_out_in_parallel(rollout):
    from prefect import get_client

    from mirror_rollout.aws import AwsClients

    runs = run_concurrently(rollout, 2, ["staging", "production"], approval_timeout_seconds=120)

    assert all(r.state.is_completed() for r in runs), [r.state.message for r in runs]
    assert [applied(r) for r in runs] == [32, 33]  # production adds the e-mail subscription
    with get_client(sync_client=True) as client:
        spans = [client.read_flow_run(r.flow_run_id) for r in runs]
    staging, production = ((f.start_time, f.end_time) for f in spans)
    # Each held only its own environment's slot: the two runs overlapped in time.
    assert staging[0] < production[1] and production[0] < staging[1]
    # Each environment is in its own (sandbox) account, as in a real organisation.
    for environment in ("staging", "production"):
        tables = AwsClients(environment=environment).client("dynamodb").list_tables()
        assert sum(f"-{environment}-" in t for t in tables["TableNames"]) == 3
