"""One rollout per environment at a time: a Prefect global concurrency limit `rollout-{env}`.

The state lock already stops two applies from interleaving, but a second
rollout that planned while the first was paused for approval would only fail
at apply (stale plan). Holding this slot from plan to checklist makes the
others wait for it (or fail at once, naming the holder) before they plan.
The slot is a lease renewed while the run lives; if the process dies, the
server frees it when the lease expires (`LEASE_SECONDS`).

Who holds the slot is read from the server, never guessed. Prefect records a
lease's holder but has no API that lists the holders of a global limit (only
task-run holders of `tag:` limits), so each run also takes, in the same lease,
one slot of its own one-slot limit `rollout-{env}:flow-run:{run id}`. The
server takes and frees both slots in one transaction (and its lease reaper
frees both when the lease expires), so that limit is occupied exactly while
its run holds the environment's slot; listing the limits names the holder.

Taking the slot is one request to Prefect's increment-with-lease endpoint
(the client retries transport errors and timeouts itself): it answers with a
lease, or 423 when the slot is taken. There is no client-side deadline on the
request, so a slow server cannot turn a free slot into "busy".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from mirror_rollout.errors import EndpointError, RolloutError

LEASE_SECONDS = 300
# With busy_wait_seconds=0: how often to try again when the slot was freed between
# the refusal and reading who holds it (then it is not "busy").
FAIL_FAST_ATTEMPTS = 5
HOLDER_INFIX = ":flow-run:"
PAGE = 100  # limits per request (the server allows up to 200 by default)


class RolloutBusy(RolloutError):
    """Another rollout of the same environment holds the slot."""


def limit_name(environment: str) -> str:
    return f"rollout-{environment}"


def holder_limit_name(environment: str, run_id: UUID | None) -> str:
    """The one-slot limit a flow run takes together with the environment's slot."""
    return f"{limit_name(environment)}{HOLDER_INFIX}{run_id}"


def holder_run_id(environment: str, name: str) -> UUID | None:
    """The flow run a holder limit of `environment` belongs to (None: not one)."""
    prefix = f"{limit_name(environment)}{HOLDER_INFIX}"
    if not name.startswith(prefix):
        return None
    try:
        return UUID(name[len(prefix) :])
    except ValueError:
        return None


@dataclass(frozen=True)
class SlotState:
    """The environment's slot as the server's limits show it."""

    free: int  # free slots of rollout-{env} (0 when the limit is missing)
    holders: tuple[UUID, ...]  # flow runs whose holder limit is occupied


def slot_state(environment: str, limits: Iterable) -> SlotState:
    """Read the slot from global concurrency limits (objects with name/limit/active_slots)."""
    free = 0
    holders: list[UUID] = []
    for limit in limits:
        if limit.name == limit_name(environment):
            free = max(limit.limit - limit.active_slots, 0) if limit.active else 1
        elif limit.active_slots > 0 and (run_id := holder_run_id(environment, limit.name)):
            holders.append(run_id)
    return SlotState(free=free, holders=tuple(sorted(holders, key=str)))


def stale_holder_limits(
    environment: str, limits: Iterable, runs: dict, own: UUID | None
) -> list[str]:
    """Holder limits to delete: unoccupied, not `own`, and their run is over or gone.

    `runs` maps run ids to flow runs (those that still exist). A run that is not
    over may be about to take its slot, so its limit stays.
    """
    stale = []
    for limit in limits:
        run_id = holder_run_id(environment, limit.name)
        if run_id is None or run_id == own or limit.active_slots > 0:
            continue
        run = runs.get(run_id)
        if run is None or (run.state is not None and run.state.is_final()):
            stale.append(limit.name)
    return stale


def describe_run(run) -> str:
    state = run.state.name if run.state else "unknown"
    return f"flow run {run.name} ({run.id}, {state})"


