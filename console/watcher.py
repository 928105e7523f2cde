"""One watcher of a flow run, for every terminal that follows one (`rehearse`, `run`).

Each look prints what changed since the last one: a task's state, the run's state, a
pause for approval (with where and how to answer it). A pause calls the ``on_pause``
hook once: the rehearsal's auto-approval signs there; `mirror-rollout run` has none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Echo = Callable[[str], None]
#: Called once per pause: (the flow run, its pause key, how many pauses so far).
OnPause = Callable[[Any, str, int], None]


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
    pauses: list[str] = field(default_factory=list)
    #: Seconds from each pause to the run running again (an approval's latency).
    approval_latency: list[float] = field(default_factory=list)
    _paused_at: float | None = None

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
        return state is not None and state.is_final()

    def _tasks(self, client: Any, run: Any) -> None:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        )
        for task_run in sorted(task_runs, key=_started):
            task_state = task_run.state.name if task_run.state else "?"
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
