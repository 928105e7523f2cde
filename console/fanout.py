"""Roll several environments out at once, as deployment runs on the work pool.

`mirror-rollout run infra-rollout/rollout --env staging --env qa` starts one run per
environment and follows them side by side; whichever worker is free picks each up.
Every run keeps what one rollout has: its environment's slot (`rollout-{env}`), its
Terraform state lock and its own approval. The fan-out ends with one table of outcomes
and exits 0 only when every environment Completed.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.table import Table

from console.runner import Outcome, follow, start, ui_base_url
from console.watcher import Echo, OnPause, run_url
from mirror_rollout.errors import ConfigError


@dataclass
class EnvironmentRun:
    """One environment's run in a fan-out, and how it ended."""

    environment: str
    flow_run_id: str
    flow_run_name: str
    url: str
    outcome: Outcome | None = None
    seconds: float = 0.0
    #: Why following the run failed (the API went away, ...); the run may go on.
    error: str = ""

    @property
    def completed(self) -> bool:
        return self.outcome is not None and self.outcome.completed

    @property
    def state(self) -> str:
        return self.outcome.state_name if self.outcome else "unknown"


def distinct_environments(environments: Iterable[str]) -> list[str]:
    """The environments in order; a repeated one is an error, not a second rollout."""
    seen: list[str] = []
    for environment in environments:
        if environment in seen:
            raise ConfigError(
                f"environment {environment!r} is given twice",
                "name each environment once: one rollout per environment at a time",
            )
        seen.append(environment)
    return seen


def fan_out(
    deployment: str,
    environments: Iterable[str],
    parameters: dict[str, Any],
    echo: Echo,
    timeout: float | None = None,
    on_pause: OnPause | None = None,
) -> list[EnvironmentRun]:
    """Start one run of ``deployment`` per environment, follow all, return them in order.

    Each line a run prints is prefixed with its environment. ``on_pause`` is called for
    every pause of every run (tests and benchmarks answer approvals there).
    """
    names = distinct_environments(environments)
    ui = ui_base_url()
    lock = threading.Lock()

    def say(environment: str, line: str) -> None:
        with lock:
            echo(f"{environment:<12} {line}")

    runs = []
    for environment in names:
        flow_run = start(deployment, {**parameters, "environment": environment})
        run = EnvironmentRun(
            environment, str(flow_run.id), flow_run.name, run_url(ui, str(flow_run.id))
        )
        say(environment, f"flow run {run.flow_run_name} of {deployment}: {run.url}")
        runs.append(run)

    def watch(run: EnvironmentRun) -> None:
        started = time.monotonic()
        try:
            run.outcome = follow(
                UUID(run.flow_run_id),
                ui,
                lambda line: say(run.environment, line),
                timeout,
                on_pause=on_pause,
            )
        except Exception as exc:  # one run's follower failing must not hide it in the table
            run.error = f"stopped following it ({type(exc).__name__}); the outcome is unknown"
        run.seconds = time.monotonic() - started

    # Each thread sees this thread's Prefect settings (a context variable).
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(watch, run), daemon=True)
        for run in runs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return runs


def outcome_table(deployment: str, runs: list[EnvironmentRun]) -> Table:
    """One row per environment: its state, how long it took, why it did not complete."""
    done = sum(run.completed for run in runs)
    table = Table(title=f"{deployment}: {done} of {len(runs)} environments Completed")
    for column in ("environment", "run", "state", "seconds", "detail"):
        table.add_column(column, overflow="fold")
    for run in runs:
        # Each run's UI link was printed when it started; the table says what went wrong.
        detail = run.error or (run.outcome.message if run.outcome and not run.completed else "")
        style = "green" if run.completed else "red"
        table.add_row(
            run.environment,
            run.flow_run_name,
            f"[{style}]{run.state}[/]",
            f"{run.seconds:.1f}",
            detail,
        )
    return table


def run_environments(
    deployment: str,
    environments: list[str],
    parameters: dict[str, Any],
    echo: Echo,
    console: Console,
    wait: bool,
    timeout: float,
) -> int:
    """`mirror-rollout run DEPLOYMENT --env A --env B`: fan out, print the table, exit code."""
    if not wait:
        raise ConfigError(
            "--no-wait with several --env", "fan out with --wait, or start each run on its own"
        )
    try:
        runs = fan_out(deployment, environments, parameters, echo, timeout or None)
    except KeyboardInterrupt:
        echo("stopped following; the runs go on (see their links above)")
        return 130
    console.print(outcome_table(deployment, runs))
    return 0 if all(run.completed for run in runs) else 1