def describe_holders(holders: Sequence[UUID], runs: dict, own: UUID | None) -> list[str]:
    """One phrase per run holding the slot (`runs`: the ones Prefect still has)."""
    described = []
    for run_id in holders:
        if run_id == own:
            described.append(
                f"this flow run ({run_id}): an earlier attempt of it took the slot but its "
                f"answer was lost; the server frees it when the lease expires "
                f"(at most {LEASE_SECONDS} s)"
            )
        elif run_id in runs:
            described.append(describe_run(runs[run_id]))
        else:
            described.append(f"flow run {run_id} (no longer in Prefect; its lease still holds)")
    return described


def unnamed_holder(state: SlotState) -> str:
    """What to say when no flow run can be named as the holder."""
    if state.free > 0:
        return "its holder could not be read: the slot was taken, then freed, as this run tried"
    return "its holder could not be read: the slot is taken by a lease that names no flow run"


def busy_message(
    environment: str, holders: list[str], waited: float, unnamed: str | None = None
) -> RolloutBusy:
    """The error a rollout gets when it could not take the environment's slot."""
    who = "; ".join(holders) if holders else (unnamed or "its holder could not be read")
    how = "did not wait" if waited <= 0 else f"waited {waited:g} s"
    return RolloutBusy(
        f"another rollout of {environment} is in progress ({who}); {how}",
        "let it finish (approve or reject it in the Prefect UI), or start this one with a "
        "longer busy_wait_seconds to queue behind it",
    )


def read_limits(client) -> list:
    """Every global concurrency limit, page by page."""
    limits: list = []
    while True:
        page = client.read_global_concurrency_limits(limit=PAGE, offset=len(limits))
        limits += page
        if len(page) < PAGE:
            return limits


def read_runs(client, run_ids: Iterable[UUID]) -> dict:
    """The flow runs (by id) of those ids that Prefect has."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    ids = list(run_ids)
    runs: dict[UUID, Any] = {}
    for start in range(0, len(ids), PAGE):
        chunk = ids[start : start + PAGE]
        found = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=PAGE
        )
        runs |= {r.id: r for r in found}
    return runs


def create_limit(client, name: str) -> None:
    """Create a one-slot limit unless it exists; never widen an existing one."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        with suppress(ObjectAlreadyExists):  # another rollout created it first
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


def delete_limits(client, names: Iterable[str]) -> None:
    from prefect.exceptions import ObjectNotFound

    for name in names:
        with suppress(ObjectNotFound):
            client.delete_global_concurrency_limit_by_name(name)


def ensure_limit(client, environment: str, run_id: UUID | None = None) -> None:
    """The environment's limit and (for a flow run) the run's holder limit exist.

    Holder limits left by runs that ended without deleting theirs (a killed
    process) are deleted once they are free.
    """
    create_limit(client, limit_name(environment))
    if run_id is None:
        return
    create_limit(client, holder_limit_name(environment, run_id))
    limits = read_limits(client)
    free = {holder_run_id(environment, x.name) for x in limits if x.active_slots == 0}
    if others := {x for x in free if x is not None} - {run_id}:
        runs = read_runs(client, others)
        delete_limits(client, stale_holder_limits(environment, limits, runs, run_id))


@dataclass(frozen=True)
class Refused:
    """The server's 423: the slot is taken."""

    retry_after: float


def try_take(client, environment: str, run_id: UUID | None):
    """One attempt the server answers: the lease, `Refused`, or None (retake: a limit went)."""
    import httpx
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse

    names = [limit_name(environment)]
    if run_id is not None:
        names.append(holder_limit_name(environment, run_id))
    try:
        # No deadline of ours: the client waits for the answer (retrying transport errors).
        response = client.increment_concurrency_slots_with_lease(
            names=names,
            slots=1,
            mode="concurrency",
            lease_duration=LEASE_SECONDS,
            holder=ConcurrencyLeaseHolder(type="flow_run", id=run_id) if run_id else None,
        )
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != 423:
            raise
        try:
            return Refused(float(exc.response.headers.get("Retry-After", 1.0)))
        except ValueError:
            return Refused(1.0)
    granted = ConcurrencyLimitWithLeaseResponse.model_validate(response.json())
    taken = {limit.name for limit in granted.limits}
    if set(names) <= taken:
        return granted
    # A limit was deleted under us: hold no slot that nobody could name.
    client.release_concurrency_slots_with_lease(granted.lease_id)
    if limit_name(environment) not in taken:
        raise RolloutError(
            f"the concurrency limit {limit_name(environment)} was deleted while taking it",
            "start the rollout again (it creates the limit)",
        )
    return None


