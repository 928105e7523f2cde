"""Benchmark: one full staging rollout on the sandbox (sandbox already up).

Prints the wall time, each task's time and the AWS API calls each task made,
and appends the figures to bench/RESULTS.md with the machine's details.

    .venv/bin/python bench/rollout.py            # brings the sandbox up if needed
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mirror_rollout import aws, sandbox  # noqa: E402


def main() -> None:
    console = Console()
    config = sandbox.SandboxConfig.resolve()
    sandbox.up(config)
    sandbox.activate(config)
    # A fresh environment each time, so every run measures the same work (35 creates).
    urllib.request.urlopen(
        urllib.request.Request(config.url("moto") + "/moto-api/reset", method="POST")
    ).read()

    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def attribute(operation: str) -> None:
        from prefect.runtime import task_run

        with lock:
            calls[task_run.get_name() or "flow"] += 1

    aws.CALL_LISTENERS.append(attribute)
    from mirror_rollout.rehearsal import rehearse, task_rows

    started = time.monotonic()
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - the bench prints its own table
    code, run_id = rehearse(
        "staging", "sandbox", True, config.ui_url, quiet, approval_timeout_seconds=120, report=False
    )
    wall = time.monotonic() - started
    rows = task_rows(run_id)

    table = Table(title=f"staging rollout on the sandbox: {wall:.1f} s wall, exit {code}")
    for column in ("task", "state", "seconds", "AWS API calls"):
        table.add_column(column)
    for name, state, seconds in rows:
        table.add_row(name, state, f"{seconds:.2f}", str(calls.get(name, 0)))
    table.add_row("(flow itself)", "", "", str(calls.get("flow", 0)))
    console.print(table)
    total_calls = sum(calls.values())
    console.print(f"total AWS API calls: {total_calls}")

    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        f"## Full staging rollout — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine}. Command: `.venv/bin/python bench/rollout.py` (sandbox already up, moto reset first).",
        "",
        f"Wall time {wall:.1f} s (target < 30 s); {total_calls} AWS API calls.",
        "",
        "| task | seconds | AWS API calls |",
        "|---|---|---|",
        *[f"| {name} | {seconds:.2f} | {calls.get(name, 0)} |" for name, _, seconds in rows],
        "",
    ]
    with open(ROOT / "bench" / "RESULTS.md", "a") as out:
        out.write("\n".join(lines) + "\n")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
