"""Benchmark: one environment rolled out alone versus four at once, as users fan out.

Both sides run `mirror-rollout run infra-rollout/rollout --env ...` as it runs for a
user (console.fanout): deployment runs on the sandbox's work pool, picked up by its
workers, each answered by a signed sandbox reviewer as soon as it pauses. Four
environments: staging, production and two more, qa and perf, added the way a user adds
one (tests/support/environments.py) in a temporary copy of infra/. moto is emptied
before each side. With --repeat N, the two sides alternate N times and the ratio is of
the medians (one round's ratio moves by a tenth from one run to the next on this
machine). Prints the table of outcomes and the ratio; appends them to bench/RESULTS.md.

    .venv/bin/python bench/fanout.py                                   # SQLite, 1 worker
    .venv/bin/python bench/fanout.py --database postgres --workers 2 --repeat 3

The sandbox must be down or already running with the same --database (the script
starts what is missing, with that many workers).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, append_results, machine_busy_seconds, reset_moto, sandbox_ready
from console.fanout import EnvironmentRun, fan_out, outcome_table
from console.rehearsal import auto_approval
from mirror_rollout import sandbox
from tests.support.environments import root_with_environments

DEPLOYMENT = "infra-rollout/rollout"
ENVIRONMENTS = ["staging", "production", "qa", "perf"]
#: The issue's target: four environments at most this multiple of one alone.
TARGET_RATIO = 2.0
CORES = os.cpu_count() or 1


def register_deployment() -> None:
    prefect = str(Path(sys.executable).with_name("prefect"))
    done = subprocess.run(
        [prefect, "--no-prompt", "deploy", "--name", "rollout"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"prefect deploy failed:\n{done.stdout}{done.stderr}")


def roll_out(
    config: sandbox.SandboxConfig, environments: list[str], root: Path
) -> tuple[float, float, list[EnvironmentRun]]:
    """Empty moto, fan out ``environments``, auto-approve each pause.

    Returns the wall seconds, the machine's busy CPU seconds meanwhile and the runs.
    """
    reset_moto(config)
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the bench
    busy = machine_busy_seconds()
    started = time.monotonic()
    runs = fan_out(
        DEPLOYMENT,
        environments,
        {"root": str(root), "approval_timeout_seconds": 600},
        echo=lambda _line: None,
        timeout=1800,
        on_pause=auto_approval(quiet),
    )
    wall = time.monotonic() - started
    return wall, machine_busy_seconds() - busy, runs


@dataclasses.dataclass
class Round:
    """One environment alone, then four at once: wall and busy CPU seconds, and the runs."""

    one_wall: float
    one_cpu: float
    alone: list[EnvironmentRun]
    four_wall: float
    four_cpu: float
    together: list[EnvironmentRun]

    @property
    def ratio(self) -> float:
        return self.four_wall / self.one_wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=sandbox.DATABASES, default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of (one alone, four at once); the ratio is of the medians",
    )
    args = parser.parse_args()
    config = dataclasses.replace(
        sandbox.SandboxConfig.resolve(database=args.database), workers=args.workers
    )
    console = Console()
    config, note = sandbox_ready(config)
    register_deployment()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="mirror-rollout-fanout-") as tmp:
        root = root_with_environments(Path(tmp), ["qa", "perf"])
        for _ in range(max(1, args.repeat)):
            # One alone and four at once alternate, so a slower spell of the machine
            # weighs on both sides alike.
            one = roll_out(config, ["staging"], root)
            four = roll_out(config, ENVIRONMENTS, root)
            rounds.append(Round(*one, *four))

    last = rounds[-1]
    console.print(outcome_table(f"{DEPLOYMENT}, one environment", last.alone))
    console.print(outcome_table(f"{DEPLOYMENT}, four at once", last.together))
    one_wall = statistics.median([r.one_wall for r in rounds])
    four_wall = statistics.median([r.four_wall for r in rounds])
    one_cpu = statistics.median([r.one_cpu for r in rounds])
    four_cpu = statistics.median([r.four_cpu for r in rounds])
    ratio = four_wall / one_wall
    per_worker = os.environ.get(sandbox.RUNS_PER_WORKER_ENV)
    setting = f"{args.database}, {args.workers} worker(s)" + (
        f" of at most {per_worker} runs each" if per_worker else ""
    )
    medians = f"medians of {len(rounds)} rounds: " if len(rounds) > 1 else ""
    summary = (
        f"Prefect on {setting}: {medians}one environment {one_wall:.1f} s; four at once "
        f"{four_wall:.1f} s = {ratio:.2f}x one (target <= {TARGET_RATIO:.1f}x: "
        f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}); one after another would take "
        f"~{4 * one_wall:.0f} s. The machine's {CORES} cores were busy {one_cpu:.0f} CPU s "
        f"of {CORES * one_wall:.0f} for one ({100 * one_cpu / (CORES * one_wall):.0f} %) and "
        f"{four_cpu:.0f} of {CORES * four_wall:.0f} for four "
        f"({100 * four_cpu / (CORES * four_wall):.0f} %)"
    )
    console.print(summary)
    failed = [
        run.environment for r in rounds for run in [*r.alone, *r.together] if not run.completed
    ]
    if failed:
        console.print(f"[red]not Completed: {failed}[/]")
    command = (
        (f"{sandbox.RUNS_PER_WORKER_ENV}={per_worker} " if per_worker else "")
        + (".venv/bin/python bench/fanout.py")
        + (
            f" --database {args.database} --workers {args.workers}"
            if (args.database, args.workers) != ("sqlite", 1)
            else ""
        )
        + (f" --repeat {args.repeat}" if args.repeat > 1 else "")
    )
    append_results(
        f"Fan-out as deployment runs: one environment vs four, Prefect on {setting}",
        command,
        note,
        [
            "| round | rollout | environment | run | state | seconds |",
            "|---|---|---|---|---|---|",
            *(
                f"| {n} | {label} | {run.environment} | {run.flow_run_name} | {run.state} | "
                f"{run.seconds:.1f} |"
                for n, r in enumerate(rounds, start=1)
                for label, runs in (("one alone", r.alone), ("four at once", r.together))
                for run in runs
            ),
            *(
                f"| {n} | four / one | | | | {r.four_wall:.1f} / {r.one_wall:.1f} = "
                f"{r.ratio:.2f}x |"
                for n, r in enumerate(rounds, start=1)
            ),
            "",
            summary + ". Each environment holds its own `rollout-{env}` slot and its own "
            "approval; all share one moto, one Prefect server and this machine's 2 cores.",
        ],
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
