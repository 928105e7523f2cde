"""Benchmark: Terraform's CPU and peak memory with Go's default GC target and with ours.

mirror-rollout starts Terraform with GOGC=400 unless GOGC is set
(mirror_rollout.provisioners.terraform_run.TERRAFORM_GOGC). This runs the bare
sequence (init, workspace new, plan, apply, re-plan) and `show -json` of the plan on
the sandbox, moto emptied first, once with GOGC=100 (Go's default) and once with ours.
Prints CPU seconds (each command with the providers it started, from wait4), wall
seconds and the largest resident set of any of their processes; appends them to
bench/RESULTS.md.

    .venv/bin/python bench/terraform_gc.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SEQUENCE, append_results, laid_out_working_copy, sandbox_ready
from mirror_rollout.provisioners.terraform_run import TERRAFORM_GOGC

COMMAND = ".venv/bin/python bench/terraform_gc.py"
GO_DEFAULT = "100"


def measured(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """Run ``argv``: (wall s, CPU s, peak RSS MiB) of it and the providers it waited for."""
    started = time.monotonic()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, used = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{argv[1]}: exit {process.returncode}")
    return time.monotonic() - started, used.ru_utime + used.ru_stime, used.ru_maxrss / 1024


def one_side(gogc: str) -> dict[str, float]:
    """The sequence and `show` with GOGC=``gogc``: CPU s, wall s, peak RSS MiB."""
    config, _ = sandbox_ready()
    side = {"cpu": 0.0, "wall": 0.0, "rss_mib": 0.0}
    with laid_out_working_copy(config) as (terraform, work):
        env = {**terraform.env(), "GOGC": gogc}
        commands = terraform.commands(work / "gc.tfplan")
        for name in (*SEQUENCE, "show"):
            wall, cpu, rss = measured(commands[name], terraform.workdir, env)
            side[name] = wall
            side["wall"] += wall
            side["cpu"] += cpu
            side["rss_mib"] = max(side["rss_mib"], rss)
    return side


def main() -> None:
    console = Console()
    _, note = sandbox_ready()
    sides: dict[str, dict[str, float]] = {}
    for gogc in (GO_DEFAULT, TERRAFORM_GOGC):
        sides[gogc] = one_side(gogc)
    table = Table(title="Terraform (and hashicorp/aws): sequence + show, by GOGC")
    for column in ("GOGC", "CPU s", "wall s", "plan s", "apply s", "peak RSS MiB"):
        table.add_column(column)
    rows = []
    for gogc, side in sides.items():
        cells = [
            gogc,
            f"{side['cpu']:.1f}",
            f"{side['wall']:.1f}",
            f"{side['plan']:.1f}",
            f"{side['apply']:.1f}",
            f"{side['rss_mib']:.0f}",
        ]
        table.add_row(*cells)
        rows.append("| " + " | ".join(cells) + " |")
    console.print(table)
    before, after = sides[GO_DEFAULT], sides[TERRAFORM_GOGC]
    summary = (
        f"GOGC={TERRAFORM_GOGC} uses {after['cpu']:.1f} CPU s against {before['cpu']:.1f} "
        f"({100 * (after['cpu'] - before['cpu']) / before['cpu']:+.0f} %), with a peak "
        f"resident set of {after['rss_mib']:.0f} MiB against {before['rss_mib']:.0f}"
    )
    console.print(summary)
    append_results(
        "Terraform's CPU by Go GC target (GOGC)",
        COMMAND,
        note + "; moto emptied before each side",
        [
            "| GOGC | CPU s | wall s | plan s | apply s | peak RSS MiB |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            summary + ".",
        ],
    )


if __name__ == "__main__":
    main()
