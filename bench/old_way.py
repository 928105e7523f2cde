"""Benchmark: the old way (one AWS CLI process per API call) vs the pipeline's checks, same moto.

Both sides run against the sandbox's moto with the staging rollout applied (when
it is not, this script resets moto and applies it first, not timed):

- PITR. Old: the phase plan's ``verify-pitr.sh`` — ``aws dynamodb
  describe-continuous-backups`` for each of the 3 tables. New: ``verify_pitr``,
  the body of the ``pitr`` task.
- Nonce rotation. Old: ``rotate-nonce.sh`` — ``aws ssm get-parameter`` of the
  current version vN, ``put-parameter`` of v(N+1) as a SecureString with the
  project key, then ``get-parameter`` of both to show both are readable. New: the
  ``nonce-rotation`` flow's ``read_nonce_state`` + ``rotate_nonce`` (their ``.fn``),
  then ``store.read_value`` of both versions. v(N+1) is deleted after each side
  (not timed), so every round starts from the same state.
- Alarm test. Old: ``aws cloudwatch describe-alarms`` of the 8 alarms,
  ``set-alarm-state`` ALARM for each, describe again, ``set-alarm-state`` OK for
  each, describe again, and the Day 22 ``aws sns publish`` test alert. New:
  ``probe_alarms``, the body of the ``alarm-probe`` task (it also subscribes a probe
  queue and waits for the test alert to arrive, so it does more than the old way).

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
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    append_results,
    cpu_seconds,
    reset_moto,
    run_rollout,
    sandbox_ready,
)
from mirror_rollout import aws, contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.sandbox import SandboxConfig

COMMAND = ".venv/bin/python bench/old_way.py"
AWSCLI_VENV = ROOT / "bench" / ".awscli-venv"
PARTS = ("PITR", "nonce rotation", "alarm test")
ENV = "staging"


@dataclass
class Part:
    seconds: float  # wall
    cpu: float  # client CPU seconds: the CLI processes (old), this process (new)
    calls: int  # API calls; for the old way also the number of CLI processes
    ok: bool
    detail: str = ""


@dataclass
class CliCall:
    args: list[str]
    check: Callable[[str], bool]  # on the stripped stdout
    stdin: SecretStr | None = None


# -- the AWS CLI ---------------------------------------------------------------------------
def find_aws_cli(explicit: str | None) -> Path:
    """``--aws``, else ``.venv/bin/aws`` or ``aws`` on PATH, else awscli in bench/.awscli-venv."""
    if explicit:
        return Path(explicit)
    for candidate in (ROOT / ".venv" / "bin" / "aws", shutil.which("aws")):
        if candidate and Path(candidate).exists():
            return _resolve_shim(Path(candidate))
    aws_cli = AWSCLI_VENV / "bin" / "aws"
    if not aws_cli.exists():
        print(f"installing awscli into {AWSCLI_VENV} (once; kept apart from .venv's boto3)")
        subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True)
        pip = AWSCLI_VENV / "bin" / "pip"
        subprocess.run([str(pip), "install", "--quiet", "awscli"], check=True)
    return aws_cli


def _resolve_shim(path: Path) -> Path:
    """A pyenv shim runs bash and pyenv before the CLI: time the CLI itself, not the shim."""
    if "shims" in path.parts and shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "which", path.name], capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip():
            return Path(found.stdout.strip())
    return path


def cli_version(aws_cli: Path) -> str:
    done = subprocess.run([str(aws_cli), "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).strip()


def cli_env() -> dict[str, str]:
    """The sandbox's exports (already in os.environ) and no user config or credentials files."""
    return {
        **os.environ,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_PAGER": "",
    }


def run_cli(aws_cli: Path, call: CliCall) -> str:
    """Run one CLI process; '' if it did what the script expects, else why not (redacted)."""
    secret = call.stdin.get_secret_value() if call.stdin else None
    done = subprocess.run(
        [str(aws_cli), "--endpoint-url", os.environ["AWS_ENDPOINT_URL"], *call.args],
        input=secret.encode() if secret else None,
        stdin=None if secret else subprocess.DEVNULL,
        capture_output=True,
        env=cli_env(),
    )
    out = done.stdout.decode().strip()
    if done.returncode == 0 and call.check(out):
        return ""
    text = f"aws {' '.join(call.args[:2])}: exit {done.returncode}: {done.stderr.decode() or out}"
    return (text.replace(secret, "***") if secret else text)[-300:]


# -- the old way: the scripts' CLI calls ----------------------------------------------------
def old_calls(version: int, topic_arn: str, nonce: SecretStr) -> dict[str, list[CliCall]]:
    """The scripts' CLI calls, written as the shell lines they were."""
    from tasks.nonce.rules import kms_alias

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
                f"ssm put-parameter --name {new} --type SecureString --key-id {kms_alias(ENV)} "
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


# -- the new way: the pipeline's own functions, in this process ------------------------------
def import_pipeline() -> float:
    """Import the task modules (Prefect, boto3, pydantic ...): paid once per process."""
    started = time.monotonic()
    for module in ("tasks.pitr.task", "tasks.nonce.task", "tasks.alarms.task"):
        importlib.import_module(module)
    return time.monotonic() - started


def blocking(results: list) -> tuple[bool, str]:
    failed = [r for r in results if r.blocking]
    return not failed, "; ".join(r.message for r in failed)[:300]


def new_pitr() -> tuple[bool, str]:
    from tasks.pitr.task import verify_pitr

    return blocking(verify_pitr(AwsClients(), ENV))


