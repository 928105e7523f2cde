"""Pure: the argv of every Terraform command the provisioner runs, and how it is logged."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mirror_rollout.errors import ConfigError

#: Backend settings whose values never reach the log.
SECRET_BACKEND_KEYS = frozenset({"access_key", "secret_key", "token", "sse_customer_key"})


def render_backend_value(value: Any) -> str:
    """A ``-backend-config`` value: strings as is, bools/numbers as HCL, maps/lists as HCL literals.

    Terraform parses the value of a non-string backend attribute as an HCL
    expression, so ``{"s3": "http://…"}`` becomes ``{s3="http://…"}``.
    """
    if isinstance(value, str):
        return value
    return _hcl_literal(value)


def _hcl_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value).replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}={_hcl_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_hcl_literal(v) for v in value) + "]"
    raise ConfigError(
        f"backend config value {value!r} has unsupported type {type(value).__name__}",
        "use strings, numbers, booleans, lists or maps",
    )


def backend_config_args(backend_config: Mapping[str, Any] | None) -> list[str]:
    return [
        f"-backend-config={k}={render_backend_value(v)}" for k, v in (backend_config or {}).items()
    ]


# Keyword-only, one a part of the argv (the same names as the flags they fill).
def command_lines(
    binary: str,
    *,
    workspace: str,
    var_file: Path | str,
    plan_file: Path | str,
    backend_config: Mapping[str, Any] | None = None,
    lock_id: str = "",
) -> dict[str, list[str]]:
    """Pure: every argv the provisioner runs, keyed by the subcommand's name."""
    plan = [binary, "plan", "-input=false", "-no-color"]
    planned = [f"-var-file={var_file}", f"-out={plan_file}"]
    return {
        "init": [
            binary,
            "init",
            "-input=false",
            "-no-color",
            "-reconfigure",
            *backend_config_args(backend_config),
        ],
        "workspace select": [binary, "workspace", "select", "-no-color", workspace],
        "workspace new": [binary, "workspace", "new", "-no-color", workspace],
        "workspace select or create": [
            binary,
            "workspace",
            "select",
            "-or-create",
            "-no-color",
            workspace,
        ],
        "state pull": [binary, "state", "pull", "-no-color"],
        "plan": [*plan, *planned],
        # The re-plan: refreshes, exits 2 when anything would change (0: none).
        "re-plan": [*plan, "-detailed-exitcode", *planned],
        "show": [binary, "show", "-json", "-no-color", str(plan_file)],
        "apply": [binary, "apply", "-input=false", "-no-color", str(plan_file)],
        "output": [binary, "output", "-json", "-no-color"],
        "force-unlock": [binary, "force-unlock", "-force", "-no-color", lock_id],
        "version": [binary, "version", "-json"],
        "validate": [binary, "validate", "-no-color"],
    }


def redact_argv(argv: list[str]) -> list[str]:
    """The argv as logged: values of secret backend settings replaced by ``***``."""
    out = []
    for arg in argv:
        if arg.startswith("-backend-config="):
            key = arg.removeprefix("-backend-config=").partition("=")[0]
            if key in SECRET_BACKEND_KEYS:
                arg = f"-backend-config={key}=***"
        out.append(arg)
    return out
