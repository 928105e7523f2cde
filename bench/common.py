"""Shared parts of the benchmarks: sandbox, a quiet staging rollout, machine details, RESULTS.md."""

from __future__ import annotations

import os
import platform
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from mirror_rollout import sandbox

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
#: The staging rehearsal on a sandbox that is already up should take less than this ...
TARGET_SECONDS = 60.0
#: ... and at most this multiple of the bare Terraform sequence on the same moto.
TARGET_RATIO = 1.3
#: Other work on the machine skews timings; the 1-minute load average is recorded with them.
LOAD_AT_START = os.getloadavg()[0]


def sandbox_ready(
    config: sandbox.SandboxConfig | None = None,
) -> tuple[sandbox.SandboxConfig, str]:
    """Bring the sandbox up if needed (not timed) and point this process at it.

    Returns the config and a note for the results: reused, or started (and how long it took).
    """
    config = config or sandbox.SandboxConfig.resolve()
    started = time.monotonic()
    statuses = sandbox.up(config)
    seconds = time.monotonic() - started
    sandbox.activate(config)
    servers = [s for s in statuses if s.name in sandbox.SERVERS]
    if all(s.reused for s in servers):
        note = "sandbox already up, reused"
    else:
        note = f"sandbox started by this script first ({seconds:.1f} s, not counted)"
    return config, note


def reset_moto(config: sandbox.SandboxConfig) -> None:
    """Empty moto, so the rollout creates everything again (state backend bootstrapped again)."""
    request = urllib.request.Request(config.url("moto") + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request).read()
    sandbox.bootstrap_state_backend(config)


#: Terraform's own commands in a rollout, in order: the bare sequence the rehearsal is measured against.
SEQUENCE = ("init", "workspace new", "plan", "apply", "re-plan")


@contextmanager
def laid_out_working_copy(
    config: sandbox.SandboxConfig, environment: str = "staging"
) -> Iterator[tuple[Any, Path]]:
    """A working copy as a rollout lays it out, on an empty moto, without its .terraform.

    `mirror-rollout plan --out` lays out the working copy (the root, the sandbox override,
    the CLI config) and is not timed. Yields the TerraformCli (its argv and environment,
    for running Terraform without the provisioner) and the scratch directory.
    """
    import shutil
    import subprocess
    import sys
    import tempfile

    from mirror_rollout.provisioners import terraform_for

    with tempfile.TemporaryDirectory(prefix="bench-terraform-") as work:
        laid_out = subprocess.run(
            [sys.executable, "-m", "console.main", "plan", "--env", environment, "--out", work],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if laid_out.returncode != 0:
            raise SystemExit(f"mirror-rollout plan failed:\n{laid_out.stdout}{laid_out.stderr}")
        reset_moto(config)
        terraform = terraform_for(environment, "sandbox", ROOT, Path(work) / "terraform")
        shutil.rmtree(terraform.workdir / ".terraform", ignore_errors=True)
        yield terraform, Path(work)


def terraform_sequence(
    terraform: Any, planfile: Path, env: dict[str, str] | None = None
) -> dict[str, float]:
    """Run exactly ``init``, ``workspace new``, ``plan -out``, ``apply <planfile>`` and the
    refreshing ``plan -detailed-exitcode``: seconds per command and the wall time."""
    import subprocess

    commands = terraform.commands(planfile)
    timings: dict[str, float] = {}
    started = time.monotonic()
    for name in SEQUENCE:
        begun = time.monotonic()
        done = subprocess.run(
            commands[name], cwd=terraform.workdir, env=env or terraform.env(), capture_output=True
        )
        timings[name] = time.monotonic() - begun
        if done.returncode != 0:  # the re-plan too: 2 would mean the apply left changes
            raise SystemExit(f"terraform {name}: exit {done.returncode}: {done.stderr[-600:]!r}")
    return {**timings, "wall": time.monotonic() - started}


def bare_terraform(config: sandbox.SandboxConfig, environment: str = "staging") -> dict[str, float]:
    """The bare Terraform sequence on the same moto, same override: seconds per command + wall.

    No ``show``, no state reads, no flow: Terraform alone.
    """
    with laid_out_working_copy(config, environment) as (terraform, work):
        return terraform_sequence(terraform, work / "bare.tfplan")


def run_rollout(
    config: sandbox.SandboxConfig, environment: str = "staging", **flow_params
) -> tuple[int, str, float]:
    """One auto-approved rollout in this process: (exit code, flow run id, wall seconds)."""
    from console.rehearsal import rehearse

    started = time.monotonic()
    with open(os.devnull, "w") as devnull:  # the benches print their own tables
        code, run_id = rehearse(
            environment,
            "sandbox",
            True,
            config.ui_url,
            Console(file=devnull),
            approval_timeout_seconds=120,
            report=False,
            **flow_params,
        )
    return code, run_id, time.monotonic() - started


def cpu_seconds(children: bool = False) -> float:
    """CPU time (user + system) of this process, or of its finished child processes."""
    t = os.times()
    return t.children_user + t.children_system if children else t.user + t.system


def machine_busy_seconds() -> float:
    """CPU seconds all cores of this machine have spent busy (not idle, not waiting on I/O)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(config: sandbox.SandboxConfig) -> float:
    """CPU time used so far by the sandbox servers (moto, GCS, Prefect) and their process groups."""
    total = 0.0
    for name in sandbox.SERVERS:
        record = sandbox.PidRecord.load(config.pid_file(name))
        for pid in sandbox.group_members(record.pgid) if record else []:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def ram_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def machine() -> str:
    """Platform, cores, RAM, Python, and the load at the start (the machine may be shared)."""
    return (
        f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"{ram_gib():.1f} GiB RAM, Python {platform.python_version()}, "
        f"load average {LOAD_AT_START:.2f} at start"
    )


def append_results(title: str, command: str, setting: str, body: list[str]) -> None:
    """Append one dated section to bench/RESULTS.md."""
    lines = [
        f"## {title} — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine()}.",
        f"Command: `{command}` ({setting}).",
        "",
        *body,
        "",
    ]
    with RESULTS.open("a") as out:
        out.write("\n".join(lines) + "\n")