def new_rotation() -> tuple[bool, str]:
    from tasks.nonce import store
    from tasks.nonce.rules import DEFAULT_GRACE_SECONDS
    from tasks.nonce.task import read_nonce_state, rotate_nonce

    region = AwsClients().region
    before = read_nonce_state.fn(ENV, region)
    assert before.current is not None
    rotated = rotate_nonce.fn(
        ENV, region, before.current.version, DEFAULT_GRACE_SECONDS, f"bench-{uuid.uuid4().hex[:8]}"
    )
    clients = AwsClients(region)
    names = (rotated.previous_parameter, rotated.new_parameter)
    unreadable = [n for n in names if store.read_value(clients, n) is None]
    return not unreadable, ", ".join(f"{n} not readable" for n in unreadable)


def new_alarms() -> tuple[bool, str]:
    from mirror_rollout.evidence import capabilities
    from tasks.alarms.task import probe_alarms

    return blocking(probe_alarms(AwsClients(), ENV, capabilities("sandbox")))


class Meter:
    """Counts the API calls the pipeline's clients make (mirror_rollout.aws.CALL_LISTENERS)."""

    def __init__(self) -> None:
        self.calls = 0
        self.active = False
        aws.CALL_LISTENERS.append(self._count)

    def _count(self, operation: str) -> None:
        if self.active:
            self.calls += 1

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


def new_way(meter: Meter) -> dict[str, Part]:
    return {
        part: meter.measure(check)
        for part, check in zip(PARTS, (new_pitr, new_rotation, new_alarms), strict=True)
    }


# -- setting up and resetting ---------------------------------------------------------------
def staged_version() -> int | None:
    """The live nonce version if the staging rollout is in place, else None."""
    from tasks.alarms.task import read_alarms
    from tasks.nonce import store
    from tasks.pitr.task import verify_pitr

    clients = AwsClients()
    try:
        pitr_ok, _ = blocking(verify_pitr(clients, ENV, max_attempts=1))
        state = store.read_state(clients, ENV)
        alarms, _ = read_alarms(clients.client("cloudwatch"), clients.region)
        current = state.current
        if (
            not pitr_ok
            or len(state.live) != 1
            or current is None
            or len(alarms) != len(contract.ALARMS)
        ):
            return None
        return current.version if store.holds_nonce(clients, current.name) else None
    except Exception:
        return None


def drop_version(version: int) -> None:
    """Delete the version a rotation created (not timed), so the next side starts the same."""
    from tasks.nonce import store

    store.delete_version(AwsClients(), contract.nonce_parameter(ENV, version + 1))


def ensure_staging(config: SandboxConfig) -> tuple[int, str]:
    version = staged_version()
    if version is not None:
        return version, "staging rollout already applied"
    reset_moto(config)
    code, _, seconds = run_rollout(config)
    version = staged_version()
    if code != 0 or version is None:
        raise SystemExit(f"the staging rollout did not leave a usable environment (exit {code})")
    return version, f"moto reset and staging rollout applied first ({seconds:.1f} s, not timed)"


# -- report ---------------------------------------------------------------------------------
def calls(rounds: list[dict[str, Part]], part: str | None) -> str:
    """The API calls of a part (or of all) per round: one number, or the range if they differ."""
    counts = [r[part].calls if part else sum(p.calls for p in r.values()) for r in rounds]
    low, high = min(counts), max(counts)
    return str(low) if low == high else f"{low} to {high}"


def median(rounds: list[dict[str, Part]], part: str | None, attr: str = "seconds") -> float:
    """The median over rounds of one part's (or all parts') wall or CPU seconds."""
    return statistics.median(
        getattr(r[part], attr) if part else sum(getattr(p, attr) for p in r.values())
        for r in rounds
    )


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
    "set-alarm-state OK x 8, describe-alarms, sns publish. New way: verify_pitr; "
    "read_nonce_state + rotate_nonce + read_value x 2; probe_alarms (also subscribes a "
    "probe queue and receives the test alert). Each CLI process makes one API call; s = wall "
    "seconds; CPU s = client side (the CLI processes, or this process), moto's own CPU is in "
    "neither; old/new = wall-time ratio. See bench/old_way.py."
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
                f"{median(old, part, 'cpu'):.2f}",
                calls(new, part),
                f"{new_s:.2f}",
                f"{median(new, part, 'cpu'):.2f}",
                f"{old_s / new_s:.1f}x",
            ]
        )
    old_total, new_total = median(old, None), median(new, None)
    old_cpu, new_cpu = median(old, None, "cpu"), median(new, None, "cpu")
    processes = int(rows[-1][1])
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
        f"{old_cpu / processes:.2f} s CPU on average.",
        f"Client CPU: old way {old_cpu:.2f} s vs pipeline {new_cpu:.2f} s = "
        f"{old_cpu / new_cpu:.1f}x (less sensitive than wall time to other load on the machine).",
        f"New way: importing the pipeline's task modules took {imported:.2f} s once per process "
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both sides (median)")
    parser.add_argument("--aws", help="AWS CLI executable (default: found or installed)")
    args = parser.parse_args()

    imported = import_pipeline()
    config, setting = sandbox_ready()
    version, staged = ensure_staging(config)
    aws_cli = find_aws_cli(args.aws)
    cli = f"{aws_cli} ({cli_version(aws_cli)})"
    from tasks.alarms.task import ops_topic_arn

    topic_arn = ops_topic_arn(AwsClients(), ENV)  # the seed reads it with `terraform output`
    meter = Meter()
    old: list[dict[str, Part]] = []
    new: list[dict[str, Part]] = []
    for round_no in range(max(args.rounds, 1)):
        sides = [
            lambda: old.append(old_way(aws_cli, version, topic_arn)),
            lambda: new.append(new_way(meter)),
        ]
        for side in sides if round_no % 2 == 0 else sides[::-1]:
            side()
            drop_version(version)
    ok = report(old, new, imported, cli, f"{setting}; {staged}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
