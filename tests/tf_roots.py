"""Small Terraform roots (tests/fixtures/roots) run by the real Terraform on the sandbox.

Each fixture root is ``<name>/infra/terraform`` (its ``.tf`` files,
``staging.tfvars``) and, for each change a test makes, a directory
``<name>/<change>/`` of files added to ``infra/terraform`` (or replacing them; an
``*_override.tf`` changes some arguments), and of unified diffs ``<file>.patch``
that edit one of its files. A copy gets its ``backend.tf`` written: the real
root's ``terraform`` block (its ``backend "s3"``, with the key
``fidelity-<name>/terraform.tfstate``) and ``provider.tf``, which all fixtures share.
Every name in a root (its state key, its AWS resources) starts with
``fidelity-<name>``; a copy renames that to ``fidelity-<name>-<6 hex>``, so each
copy has its own state and resources: no test depends on another or on the
order they run in, even on a reused sandbox.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mirror_rollout import PROJECT_ROOT
from mirror_rollout import sandbox as sb
from mirror_rollout.environments import terraform_dir
from mirror_rollout.provisioners import terraform_for
from mirror_rollout.provisioners.state_backend import BackendSpec, read_backend
from mirror_rollout.provisioners.terraform_cli import TerraformCli
from tests.applied import state_document, state_serial

ROOTS = Path(__file__).parent / "fixtures" / "roots"


def fixture_backend(name: str) -> str:
    """The ``backend.tf`` of fixture root ``name``: the real root's backend, its own state key."""
    real = (terraform_dir(PROJECT_ROOT) / "backend.tf").read_text()
    block = re.search(r"^terraform \{\n.*?^\}\n", real, re.MULTILINE | re.DOTALL)
    assert block, "infra/terraform/backend.tf has no terraform block"
    backend, keys = re.subn(
        r'^(\s*key\s*=\s*)"[^"]*"',
        rf'\g<1>"fidelity-{name}/terraform.tfstate"',
        block[0],
        flags=re.MULTILINE,
    )
    assert keys == 1 and 'backend "s3"' in backend, "the real backend is no longer one s3 key"
    return backend + "\n" + (ROOTS / "provider.tf").read_text()


def apply_patch(text: str, patch: str) -> str:
    """``text`` edited by the unified diff ``patch`` of one file; every line it keeps or
    removes must be there, as it says."""
    lines, edited, at = text.splitlines(keepends=True), [], 0
    hunks = re.finditer(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@.*\n((?:[ +-].*\n?)*)", patch, re.M)
    for hunk in hunks:
        start = int(hunk[1]) - 1
        assert start >= at, "hunks out of order"
        edited += lines[at:start]
        at = start
        for line in hunk[2].splitlines(keepends=True):
            kind, body = line[0], line[1:]
            if kind in " -":
                assert at < len(lines) and lines[at] == body, f"line {at + 1} is not {body!r}"
                at += 1
            if kind in " +":
                edited.append(body)
    return "".join(edited + lines[at:])


class Root:
    """A private copy of a fixture root under ``base``."""

    def __init__(self, name: str, base: Path, *, token: str | None = None):
        self.name = name
        self.token = token or f"fidelity-{name}-{secrets.token_hex(3)}"
        self.path = (base / name).resolve()
        self.work = self.path.parent / f"{name}-work"
        if token is None:
            source = ROOTS / name
            assert (source / "infra" / "terraform").is_dir(), f"no fixture root {name}"
            shutil.copytree(source, self.path)
            (self.tf_dir / "backend.tf").write_text(fixture_backend(name))
            for tf in [*self.path.rglob("*.tf"), *self.path.rglob("*.patch")]:
                tf.write_text(tf.read_text().replace(f"fidelity-{name}", self.token))

    def clone(self, base: Path) -> Root:
        """Another copy of this one's files as they are now: same state, same AWS names."""
        other = Root(self.name, base, token=self.token)
        shutil.copytree(self.path, other.path, ignore=shutil.ignore_patterns("out"))
        return other

    @property
    def tf_dir(self) -> Path:
        return self.path / "infra" / "terraform"

    def prefix(self, env: str = "staging") -> str:
        """The start of every AWS name of this copy in ``env``."""
        return f"{self.token}-{env}"

    def change(self, change: str = "next") -> None:
        """Make a change: the files of ``<change>/`` added to ``infra/terraform``, its patches applied."""
        changed = self.path / change
        assert changed.is_dir(), f"fixture root {self.name} has no {change}/"
        patches = shutil.ignore_patterns("*.patch")
        shutil.copytree(changed, self.tf_dir, ignore=patches, dirs_exist_ok=True)
        for patch in sorted(changed.rglob("*.patch")):
            edited = self.tf_dir / patch.relative_to(changed).with_suffix("")
            edited.write_text(apply_patch(edited.read_text(), patch.read_text()))

    def terraform(self, env: str = "staging", work: Path | None = None) -> TerraformCli:
        """Terraform for ``env`` exactly as the provisioner builds it on the sandbox.

        The default working copy is shared by the copy's runs (a fresh copy of the
        root each time; Terraform's provider cache is kept, as in a rollout).
        """
        return terraform_for(env, "sandbox", self.path, work or self.work / env)

    # -- the state, as the S3 backend stored it in moto --------------------------------
    @property
    def backend(self) -> BackendSpec:
        spec = read_backend(self.tf_dir)
        assert spec is not None
        return spec

    def state(self, env: str = "staging") -> dict[str, Any] | None:
        return state_document(env, self.backend)

    def serial(self, env: str = "staging") -> int | None:
        return state_serial(env, self.backend)

    def lock_items(self) -> list[dict[str, Any]]:
        """Items of the lock table that hold a lock on this copy's state (not digests)."""
        import boto3

        spec = self.backend
        table = boto3.client("dynamodb", region_name=spec.region)
        items = table.scan(TableName=spec.lock_table)["Items"]
        return [
            item
            for item in items
            if self.token in item["LockID"]["S"] and not item["LockID"]["S"].endswith("-md5")
        ]


def mirror_rollout(
    sandbox: Any, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run the ``mirror-rollout`` command of this checkout, on the test's own sandbox if given.

    The child gets the sandbox's exports and its state dir and ports, so
    ``sandbox up`` inside the command finds and reuses the test's servers;
    ``env`` is added last.
    """
    child = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "COLUMNS": "200"}
    if sandbox is not None:
        config = sandbox.config
        child.update(sandbox.exports)
        child[sb.STATE_DIR_ENV] = str(config.state_dir)
        child.update({variable: str(config.port(name)) for name, variable in sb.PORT_ENV.items()})
    child.update(env or {})
    binary = Path(sys.executable).parent / "mirror-rollout"  # this checkout via PYTHONPATH
    return subprocess.run(
        [str(binary), *args], env=child, capture_output=True, text=True, timeout=timeout
    )
