"""Benchmark: one environment rolled out alone versus four rolled out concurrently.

Four environments (staging, production and two more, qa and perf, made from
staging's tfvars in a temporary copy of infra/) roll out at once on the sandbox,
each auto-approved, each in its own sandbox account and holding only its own
environment's slot. Prints the wall times and the speed-up over rolling the
four out one after another; appends them to bench/RESULTS.md.

    .venv/bin/python bench/fanout.py
"""

from __future__ import annotations

import contextvars
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, append_results, reset_moto, run_rollout, sandbox_ready

COMMAND = ".venv/bin/python bench/fanout.py"
ENVIRONMENTS = ["staging", "production", "qa", "perf"]


def four_environment_root(base: Path) -> Path:
    """A copy of infra/ with qa and perf added as a user adds an environment: its tfvars
    (staging's values, its own name) and its name in the `environment` validation."""
    shutil.copytree(ROOT / "infra", base / "infra")
    allowed = 'var.environment == "staging" || var.environment == "production"'
    for stack in ("terraform", "gcp"):
        variables = base / "infra" / stack / "variables.tf"
        text = variables.read_text()
        assert allowed in text, f"{variables} no longer has the environment allow-list"
        more = ' || var.environment == "qa" || var.environment == "perf"'
        variables.write_text(text.replace(allowed, allowed + more))
    for environment in ("qa", "perf"):
        for stack in ("terraform", "gcp"):
            staging = (base / "infra" / stack / "staging.tfvars").read_text()
            values = re.sub(r'"(phase-mirror-)?staging"', rf'"\g<1>{environment}"', staging)
            (base / "infra" / stack / f"{environment}.tfvars").write_text(values)
    return base


def rollout_all(config, environments: list[str], root: Path) -> dict[str, tuple[int, float]]:
    """Roll ``environments`` out at once, one thread each: env -> (exit code, wall seconds)."""
    outcomes: dict[str, tuple[int, float]] = {}
    start = threading.Barrier(len(environments))

    def one(environment: str) -> None:
        start.wait()
        code, _, seconds = run_rollout(config, environment, root=str(root))
        outcomes[environment] = (code, seconds)

    # Each rollout sees this thread's Prefect settings (a context variable).
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(one, env))
        for env in environments
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def main() -> None:
    console = Console()
    config, setting = sandbox_ready()
    with tempfile.TemporaryDirectory(prefix="mirror-rollout-fanout-") as tmp:
        root = four_environment_root(Path(tmp))
        reset_moto(config)
        started = time.monotonic()
        alone = rollout_all(config, ["staging"], root)
        one_wall = time.monotonic() - started

        reset_moto(config)
        started = time.monotonic()
        together = rollout_all(config, ENVIRONMENTS, root)
        four_wall = time.monotonic() - started

    failed = {env: code for env, (code, _) in {**alone, **together}.items() if code}
    table = Table(title=f"Fan-out on the sandbox ({setting})")
    for column in ("rollout", "environments", "wall s", "exit codes"):
        table.add_column(column)
    table.add_row("one alone", "staging", f"{one_wall:.1f}", str(alone["staging"][0]))
    for env in ENVIRONMENTS:
        code, seconds = together[env]
        table.add_row("four at once", env, f"{seconds:.1f}", str(code))
    table.add_row("four at once", "all", f"{four_wall:.1f}", "")
    console.print(table)
    sequential = 4 * one_wall
    summary = (
        f"one environment {one_wall:.1f} s; four concurrently {four_wall:.1f} s "
        f"({four_wall / one_wall:.2f}x one; one after another would take ~{sequential:.0f} s, "
        f"so fan-out is {sequential / four_wall:.2f}x faster)"
    )
    console.print(summary)
    if failed:
        console.print(f"[red]rollouts failed: {failed}[/]")
    append_results(
        "Fan-out: one environment vs four concurrently",
        COMMAND,
        setting,
        [
            "| rollout | environment | wall s | exit code |",
            "|---|---|---|---|",
            f"| one alone | staging | {one_wall:.1f} | {alone['staging'][0]} |",
            *(
                f"| four at once | {env} | {together[env][1]:.1f} | {together[env][0]} |"
                for env in ENVIRONMENTS
            ),
            f"| four at once | all | {four_wall:.1f} | |",
            "",
            summary + ". Each environment has its own sandbox account and its own Prefect "
            "concurrency slot; all four share one moto, one Prefect server and this process.",
        ],
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