def take_slot(client, environment: str, run_id: UUID | None, busy_wait_seconds: float):
    """The granted lease, or RolloutBusy naming the flow runs that hold the slot.

    busy_wait_seconds <= 0: refused means busy, unless the slot turns out free when
    its holders are read (then it is tried again, up to FAIL_FAST_ATTEMPTS times).
    Otherwise: tried again after the server's Retry-After until the time is up.
    """
    deadline = time.monotonic() + max(busy_wait_seconds, 0)
    freed = 0  # refusals in a row after which the slot read as free
    lost = 0  # grants given back because this run's holder limit was gone
    while True:
        answer = try_take(client, environment, run_id)
        if answer is None:
            lost += 1
            if lost >= FAIL_FAST_ATTEMPTS:
                raise RolloutError(
                    f"the holder limit {holder_limit_name(environment, run_id)} was deleted "
                    f"{lost} times while taking the {environment} slot",
                    "find what deletes rollout-* concurrency limits, then start the rollout again",
                )
            ensure_limit(client, environment, run_id)
            continue
        if not isinstance(answer, Refused):
            return answer
        state = slot_state(environment, read_limits(client))
        freed = freed + 1 if state.free > 0 else 0
        remaining = deadline - time.monotonic()
        if 0 < freed < FAIL_FAST_ATTEMPTS:
            continue
        if remaining > 0:
            time.sleep(min(answer.retry_after, remaining))
            continue
        if run_id is not None and run_id not in state.holders:
            delete_limits(client, [holder_limit_name(environment, run_id)])
        runs = read_runs(client, state.holders)
        raise busy_message(
            environment,
            describe_holders(state.holders, runs, run_id),
            busy_wait_seconds,
            unnamed_holder(state),
        )


@contextmanager
def hold(lease, names: list[str]) -> Iterator[None]:
    """Keep the lease renewed while the body runs; release it after (as `concurrency` does)."""
    from prefect import get_client
    from prefect.concurrency._leases import maintain_concurrency_lease
    from prefect.concurrency.context import ConcurrencyContext

    # If this run is cancelled before the release below, its flow's context releases it.
    context = ConcurrencyContext.get()
    if context is not None:
        context.cleanup_lease_ids.append(lease.lease_id)
    try:
        with maintain_concurrency_lease(
            lease.lease_id, LEASE_SECONDS, raise_on_lease_renewal_failure=False
        ):
            yield
    finally:
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots_with_lease(lease.lease_id)
            if context is not None and lease.lease_id in context.cleanup_lease_ids:
                context.cleanup_lease_ids.remove(lease.lease_id)
            delete_limits(client, names)


@contextmanager
def environment_slot(
    environment: str, busy_wait_seconds: float, flow_run_id: str | None
) -> Iterator[None]:
    """Hold `rollout-{environment}`; wait up to busy_wait_seconds (0: fail at once) for it."""
    import httpx
    from prefect import get_client

    run_id = UUID(flow_run_id) if flow_run_id else None
    try:
        with get_client(sync_client=True) as client:
            ensure_limit(client, environment, run_id)
            lease = take_slot(client, environment, run_id, busy_wait_seconds)
    except httpx.HTTPError as exc:
        raise EndpointError(
            f"Prefect could not give the {environment} rollout slot: {exc}",
            "check that the Prefect server (PREFECT_API_URL) is up, then start the rollout again",
        ) from exc
    own = [holder_limit_name(environment, run_id)] if run_id else []
    with hold(lease, own):
        yield
