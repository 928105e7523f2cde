"""Evaluation: one AWS provider process per rollout (Terraform's provider reattach) vs one per command.

Terraform starts hashicorp/aws anew for every command, and the provider builds its
very large schema each time. With TF_REATTACH_PROVIDERS, Terraform talks to a provider
process started once (`terraform-provider-aws -debug`) instead. This script measures
both on the sandbox, same working copy layout, moto emptied before each:

- speed: the bare sequence (init, workspace new, plan, apply, re-plan), wall time per
  command, with the provider started per command and with one reattached provider;
- soundness: whether Terraform still holds the provider to the checksums in
  .terraform.lock.hcl (the rollout's guarantee that the reviewed plan is applied by
  the provider it was made with): the lock file's hashes are replaced by a wrong one
  and `terraform plan` runs once each way.

Prints both and appends them to bench/RESULTS.md.

    .venv/bin/python bench/provider_reattach.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    SEQUENCE,
    append_results,
    laid_out_working_copy,
    sandbox_ready,
    terraform_sequence,
)
from mirror_rollout.provisioners.terraform_binary import plugin_mirror

COMMAND = ".venv/bin/python bench/provider_reattach.py"
ADDRESS = "registry.terraform.io/hashicorp/aws"
WRONG_HASH = "h1:" + "A" * 43 + "="


def start_provider(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """hashicorp/aws from the plugin mirror in debug mode: (process, TF_REATTACH_PROVIDERS).

    Its output goes to ``log``: a pipe nobody reads would fill and stall the provider.
    """
    mirror = plugin_mirror()
    if mirror is None:
        raise SystemExit("no hashicorp/aws plugin mirror on this machine")
    binary = next((mirror / ADDRESS).glob("*/*/terraform-provider-aws*"))
    with log.open("w") as out:
        provider = subprocess.Popen([str(binary), "-debug"], env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"TF_REATTACH_PROVIDERS='(.+)'", log.read_text())
        if found:
            return provider, found.group(1)
        time.sleep(0.2)
    provider.kill()
    raise SystemExit("the provider did not print its reattach configuration within 60 s")


def lock_file_enforced(terraform, env: dict[str, str]) -> tuple[bool, str]:
    """Break the aws hashes in .terraform.lock.hcl; does `terraform plan` still refuse?"""
    lock = terraform.workdir / ".terraform.lock.hcl"
    original = lock.read_text() if lock.exists() else ""
    entry = f'provider "{ADDRESS}"' in original
    broken = re.sub(r'"(h1|zh):[^"]+"', f'"{WRONG_HASH}"', original)
    lock.write_text(broken)
    try:
        plan = terraform.commands(terraform.workdir / "check.tfplan")["plan"]
        done = subprocess.run(plan, cwd=terraform.workdir, env=env, capture_output=True, text=True)
    finally:
        lock.write_text(original)
    refused = done.returncode != 0
    reason = next(
        (line.strip() for line in done.stderr.splitlines() if "checksum" in line.lower()),
        f"plan exit {done.returncode}",
    )
    if not entry:
        reason += f"; the lock file has no entry for {ADDRESS}"
    return refused, reason


def reattached_sequence(
    terraform, work: Path, env: dict[str, str]
) -> tuple[dict[str, float], tuple[bool, str]]:
    """The sequence with one provider process (started with ``env``), then the lock check."""
    provider, reattach = start_provider(env, work / "provider.log")
    try:
        with_provider = {**env, "TF_REATTACH_PROVIDERS": reattach}
        timings = terraform_sequence(terraform, work / "reattached.tfplan", with_provider)
        return timings, lock_file_enforced(terraform, with_provider)
    finally:
        provider.kill()


def main() -> None:
    console = Console()
    config, note = sandbox_ready()
    with laid_out_working_copy(config) as (terraform, work):
        per_command = terraform_sequence(terraform, work / "per-command.tfplan")
        per_command_lock = lock_file_enforced(terraform, terraform.env())
    # As a rollout runs it: the provider gets Terraform's whole environment.
    first_try = ""
    with laid_out_working_copy(config) as (terraform, work):
        try:
            reattached_sequence(terraform, work, terraform.env())
        except SystemExit as failed:
            first_try = str(failed).replace("\\n", " ").strip()
    # Without AWS_CA_BUNDLE (the sandbox speaks plain HTTP), to time it all the same.
    with laid_out_working_copy(config) as (terraform, work):
        env = {k: v for k, v in terraform.env().items() if k != "AWS_CA_BUNDLE"}
        reattached, reattached_lock = reattached_sequence(terraform, work, env)

    table = Table(title="hashicorp/aws per command vs one reattached provider (wall s)")
    for column in ("command", "per command", "reattached"):
        table.add_column(column)
    rows = []
    for name in (*SEQUENCE, "wall"):
        table.add_row(name, f"{per_command[name]:.2f}", f"{reattached[name]:.2f}")
        rows.append(f"| {name} | {per_command[name]:.2f} | {reattached[name]:.2f} |")
    console.print(table)
    saved = per_command["wall"] - reattached["wall"]
    lock_lines = [
        f"- provider per command: lock file checksums enforced: {per_command_lock[0]} "
        f"({per_command_lock[1]})",
        f"- reattached provider: lock file checksums enforced: {reattached_lock[0]} "
        f"({reattached_lock[1]})",
    ]
    for line in lock_lines:
        console.print(line)
    ca_line = "- with Terraform's whole environment (AWS_CA_BUNDLE set, as on this machine): " + (
        f"the sequence failed: {first_try}" if first_try else "the sequence passed"
    )
    console.print(ca_line)
    lock_lines.append(ca_line)
    sound = reattached_lock[0] and not first_try
    verdict = (
        f"Reattaching saves {saved:.1f} s of {per_command['wall']:.1f} s "
        f"({100 * saved / per_command['wall']:.0f} %); "
        + (
            "Terraform still enforces the lock file and every command passed: sound."
            if sound
            else "but it is not sound: "
            + "; ".join(
                (
                    []
                    if reattached_lock[0]
                    else [
                        "Terraform does not hold a reattached provider to the lock file's "
                        "checksums, so the provider that applies need not be the one the plan "
                        "was reviewed with"
                    ]
                )
                + (
                    []
                    if not first_try
                    else [
                        "one provider process is configured again by every command, and the "
                        "second configuration fails when AWS_CA_BUNDLE is set"
                    ]
                )
            )
            + ". Not kept."
        )
    )
    console.print(verdict)
    append_results(
        "Provider reattach (one hashicorp/aws process per rollout) vs one per command",
        COMMAND,
        note + "; moto emptied before each sequence",
        [
            "| command | per command s | reattached s |",
            "|---|---|---|",
            *rows,
            "",
            *lock_lines,
            "",
            verdict,
        ],
    )


if __name__ == "__main__":
    main()
