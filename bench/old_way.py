"""Benchmark: the old way (one AWS CLI process per API call) vs the pipeline's checks, same moto.

Both sides run against the sandbox's moto with the staging rollout applied (this
script resets moto and rehearses it first; that rehearsal is not timed as a whole):

The new way is driven only through the pipeline's entry points: its flows, called
in this process as a deployment run would, and the rehearsal (``console.rehearsal``).

- PITR. Old: the phase plan's ``verify-pitr.sh`` — ``aws dynamodb
  describe-continuous-backups`` for each of the 3 tables. New: the
  ``pitr-verification`` flow.
- Nonce rotation. Old: ``rotate-nonce.sh`` — ``aws ssm get-parameter`` of the
  current version vN, ``put-parameter`` of v(N+1) as a SecureString with the
  project key, then ``get-parameter`` of both to show both are readable. New: the
  ``nonce-rotation`` flow (it also records the rotation and schedules its grace
  cleanup), then a read of both versions. Each side's v(N+1) is undone after it (not
  timed: the old way's deleted, the new way's rolled back by the flow), so every
  round starts from the same state.
- Alarm test. Old: ``aws cloudwatch describe-alarms`` of the 8 alarms,
  ``set-alarm-state`` ALARM for each, describe again, ``set-alarm-state`` OK for
  each, describe again, and the Day 22 ``aws sns publish`` test alert. New: the
  ``alarm-probe`` task of the staging rehearsal this script runs first (it also
  subscribes a probe queue and waits for the test alert to arrive, so it does more
  than the old way); it runs inside the rollout, so it is measured once, and its
  client CPU is not separable from the flow's.

The phase plan keeps the old scripts' names and the commands it quotes, not their
bodies (today's scripts/ run Prefect deployments instead), so the CLI sequences
above are reconstructed from it; where a script could batch (describe-alarms
of all 8 at once) the old way here does, so its process count is a lower bound.
The nonce reaches the CLI on standard input (``--value file:///dev/stdin``) and
is read back as its length only: no value is printed, logged or written. The
CLI is given ``--endpoint-url`` as well as ``AWS_ENDPOINT_URL``, and empty
config and credentials files, so every request goes to moto.

    .venv/bin/python bench/old_way.py [--rounds 3] [--aws PATH]
"""

from __future__ import annotations

import argparse
import importlib
import math
import shlex
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.aws_cli import CliCall, cli_version, find_aws_cli, run_cli
from bench.common import (
    append_results,
    cpu_seconds,
    reset_moto,
    run_rollout,
    sandbox_ready,
)
from mirror_rollout import aws, contract
from mirror_rollout.sandbox import SandboxConfig

COMMAND = ".venv/bin/python bench/old_way.py"
PARTS = ("PITR", "nonce rotation", "alarm test")
ENV = "staging"


@dataclass
class Part:
    seconds: float  # wall
    cpu: float  # client CPU seconds: the CLI processes (old), this process (new)
    calls: int  # API calls; for the old way also the number of CLI processes
    ok: bool
    detail: str = ""


# -- the old way: the scripts' CLI calls ----------------------------------------------------
def old_calls(version: int, topic_arn: str, nonce: SecretStr) -> dict[str, list[CliCall]]:
    """The scripts' CLI calls, written as the shell lines they were."""
    current, new = (contract.nonce_parameter(ENV, n) for n in (version, version + 1))
    alarms = " ".join(a.full_name(ENV) for a in contract.ALARMS)

    def cli(line: str, check: Callable[[str], bool], stdin: SecretStr | None = None) -> CliCall:
        return CliCall(shlex.split(line), check, stdin)

    def readable(name: str) -> CliCall:  # the value itself never leaves the CLI process
        return cli(
            f"ssm get-parameter --name {name} --with-decryption "
            "--query 'length(Parameter.Value)' --output text",
            lambda out: out == "64",
        )

    def states(expected: str | None) -> CliCall:
        return cli(
            f"cloudwatch describe-alarms --alarm-names {alarms} "
            "--query 'MetricAlarms[].StateValue' --output text",
            lambda out: (
                len(out.split()) == len(contract.ALARMS)
                and (expected is None or set(out.split()) == {expected})
            ),
        )

    def set_state(value: str) -> list[CliCall]:
        return [
            cli(
                f"cloudwatch set-alarm-state --alarm-name {a.full_name(ENV)} "
                f"--state-value {value} --state-reason 'alarm test: {value}'",
                lambda out: out == "",
            )
            for a in contract.ALARMS
        ]

    return {
        PARTS[0]: [
            cli(
                f"dynamodb describe-continuous-backups --table-name {table.name(ENV)} --query "
                "ContinuousBackupsDescription.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus"
                " --output text",
                lambda out: out == "ENABLED",
            )
            for table in contract.TABLES
        ],
        PARTS[1]: [
            readable(current),
            cli(
                f"ssm put-parameter --name {new} --type SecureString --key-id alias/{contract.PREFIX}-{ENV} "
                "--value file:///dev/stdin --query Version --output text",
                lambda out: out.isdigit(),
                stdin=nonce,
            ),
            readable(current),
            readable(new),
        ],
        PARTS[2]: [
            states(None),
            *set_state("ALARM"),
            states("ALARM"),
            *set_state("OK"),
            states("OK"),
            cli(  # Day 22, as the phase plan quotes it
                f"sns publish --topic-arn {topic_arn} "
                "--subject '[Test] Phase 4 monitoring validation' "
                "--message 'Test alert from Phase 4 Day 22' --region us-east-1",
                lambda out: "MessageId" in out,
            ),
        ],
    }


