"""Which Terraform runs, and where its providers come from.

Terraform >= 1.11 is required (write-only arguments). When a filesystem mirror
of the providers exists (``MIRROR_ROLLOUT_TF_PLUGINS``, default
``/opt/tf-plugins``), a generated CLI config installs hashicorp/* from it and
nothing from the network; otherwise ``terraform init`` uses the registry.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from mirror_rollout.errors import ConfigError

MIN_VERSION: tuple[int, int] = (1, 11)
PLUGINS_ENV = "MIRROR_ROLLOUT_TF_PLUGINS"
DEFAULT_PLUGINS = Path("/opt/tf-plugins")
INSTALL_HINT = (
    "install Terraform {need} or newer (https://developer.hashicorp.com/terraform/install) "
    "and put `terraform` on PATH"
)


def _need() -> str:
    return ".".join(map(str, MIN_VERSION))


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` from ``terraform version -json`` output or a ``v1.2.3`` line."""
    with contextlib.suppress(ValueError, AttributeError):
        text = json.loads(text).get("terraform_version", "")
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


def check_version(version: tuple[int, int, int] | None, binary: str) -> None:
    if version is None:
        raise ConfigError(f"cannot tell the version of {binary}", INSTALL_HINT.format(need=_need()))
    if version[:2] < MIN_VERSION:
        raise ConfigError(
            f"{binary} is Terraform {'.'.join(map(str, version))}; mirror-rollout needs "
            f"{_need()} or newer (write-only arguments)",
            INSTALL_HINT.format(need=_need()),
        )


@functools.cache
def _version_of(binary: str) -> tuple[int, int, int] | None:
    try:
        done = subprocess.run(
            [binary, "version", "-json"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "CHECKPOINT_DISABLE": "1"},
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot run {binary}: {exc.strerror or exc}", INSTALL_HINT.format(need=_need())
        ) from None
    return parse_version(done.stdout)


def find_terraform(binary: str | None = None) -> tuple[str, tuple[int, int, int]]:
    """Absolute path and version of the Terraform to use; one clear error if unusable."""
    name = binary or os.environ.get("MIRROR_ROLLOUT_TERRAFORM") or "terraform"
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            f"Terraform {_need()} or newer is needed and {name!r} is not on PATH",
            INSTALL_HINT.format(need=_need()),
        )
    version = _version_of(found)
    check_version(version, found)
    return found, version  # type: ignore[return-value]


def plugin_mirror(env: Mapping[str, str] | None = None) -> Path | None:
    """The filesystem mirror of providers, if one exists here."""
    environ = os.environ if env is None else env
    configured = environ.get(PLUGINS_ENV, "").strip()
    path = Path(configured) if configured else DEFAULT_PLUGINS
    if (path / "registry.terraform.io").is_dir():
        return path
    if configured:
        raise ConfigError(
            f"{PLUGINS_ENV}={configured} holds no registry.terraform.io/ provider tree",
            f"point {PLUGINS_ENV} at a `terraform providers mirror` directory, or unset it "
            "to install providers from the registry",
        )
    return None


def cli_config(mirror: Path) -> str:
    """A CLI config installing hashicorp/* providers from ``mirror`` only."""
    return (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror))}\n"
        '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "}\n"
    )


def describe() -> str:
    """One line for `mirror-rollout doctor`: the Terraform and the provider source in use."""
    binary, version = find_terraform()
    mirror = plugin_mirror()
    source = f"providers from the mirror {mirror}" if mirror else "providers from the registry"
    return f"Terraform {'.'.join(map(str, version))} at {binary}; {source}"
