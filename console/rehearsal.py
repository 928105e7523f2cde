"""Run `infra-rollout` on the sandbox from a terminal, with live progress and a summary."""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from console.watcher import OnPause, RunWatcher, run_url
from mirror_rollout.errors import RolloutError
from mirror_rollout.target import check_auto_approve


@dataclass
class Watch:
    """The rehearsal's watcher thread: which run (by tag), and what it saw."""

    tag: str
    watcher: RunWatcher
    poll_seconds: float = 0.5
    flow_run_id: str | None = None
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)


def auto_approval(console: Console) -> OnPause:
    """The on-pause hook of `rehearse --auto-approve`: sign as the sandbox's nth auto-reviewer
    (production's second approval needs a second, distinct reviewer key)."""
    from tasks.approval.client import send_approval

    def approve(run: Any, _pause_key: str, nth: int) -> None:
        form, _ = send_approval(
            str(run.id), key=auto_reviewer_key(nth), comment="auto-approved sandbox rehearsal"
        )
        console.print(
            f"  [green]approved[/] as {form.reviewer}, signed (plan {form.plan_sha256[:12]}…)"
        )

    return approve


def auto_reviewer_key(nth: int):
    """The sandbox's nth auto-reviewer key (made by `sandbox up`; registered on the sandbox only)."""
    from mirror_rollout.reviewer_keys import read_key
    from mirror_rollout.sandbox import auto_reviewer_key_path
    from tasks.approval.reviewers import sandbox_reviewers_file

    registry = sandbox_reviewers_file()
    if registry is None:
        raise RolloutError(
            "no sandbox auto-reviewers (MIRROR_ROLLOUT_SANDBOX_REVIEWERS is not set)",
            'run `eval "$(mirror-rollout sandbox up)"` or use `mirror-rollout rehearse`',
        )
    return read_key(auto_reviewer_key_path(registry, nth))


def _find_run(client, tag: str):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])), limit=1
    )
    return runs[0] if runs else None


def _watch(watch: Watch) -> None:
    """Background thread: find the run by its tag, then let the watcher report it."""
    from prefect import get_client

    try:
        with get_client(sync_client=True) as client:
            while not watch.stop.is_set():
                run = _find_run(client, watch.tag)
                if run is not None:
                    if watch.flow_run_id is None:
                        watch.flow_run_id = str(run.id)
                        url = run_url(watch.watcher.ui, watch.flow_run_id)
                        watch.watcher.echo(f"flow run {run.name} — {url}")
                    if watch.watcher.look(client, run):
                        return
                # Woken at once when the flow returns, so the caller does not wait a poll.
                watch.stop.wait(watch.poll_seconds)
    except BaseException as exc:  # reported by the caller once the flow ends
        watch.error = exc


def task_rows(flow_run_id: str) -> list[tuple[str, str, float]]:
    """(task run name, state, seconds) in start order."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)]))
        )
    ordered = sorted(runs, key=lambda r: r.start_time or r.expected_start_time or 0)
    return [
        (
            r.name,
            r.state.name if r.state else "?",
            r.total_run_time.total_seconds() if r.total_run_time else 0.0,
        )
        for r in ordered
    ]


def task_table(flow_run_id: str) -> Table:
    table = Table(title="tasks")
    for column in ("task", "state", "seconds"):
        table.add_column(column)
    for name, state, seconds in task_rows(flow_run_id):
        table.add_row(name, state, f"{seconds:.2f}")
    return table


def artifact_links(flow_run_id: str, ui_url: str) -> list[tuple[str, str]]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)])
            )
        )
    return sorted({(a.key, f"{ui_url}/artifacts/key/{a.key}") for a in artifacts if a.key})


def artifact_table(flow_run_id: str, key: str) -> list[dict[str, Any]]:
    """The rows of this run's table artifact ``key`` (empty when the run published none)."""
    import json

    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)]),
                key=ArtifactFilterKey(any_=[key]),
            )
        )
    rows = json.loads(found[0].data) if found and isinstance(found[0].data, str) else []
    return [r for r in rows if isinstance(r, dict)]


def rehearse(
    environment: str,
    backend: str,
    auto_approve: bool,
    ui_url: str,
    console: Console,
    report: bool = True,
    **flow_params: Any,
) -> tuple[int, str]:
    """Run the rollout flow in this process; returns (exit code, flow run id)."""
    from prefect import tags

    from flows.rollout import infra_rollout

    if auto_approve:
        check_auto_approve(backend)
    watch = Watch(
        tag=f"rehearsal-{uuid.uuid4().hex[:8]}",
        watcher=RunWatcher(
            ui_url,
            lambda line: console.print(line, highlight=False, markup=False),
            on_pause=auto_approval(console) if auto_approve else None,
        ),
    )
    # The watcher must see this thread's Prefect settings (held in a context variable).
    watcher = threading.Thread(
        target=contextvars.copy_context().run, args=(_watch, watch), daemon=True
    )
    started = time.monotonic()
    watcher.start()
    with tags(watch.tag, "rehearsal"):
        state = infra_rollout(
            environment=environment, backend=backend, return_state=True, **flow_params
        )
    watch.stop.set()
    watcher.join(timeout=10)
    elapsed = time.monotonic() - started
    run_id = str(state.state_details.flow_run_id)
    code = 0 if state.is_completed() else 1
    if not report:
        return code, run_id
    console.print(task_table(run_id))
    links = artifact_links(run_id, ui_url)
    if links:
        console.print("[bold]artifacts[/]")
        for key, link in links:
            console.print(f"  {key:<40} {link}", soft_wrap=True)
    # Recoverability is the figure an operator asks for first: show it, not just its link.
    drill = artifact_table(run_id, f"{environment}-restore-drill")
    if drill:
        console.print("[bold]PITR restore drill[/]")
        for row in drill:
            console.print(f"  {row.get('status')} {row.get('subject')}: {row.get('detail')}")
    latency = (
        f", approval→apply resume {watch.watcher.approval_latency[0]:.1f} s"
        if watch.watcher.approval_latency
        else ""
    )
    colour = "green" if state.is_completed() else "red"
    console.print(
        f"[{colour} bold]{state.name}[/] in {elapsed:.1f} s{latency} — {ui_url}/runs/flow-run/{run_id}"
    )
    if not state.is_completed():
        console.print(f"[red]{state.message}[/]")
    if watch.error is not None:
        console.print(f"[red]progress watcher stopped: {watch.error}[/]")
    return code, run_id