def old_way(aws_cli: Path, version: int, topic_arn: str) -> dict[str, Part]:
    from mirror_rollout.nonce_values import new_nonce

    parts: dict[str, Part] = {}
    for part, calls in old_calls(version, topic_arn, new_nonce()).items():
        started, cpu = time.monotonic(), cpu_seconds(children=True)
        problems = [p for p in (run_cli(aws_cli, call) for call in calls) if p]
        seconds, cpu = time.monotonic() - started, cpu_seconds(children=True) - cpu
        parts[part] = Part(seconds, cpu, len(calls), not problems, "; ".join(problems))
    return parts


# -- the new way: the pipeline's flows, in this process ---------------------------------------
def import_pipeline() -> float:
    """Import the flows and the rehearsal (Prefect, boto3, pydantic ...): paid once per process."""
    started = time.monotonic()
    for module in ("flows.pitr_verification", "flows.nonce_rotation", "console.rehearsal"):
        importlib.import_module(module)
    return time.monotonic() - started


def new_pitr() -> tuple[bool, str]:
    from flows.pitr_verification import pitr_verification

    pitr_verification(environment=ENV)  # fails unless every table reports ENABLED
    return True, ""


def new_rotation() -> tuple[bool, str]:
    from flows.nonce_rotation import nonce_rotation

    rotated = nonce_rotation(environment=ENV)
    names = (rotated["previous_parameter"], rotated["new_parameter"])
    unreadable = [n for n in names if nonce_length(n) != 64]
    return not unreadable, ", ".join(f"{n} not readable" for n in unreadable)


class Meter:
    """Counts the API calls the pipeline's clients make (mirror_rollout.aws.CALL_LISTENERS):
    while measuring, and per task run (for the tasks of a rehearsal)."""

    def __init__(self) -> None:
        self.calls = 0
        self.active = False
        self.per_task: Counter[str] = Counter()
        self._lock = threading.Lock()
        aws.CALL_LISTENERS.append(self._count)

    def _count(self, operation: str) -> None:
        from prefect.runtime import task_run

        with self._lock:
            self.calls += self.active
            self.per_task[task_run.get_name() or "flow"] += 1

    def measure(self, check: Callable[[], tuple[bool, str]]) -> Part:
        before, self.active = self.calls, True
        started, cpu = time.monotonic(), cpu_seconds()
        try:
            ok, detail = check()
        except Exception as exc:  # a refusal or API error: a failed check, not a crash
            ok, detail = False, f"{type(exc).__name__}: {exc}"[:300]
        seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu
        self.active = False
        return Part(seconds, cpu, self.calls - before, ok, detail)


def new_way(meter: Meter, alarm_test: Part) -> dict[str, Part]:
    pitr, rotation, alarms = PARTS
    return {
        pitr: meter.measure(new_pitr),
        rotation: meter.measure(new_rotation),
        alarms: alarm_test,
    }


# -- setting up and resetting: the bench's own AWS clients, not the pipeline's ----------------
def nonce_length(name: str) -> int | None:
    """The length of a SecureString's value (never the value itself), None if unreadable."""
    import boto3

    try:
        found = boto3.client("ssm").get_parameter(Name=name, WithDecryption=True)
    except Exception:
        return None
    return len(found["Parameter"]["Value"])


