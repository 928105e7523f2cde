"""Benchmark: full staging rehearsal on the sandbox vs the bare Terraform sequence.

First the bare Terraform sequence (init + plan + apply + re-plan, the same
override, on a freshly reset moto), then, after another reset, one
auto-approved staging rollout in this process. Prints both wall times, their
ratio (target <= 1.3) and the rehearsal against its 60 s target, each task's
time, Terraform's own share inside the rollout, and the AWS API calls each
task made (boto3 only: Terraform's calls are its own); appends the figures to
bench/RESULTS.md. Bringing the sandbox up happens before the clock starts.

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
    TARGET_RATIO,
    TARGET_SECONDS,
    append_results,
    bare_terraform,
    cpu_seconds,
    reset_moto,
    run_rollout,
    sandbox_ready,
    server_cpu_seconds,
)
from mirror_rollout import aws
from mirror_rollout.provisioners import terraform_run

COMMAND = ".venv/bin/python bench/rollout.py"


def main() -> None:
    console = Console()
    config, setting = sandbox_ready()
    # A fresh environment each time, so every run measures the same work.
    bare = bare_terraform(config)
    reset_moto(config)

    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def attribute(operation: str) -> None:
        from prefect.runtime import task_run

        with lock:
            calls[task_run.get_name() or "flow"] += 1

    aws.CALL_LISTENERS.append(attribute)
    # Terraform's own share: every command the rollout ran, summed per command.
    terraform_seconds: Counter[str] = Counter()

    def timed(command: str, seconds: float) -> None:
        with lock:
            terraform_seconds[command] += seconds

    terraform_run.COMMAND_LISTENERS.append(timed)
    from console.rehearsal import task_rows

    cpu, server_cpu = cpu_seconds(), server_cpu_seconds(config)
    code, run_id, wall = run_rollout(config)
    cpu, server_cpu = cpu_seconds() - cpu, server_cpu_seconds(config) - server_cpu
    rows = task_rows(run_id)
    verdict = "under" if wall <= TARGET_SECONDS else "OVER"
    ratio = wall / bare["wall"]
    ratio_verdict = "within" if ratio <= TARGET_RATIO else "OVER"
    terraform_in_flow = sum(terraform_seconds.values())
    headline = (
        f"Full staging rehearsal on the sandbox ({setting}; moto reset first): "
        f"{wall:.1f} s wall, {verdict} the {TARGET_SECONDS:.0f} s target, exit {code}"
    )
    bare_line = (
        f"Bare Terraform sequence on the same moto: {bare['wall']:.1f} s ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in bare.items() if k != "wall")
        + f"). Rehearsal / bare = {ratio:.2f} ({ratio_verdict} the {TARGET_RATIO} target). "
        f"Inside the rehearsal, Terraform's own commands took {terraform_in_flow:.1f} s ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in terraform_seconds.most_common())
        + "; the re-plan runs beside the validations). "
        f"The flow adds {wall - bare['wall']:.1f} s to the bare sequence."
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
    console.print(bare_line)
    console.print(
        f"total AWS API calls (boto3, Terraform's not counted): {total_calls}. {cpu_line}"
    )
    console.print(f"reproduce with: {COMMAND}")

    append_results(
        "Full staging rehearsal on the sandbox vs bare Terraform (sandbox already up)",
        COMMAND,
        f"{setting}; moto reset first; the sandbox start is not timed",
        [
            f"Wall time **{wall:.1f} s** (target < {TARGET_SECONDS:.0f} s: {verdict}); "
            f"{total_calls} boto3 API calls; flow exit {code}. {cpu_line}",
            "",
            bare_line,
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
