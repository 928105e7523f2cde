"""The AWS CLI as the old scripts ran it: one process per API call, against the sandbox's moto."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from bench.common import ROOT

AWSCLI_VENV = ROOT / "bench" / ".awscli-venv"


@dataclass
class CliCall:
    args: list[str]
    check: Callable[[str], bool]  # on the stripped stdout
    stdin: SecretStr | None = None


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
