"""Profile: where the flow process's CPU goes in one staging rehearsal.

Runs `mirror-rollout rehearse --env staging --auto-approve` under py-spy (sampling
100 times a second, only samples that hold the GIL, the flow runs in that process) on the
sandbox, moto emptied first, and sorts the samples into the areas issue 16 named:

    great_expectations  any frame in great_expectations (its imports included)
    boto3 clients       creating a session or client (botocore loads service models)
    Prefect task engine prefect's task engine, minus the two above
    other imports       importlib, outside the areas above
    rest                everything else (the flow, rich, httpx, Terraform's pipes...)

Prints the table and CPU seconds (samples / rate); appends them to bench/RESULTS.md.
The raw collapsed stacks stay in out/profile/ for a closer look (e.g. speedscope).

    .venv/bin/python bench/profile.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, append_results, reset_moto, sandbox_ready

COMMAND = ".venv/bin/python bench/profile.py"
RATE = 100
#: (area, what marks a sample as that area); the first that matches any frame wins.
AREAS: list[tuple[str, tuple[str, ...]]] = [
    ("great_expectations", ("great_expectations/",)),
    ("boto3 clients", ("create_client (botocore/session.py", "client (boto3/session.py")),
    ("Prefect task engine", ("prefect/task_engine.py",)),
    ("other imports", ("_find_and_load (<frozen importlib._bootstrap>",)),
]


def area_of(stack: str) -> str:
    for area, marks in AREAS:
        if any(mark in stack for mark in marks):
            return area
    return "rest"


def shares(collapsed: str) -> Counter[str]:
    """Samples per area from py-spy's raw (collapsed) output: ``frame;frame;... count``."""
    samples: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[area_of(stack)] += int(count)
    return samples


def main() -> None:
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    config, note = sandbox_ready()
    reset_moto(config)
    out = ROOT / "out" / "profile"
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "rehearsal.collapsed.txt"
    # --gil: only samples of a thread holding the GIL, i.e. running Python; py-spy counts
    # threads blocked in Condition.wait or select as active here, which is not CPU.
    record = [py_spy, "record", "--gil", "--format", "raw", "--rate", str(RATE), "-o", str(raw)]
    rehearse = [sys.executable, "-m", "console.main", "rehearse", "--env", "staging"]
    done = subprocess.run(
        [*record, "--", *rehearse, "--auto-approve", "--approval-timeout", "120"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the profiled rehearsal failed:\n{done.stdout[-2000:]}{done.stderr}")
    samples = shares(raw.read_text())
    total = sum(samples.values())
    table = Table(title="CPU of the flow process in one staging rehearsal (py-spy)")
    for column in ("area", "CPU s", "share"):
        table.add_column(column)
    rows = []
    for area in [a for a, _ in AREAS] + ["rest"]:
        seconds = samples[area] / RATE
        share = 100 * samples[area] / total if total else 0.0
        table.add_row(area, f"{seconds:.1f}", f"{share:.0f} %")
        rows.append(f"| {area} | {seconds:.1f} | {share:.0f} % |")
    console = Console()
    console.print(table)
    summary = f"{total / RATE:.1f} CPU s sampled in the flow process ({total} samples at {RATE}/s)"
    console.print(summary)
    append_results(
        "Profile of the flow process in one staging rehearsal",
        COMMAND,
        note + "; moto emptied first",
        [
            "| area | CPU s | share |",
            "|---|---|---|",
            *rows,
            "",
            summary + f". Collapsed stacks: {raw.relative_to(ROOT)}.",
        ],
    )


if __name__ == "__main__":
    main()
