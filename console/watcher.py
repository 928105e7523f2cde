"""One watcher of a flow run, for every terminal that follows one (`rehearse`, `run`).

Each look prints what changed since the last one: a task's state, the run's state, a
pause for approval (with where and how to answer it). A pause calls the ``on_pause``
hook once: the rehearsal's auto-approval signs there; `mirror-rollout run` has none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

Echo = Callable[[str], None]
#: Called once per pause: (the flow run, its pause key, how many pauses so far).
OnPause = Callable[[Any, str, int], None]
#: A task that ended this long before the previous look is read again: room for the
#: server recording its end late and for the task's clock differing from ours.
ENDED_MARGIN = timedelta(seconds=20)
#: Task state types that may still change; a look reads these and the recently ended ones.
_UNFINISHED = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING")
#: The server records task states from events, after the run's own final state may be
#: set: a final run's tasks are read again, for at most this long, until all are final.
SETTLE_SECONDS = 3.0


def stamp() -> str:
    return time.strftime("%H:%M:%S")


def run_url(ui: str, flow_run_id: str) -> str:
    return f"{ui}/runs/flow-run/{flow_run_id}"


def _started(task_run: Any) -> float:
    moment = task_run.start_time or task_run.expected_start_time
    return moment.timestamp() if moment else 0.0


@dataclass
class RunWatcher:
    ui: str
    echo: Echo
    on_pause: OnPause | None = None
    #: The run's state name at the last look.
    state: str | None = None
    tasks: dict[str, str] = field(default_factory=dict)
    #: Tasks seen in a state that may still change.
    unfinished: set[str] = field(default_factory=set)
    pauses: list[str] = field(default_factory=list)
    #: Seconds from each pause to the run running again (an approval's latency).
    approval_latency: list[float] = field(default_factory=list)
    _paused_at: float | None = None
    #: When the previous look began; None before the first (which reads every task).
    _looked_at: datetime | None = None

    def look(self, client: Any, run: Any) -> bool:
        """Print what changed since the last look; True once the run is final."""
        self._tasks(client, run)
        state = run.state
        name = state.name if state else "?"
        if name != self.state:
            self.state = name
            self.echo(f"[{stamp()}] run {name}")
        if state is not None and state.is_paused():
            self._paused(run, str(state.state_details.pause_key))
        elif self._paused_at is not None and state is not None and state.is_running():
            self.approval_latency.append(time.monotonic() - self._paused_at)
            self._paused_at = None
        final = state is not None and state.is_final()
        if final:
            self._settle(client, run)
        return final

    def _settle(self, client: Any, run: Any) -> None:
        """Read a final run's tasks until none shows a state that may still change."""
        give_up = time.monotonic() + SETTLE_SECONDS
        while self.unfinished and time.monotonic() < give_up:
            time.sleep(0.25)
            self._tasks(client, run)

    def _tasks(self, client: Any, run: Any) -> None:
        # Only tasks that can still change, or ended since the last look: a poll a second
        # of a 25-task run (times every run of a fan-out) otherwise re-reads them all.
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterId,
            TaskRunFilter,
            TaskRunFilterEndTime,
            TaskRunFilterState,
            TaskRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        looking_at = datetime.now(UTC)
        changing = None
        if self._looked_at is not None:
            changing = TaskRunFilter(
                operator="or_",
                state=TaskRunFilterState(
                    type=TaskRunFilterStateType(any_=[StateType(t) for t in _UNFINISHED])
                ),
                end_time=TaskRunFilterEndTime(after_=self._looked_at - ENDED_MARGIN),
            )
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
            task_run_filter=changing,
        )
        self._looked_at = looking_at
        for task_run in sorted(task_runs, key=_started):
            if task_run.state is None:  # created, its first state not recorded yet
                self.unfinished.add(task_run.name)
                continue
            if task_run.state.is_final():
                self.unfinished.discard(task_run.name)
            else:
                self.unfinished.add(task_run.name)
            task_state = task_run.state.name
            if task_state != "Pending" and self.tasks.get(task_run.name) != task_state:
                self.tasks[task_run.name] = task_state
                self.echo(f"[{stamp()}]   {task_state:<10} {task_run.name}")

    def _paused(self, run: Any, key: str) -> None:
        if key in self.pauses:
            return
        self.pauses.append(key)
        self._paused_at = time.monotonic()
        self.echo(
            f"[{stamp()}] waiting for input ({key}): review the plan artifact and answer at "
            f"{run_url(self.ui, str(run.id))}"
        )
        self.echo(
            f"           or: mirror-rollout approve {run.id} --key YOUR_KEY_FILE "
            "[--reject] [--comment ...]"
        )
        if self.on_pause is not None:
            self.on_pause(run, key, len(self.pauses))
