"""The run's working copy of the root's ``infra/terraform``, where every command runs.

Nothing is ever written under ``infra/``, and two runs never share ``.terraform``. On
the sandbox the copy also holds the generated ``sandbox_override.tf``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from mirror_rollout.provisioners.sandbox_override import OVERRIDE_FILE
from mirror_rollout.provisioners.terraform_binary import cli_config

#: What a working copy never takes from the root: Terraform's own data and local state.
_NOT_COPIED = shutil.ignore_patterns(
    ".terraform", ".terraform-data", "*.tfstate", "*.tfstate.*", "*.tfplan", OVERRIDE_FILE
)
#: What a refresh keeps: Terraform's data (providers, backend), its lock file, the CLI config.
_KEPT = (".terraform", ".terraform.lock.hcl", ".terraformrc")
#: Written last by a refresh: the fingerprint of what the copy was made from.
MARKER = ".mirror-rollout-copy"


def refresh_working_copy(
    source: Path, workdir: Path, *, override: str | None, mirror: Path | None, keep: bool
) -> None:
    """Copy the root's .tf (and modules) into ``workdir``; add the override and CLI config.

    Steps of one run share the working copy (some concurrently: the re-plan beside the
    orphan scan), so an up-to-date copy is left alone rather than rewritten under them;
    with ``keep`` any finished copy is (a later step works on the copy its plan made).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    marker = workdir / MARKER
    if keep and marker.is_file():
        return
    fingerprint = source_fingerprint(source, override, mirror)
    if marker.is_file() and marker.read_text() == fingerprint:
        return
    for old in workdir.iterdir():  # the root's files as they are now, nothing stale
        if old.name in _KEPT:
            continue
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    shutil.copytree(source, workdir, ignore=_NOT_COPIED, dirs_exist_ok=True)
    if override is not None:
        (workdir / OVERRIDE_FILE).write_text(override)
    if mirror is not None:
        (workdir / ".terraformrc").write_text(cli_config(mirror))
    marker.write_text(fingerprint)


def source_fingerprint(source: Path, override: str | None, mirror: Path | None) -> str:
    """sha256 of the root's files (not Terraform's data), the override and the mirror."""
    digest = hashlib.sha256()
    ignored = {".terraform", ".terraform-data"}
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and not ignored & set(relative.parts):
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update((override or "").encode() + str(mirror).encode())
    return digest.hexdigest()