def staged_version() -> int | None:
    """The live nonce version if the staging rollout is in place (one version, 8 alarms)."""
    import boto3

    try:
        pages = boto3.client("ssm").get_paginator("get_parameters_by_path")
        names = [
            p["Name"]
            for page in pages.paginate(Path=f"/guardian/{ENV}/")
            for p in page["Parameters"]
        ]
        alarms = boto3.client("cloudwatch").describe_alarms(
            AlarmNames=[a.full_name(ENV) for a in contract.ALARMS]
        )["MetricAlarms"]
    except Exception:
        return None
    versions = [int(m["version"]) for n in names if (m := contract.NONCE_NAME.match(n))]
    if len(versions) != 1 or len(alarms) != len(contract.ALARMS):
        return None
    return versions[0] if nonce_length(contract.nonce_parameter(ENV, versions[0])) == 64 else None


def undo_old_rotation(version: int) -> None:
    """Delete the version the old way's put-parameter created (not timed)."""
    import boto3

    boto3.client("ssm").delete_parameter(Name=contract.nonce_parameter(ENV, version + 1))


def undo_new_rotation(version: int) -> None:
    """Roll the flow's rotation back (not timed): vN is the nonce again, its cleanup cancelled."""
    from flows.nonce_rotation import nonce_rotation

    nonce_rotation(environment=ENV, from_version=version, rollback=True)


def rehearse_staging(config: SandboxConfig, meter: Meter) -> tuple[int, str, Part]:
    """Reset moto and rehearse staging: its nonce version, a note, and its alarm-probe task."""
    from console.rehearsal import task_rows
    from flows.nonce_rotation import register_cleanup_deployment

    reset_moto(config)
    register_cleanup_deployment()  # the rotation schedules its grace cleanup on it
    code, run_id, seconds = run_rollout(config)
    version = staged_version()
    if code != 0 or version is None:
        raise SystemExit(f"the staging rollout did not leave a usable environment (exit {code})")
    probe = [(n, state, s) for n, state, s in task_rows(run_id) if n.startswith("alarm-probe")]
    if not probe:
        raise SystemExit(f"flow run {run_id} has no alarm-probe task run")
    name, state, probe_seconds = probe[0]
    alarm_test = Part(probe_seconds, math.nan, meter.per_task[name], state == "Completed", state)
    return version, f"moto reset and staging rehearsed first ({seconds:.1f} s)", alarm_test


# -- report ---------------------------------------------------------------------------------
def calls(rounds: list[dict[str, Part]], part: str | None) -> str:
    """The API calls of a part (or of all) per round: one number, or the range if they differ."""
    counts = [r[part].calls if part else sum(p.calls for p in r.values()) for r in rounds]
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low} to {high}"


#: The parts whose client CPU both sides measure (the alarm probe's is inside the rollout's).
CPU_PARTS = PARTS[:2]


def median(rounds: list[dict[str, Part]], part: str | None, attr: str = "seconds") -> float:
    """The median over rounds of one part's (or all parts') wall or CPU seconds.

    All parts' CPU is that of CPU_PARTS, on both sides alike.
    """
    summed = CPU_PARTS if attr == "cpu" else PARTS
    return statistics.median(
        getattr(r[part], attr) if part else sum(getattr(r[p], attr) for p in summed) for r in rounds
    )


