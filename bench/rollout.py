"""Benchmark: full staging rehearsal on the sandbox (sandbox already up), target < 30 s.

Resets moto, runs one auto-approved staging rollout in this process and prints
the wall time, each task's time and the AWS API calls each task made; appends
the figures to bench/RESULTS.md with the machine's details. Bringing the
sandbox up (if it is not running yet) happens before the clock starts.

    .venv/bin/python bench/rollout.py
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    TARGET_SECONDS,
    append_results,
    cpu_seconds,
    reset_moto,
    run_rollout,
    sandbox_ready,
    server_cpu_seconds,
)
from mirror_rollout import aws

COMMAND = ".venv/bin/python bench/rollout.py"


def main() -> None:
    console = Console()
    config, setting = sandbox_ready()
    # A fresh environment each time, so every run measures the same work.
    reset_moto(config)

    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def attribute(operation: str) -> None:
        from prefect.runtime import task_run

        with lock:
            calls[task_run.get_name() or "flow"] += 1

    aws.CALL_LISTENERS.append(attribute)
    from mirror_rollout.rehearsal import task_rows

    cpu, server_cpu = cpu_seconds(), server_cpu_seconds(config)
    code, run_id, wall = run_rollout(config)
    cpu, server_cpu = cpu_seconds() - cpu, server_cpu_seconds(config) - server_cpu
    rows = task_rows(run_id)
    verdict = "under" if wall < TARGET_SECONDS else "OVER"
    headline = (
        f"Full staging rehearsal on the sandbox ({setting}; moto reset first): "
        f"{wall:.1f} s wall, {verdict} the {TARGET_SECONDS:.0f} s target, exit {code}"
    )

    table = Table(title=headline)
    for column in ("task", "state", "seconds", "AWS API calls"):
        table.add_column(column)
    for name, state, seconds in rows:
        table.add_row(name, state, f"{seconds:.2f}", str(calls.get(name, 0)))
    table.add_row("(flow itself)", "", "", str(calls.get("flow", 0)))
    console.print(table)
    total_calls = sum(calls.values())
    cpu_line = (
        f"CPU time: {cpu + server_cpu:.1f} s ({cpu:.1f} s in this process, which runs the flow; "
        f"{server_cpu:.1f} s in the sandbox servers); {os.cpu_count()} cores."
    )
    console.print(f"total AWS API calls: {total_calls}. {cpu_line}")
    console.print(f"reproduce with: {COMMAND}")

    append_results(
        "Full staging rehearsal on the sandbox (sandbox already up)",
        COMMAND,
        f"{setting}; moto reset first; the sandbox start is not timed",
        [
            f"Wall time **{wall:.1f} s** (target < {TARGET_SECONDS:.0f} s: {verdict}); "
            f"{total_calls} AWS API calls; flow exit {code}. {cpu_line}",
            "",
            "| task | state | seconds | AWS API calls |",
            "|---|---|---|---|",
            *[
                f"| {name} | {state} | {seconds:.2f} | {calls.get(name, 0)} |"
                for name, state, seconds in rows
            ],
            f"| (flow itself) | | | {calls.get('flow', 0)} |",
        ],
    )
    raise SystemExit(code)


if __name__ == "__main__":
    main()
