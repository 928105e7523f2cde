"""One rollout per environment at a time: a Prefect global concurrency limit `rollout-{env}`.

The state lock already stops two applies from interleaving, but a second
rollout that planned while the first was paused for approval would only fail
at apply (stale plan). Holding this slot from plan to checklist makes the
others wait for it (or fail at once, naming the holder) before they plan.
The slot is a lease renewed while the run lives; if the process dies, the
server frees it when the lease expires (`LEASE_SECONDS`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from uuid import UUID

from mirror_rollout.errors import RolloutError

LEASE_SECONDS = 300
ACTIVE_STATES = ("RUNNING", "PAUSED", "CANCELLING")


class RolloutBusy(RolloutError):
    """Another rollout of the same environment holds the slot."""


def limit_name(environment: str) -> str:
    return f"rollout-{environment}"


def busy_message(environment: str, holders: list[str], waited: float) -> RolloutBusy:
    """The error a rollout gets when it could not take the environment's slot."""
    who = "; ".join(holders) if holders else "a rollout whose run is no longer active"
    how = "did not wait" if waited <= 0 else f"waited {waited:g} s"
    return RolloutBusy(
        f"another rollout of {environment} is in progress ({who}); {how}",
        "let it finish (approve or reject it in the Prefect UI), or start this one with a "
        "longer busy_wait_seconds to queue behind it",
    )


def describe_run(run) -> str:
    state = run.state.name if run.state else "unknown"
    return f"flow run {run.name} ({run.id}, {state})"


def ensure_limit(client, environment: str) -> None:
    """Create the environment's limit (one slot) unless it exists; never widen an existing one."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = limit_name(environment)
    try:
        client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        with suppress(ObjectAlreadyExists):  # another rollout created it first
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


def active_rollouts(client, environment: str, exclude: UUID | None) -> list[str]:
    """Other infra-rollout runs of this environment that are running or paused."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )

    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=["infra-rollout"])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(ACTIVE_STATES)))
        ),
    )
    return [
        describe_run(r)
        for r in runs
        if r.id != exclude and (r.parameters or {}).get("environment", "staging") == environment
    ]


@contextmanager
def environment_slot(
    environment: str, busy_wait_seconds: float, flow_run_id: str | None
) -> Iterator[None]:
    """Hold `rollout-{environment}`; wait up to busy_wait_seconds (0: fail at once) for it."""
    from prefect import get_client
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.concurrency.sync import concurrency

    run_id = UUID(flow_run_id) if flow_run_id else None
    with get_client(sync_client=True) as client:
        ensure_limit(client, environment)
    holder = ConcurrencyLeaseHolder(type="flow_run", id=run_id) if run_id else None
    stack = ExitStack()
    try:
        stack.enter_context(
            concurrency(
                limit_name(environment),
                occupy=1,
                # Prefect needs a positive timeout; a tenth of a second is one attempt.
                timeout_seconds=max(busy_wait_seconds, 0.1),
                lease_duration=LEASE_SECONDS,
                strict=True,
                holder=holder,
                raise_on_lease_renewal_failure=False,
            )
        )
    except TimeoutError:
        with get_client(sync_client=True) as client:
            holders = active_rollouts(client, environment, exclude=run_id)
        raise busy_message(environment, holders, busy_wait_seconds) from None
    with stack:
        yield