def seconds(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


HEADERS = (
    "check",
    "old: CLI processes",
    "old s",
    "old CPU s",
    "new: API calls",
    "new s",
    "new CPU s",
    "old/new",
)
WHAT = (
    "Old way: verify-pitr = describe-continuous-backups x 3 tables; rotate-nonce = "
    "get-parameter vN, put-parameter v(N+1), get-parameter vN and v(N+1); alarm test = "
    "describe-alarms (8 names), set-alarm-state ALARM x 8, describe-alarms, "
    "set-alarm-state OK x 8, describe-alarms, sns publish. New way, through the pipeline's "
    "entry points: the pitr-verification flow; the nonce-rotation flow, then a read of both "
    "versions; the alarm-probe task of the staging rehearsal (it also subscribes a probe "
    "queue and receives the test alert; measured once, inside the rollout). Each CLI process "
    "makes one API call; s = wall seconds; CPU s = client side (the CLI processes, or this "
    "process; the total is PITR and rotation only), moto's own CPU is in neither; old/new = "
    "wall-time ratio. See bench/old_way.py."
)


def report(
    old: list[dict[str, Part]],
    new: list[dict[str, Part]],
    imported: float,
    cli: str,
    setting: str,
) -> bool:
    rows = []
    for part in (*PARTS, None):
        old_s, new_s = median(old, part), median(new, part)
        rows.append(
            [
                part or "total",
                calls(old, part),
                f"{old_s:.2f}",
                seconds(median(old, part, "cpu")),
                calls(new, part),
                f"{new_s:.2f}",
                seconds(median(new, part, "cpu")),
                f"{old_s / new_s:.1f}x",
            ]
        )
    old_total, new_total = median(old, None), median(new, None)
    old_cpu, new_cpu = median(old, None, "cpu"), median(new, None, "cpu")
    processes = int(rows[-1][1])
    cpu_processes = sum(int(calls(old, part)) for part in CPU_PARTS)
    failures = [
        f"{side} {part}: {p.detail}"
        for side, runs in (("old", old), ("new", new))
        for r in runs
        for part, p in r.items()
        if not p.ok
    ]
    headline = (
        f"old way {old_total:.2f} s ({processes} AWS CLI processes) vs pipeline "
        f"{new_total:.2f} s (one process, {rows[-1][4]} API calls): "
        f"{old_total / new_total:.1f}x, median of {len(old)} rounds"
    )
    notes = [
        f"AWS CLI: {cli}; per CLI process {old_total / processes:.2f} s wall, "
        f"{old_cpu / cpu_processes:.2f} s CPU on average.",
        f"Client CPU of PITR and rotation: old way {old_cpu:.2f} s vs pipeline {new_cpu:.2f} s = "
        f"{old_cpu / new_cpu:.1f}x (less sensitive than wall time to other load on the machine).",
        f"New way: importing the pipeline's flows took {imported:.2f} s once per process "
        f"(not in the times above); ratio with that import counted: "
        f"{old_total / (new_total + imported):.1f}x.",
        "Rounds (old s / new s): "
        + "; ".join(
            f"{i}: {sum(p.seconds for p in o.values()):.2f} / {sum(p.seconds for p in n.values()):.2f}"
            for i, (o, n) in enumerate(zip(old, new, strict=True), 1)
        )
        + ".",
        f"All checks passed on both sides: {'NO — ' + '; '.join(failures) if failures else 'yes'}.",
    ]
    console = Console()
    table = Table(title=f"Old way vs the pipeline, same moto: {headline}")
    for column in HEADERS:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for note in notes:
        console.print(note)
    console.print(f"reproduce with: {COMMAND}")
    append_results(
        "Old way (one AWS CLI process per call) vs the pipeline's checks, same moto",
        COMMAND,
        f"{setting}; median of {len(old)} rounds, alternating which side goes first",
        [
            f"Wall time: {headline}.",
            "",
            "| " + " | ".join(HEADERS) + " |",
            "|" + "---|" * len(HEADERS),
            *["| " + " | ".join(row) + " |" for row in rows],
            "",
            *[f"- {note}" for note in notes],
            "",
            WHAT,
        ],
    )
    return not failures


def ops_topic_arn() -> str:
    """The ops-alerts topic of staging (the seed read it with `terraform output`)."""
    import boto3

    caller = boto3.client("sts").get_caller_identity()
    partition, region = caller["Arn"].split(":")[1], boto3.session.Session().region_name
    return f"arn:{partition}:sns:{region}:{caller['Account']}:{contract.name(ENV, 'ops-alerts')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both sides (median)")
    parser.add_argument("--aws", help="AWS CLI executable (default: found or installed)")
    args = parser.parse_args()

    imported = import_pipeline()
    config, setting = sandbox_ready()
    meter = Meter()
    version, staged, alarm_test = rehearse_staging(config, meter)
    aws_cli = find_aws_cli(args.aws)
    cli = f"{aws_cli} ({cli_version(aws_cli)})"
    topic_arn = ops_topic_arn()
    old: list[dict[str, Part]] = []
    new: list[dict[str, Part]] = []
    for round_no in range(max(args.rounds, 1)):
        sides = [
            lambda: (old.append(old_way(aws_cli, version, topic_arn)), undo_old_rotation(version)),
            lambda: (new.append(new_way(meter, alarm_test)), undo_new_rotation(version)),
        ]
        for side in sides if round_no % 2 == 0 else sides[::-1]:
            side()
    ok = report(old, new, imported, cli, f"{setting}; {staged}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
