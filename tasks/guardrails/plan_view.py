"""The plan JSON of ``terraform show -json <planfile>`` (format 1.x), as the plan checks read it.

Terraform has evaluated everything here: names, thresholds, windows, tags are the
values it will apply (``planned_values``, with every module). Which resource an
argument refers to comes from Terraform's own ``configuration`` section
(``expressions.<arg>.references``), not from reading strings. A value known only
after apply (an ARN, a document that embeds one) is absent from ``planned_values``
and flagged in ``resource_changes[*].change.after_unknown``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror_rollout.documents import as_list
from mirror_rollout.errors import ConfigError

AFTER_APPLY = "known only after apply"


# -- the plan document ----------------------------------------------------------------
@dataclass
class Planned:
    """One resource instance of ``planned_values`` with what Terraform knows about it."""

    address: str
    type: str
    name: str
    config_address: str  # its configuration block: module path + type.name, no instance keys
    values: dict[str, Any]
    unknown: dict[str, Any] = field(default_factory=dict)  # its change's after_unknown

    def known(self, key: str) -> bool:
        return key in self.values and self.unknown.get(key) is not True

    def where(self, key: str = "") -> str:
        return f"planned_values {self.address}" + (f".{key}" if key else "")

    @property
    def location(self) -> str:
        return self.where()

    def at(self, path: str) -> str:
        return self.where(path)


@dataclass
class PlanView:
    env: str
    resources: list[Planned]
    config: dict[str, dict[str, Any]]  # configuration resources by config address
    variables: dict[str, Any]
    deleted: list[dict[str, Any]]  # resource_changes that delete (without re-creating)
    #: Attributes the backend does not keep, by address (the sandbox's declared moto gaps).
    not_kept: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def of_type(self, rtype: str) -> list[Planned]:
        return [r for r in self.resources if r.type == rtype]

    def get(self, address: str) -> Planned | None:
        return next((r for r in self.resources if r.address == address), None)

    def expression(self, resource: Planned, path: str) -> dict[str, Any] | None:
        """The configuration expression of ``path`` ("rule.apply_...by_default.kms_master_key_id")."""
        node: Any = (self.config.get(resource.config_address) or {}).get("expressions")
        for step in path.split("."):
            if isinstance(node, list):  # a nested block: Terraform lists one entry per block
                node = node[0] if node else None
            node = node.get(step) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else None

    def references(self, resource: Planned, path: str) -> list[str]:
        expression = self.expression(resource, path) or {}
        return [str(r) for r in as_list(expression.get("references"))]

    def refers_to(self, resource: Planned, path: str, target: Planned) -> bool:
        """Does ``path`` of ``resource`` refer to ``target`` (Terraform's references)?"""
        own = resource.config_address.rpartition(resource.type + ".")[0]
        wanted = target.config_address.removeprefix(own) if own else target.config_address
        return any(
            r == wanted or r.startswith(wanted + ".") for r in self.references(resource, path)
        )


def _without_keys(address: str) -> str:
    return re.sub(r"\[[^\]]*\]", "", address)


def _walk_planned(module: dict[str, Any], unknown: dict[str, dict]) -> Iterator[Planned]:
    for r in as_list(module.get("resources")):
        if r.get("mode", "managed") != "managed":
            continue
        module_path = _without_keys(r["address"].rpartition(f"{r['type']}.{r['name']}")[0])
        yield Planned(
            address=r["address"],
            type=r["type"],
            name=r["name"],
            config_address=f"{module_path}{r['type']}.{r['name']}",
            values=r.get("values") or {},
            unknown=unknown.get(r["address"]) or {},
        )
    for child in as_list(module.get("child_modules")):
        yield from _walk_planned(child, unknown)


def _walk_config(module: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict]]:
    for r in as_list((module or {}).get("resources")):
        yield prefix + r["address"], r
    for name, call in ((module or {}).get("module_calls") or {}).items():
        yield from _walk_config(call.get("module") or {}, f"{prefix}module.{name}.")


def read_plan(
    plan: Any, environment: str, not_kept: dict[str, tuple[str, ...]] | None = None
) -> PlanView:
    """The parts of a ``terraform show -json`` document the checks read; ConfigError if it is none."""
    fix = "pass the output of `terraform show -json <planfile>`"
    if not isinstance(plan, dict) or "planned_values" not in plan:
        raise ConfigError("the plan document has no planned_values: it is not a plan JSON", fix)
    version = str(plan.get("format_version", ""))
    if version.split(".")[0] != "1":
        raise ConfigError(f"plan JSON format_version {version!r} is not 1.x", fix)
    if plan.get("errored"):
        raise ConfigError("the plan errored, so it plans nothing", "fix the plan's errors first")
    variables = {k: (v or {}).get("value") for k, v in (plan.get("variables") or {}).items()}
    planned_env = variables.get("environment")
    if planned_env is not None and planned_env != environment:
        raise ConfigError(
            f"the plan is for environment {planned_env!r}, not {environment!r}",
            f"check it with --env {planned_env}, or pass the plan of {environment}",
        )
    changes = [c for c in as_list(plan.get("resource_changes")) if isinstance(c, dict)]
    unknown: dict[str, dict] = {}
    for change in changes:
        after_unknown = (change.get("change") or {}).get("after_unknown")
        if isinstance(after_unknown, dict):
            unknown[str(change.get("address"))] = after_unknown
    deleted = [
        c
        for c in changes
        if (c.get("change") or {}).get("actions") == ["delete"] and c.get("mode") == "managed"
    ]
    root = (plan.get("planned_values") or {}).get("root_module") or {}
    config_root = (plan.get("configuration") or {}).get("root_module") or {}
    return PlanView(
        env=environment,
        resources=list(_walk_planned(root, unknown)),
        config=dict(_walk_config(config_root)),
        not_kept=dict(not_kept or {}),
        variables=variables,
        deleted=deleted,
    )


def planned_document(resource: Planned, key: str) -> tuple[Any, str | None]:
    """(parsed JSON document, None) or (None, why it cannot be read)."""
    if not resource.known(key):
        return None, f"{key} is {AFTER_APPLY}"
    try:
        return json.loads(resource.values[key]), None
    except (TypeError, ValueError):
        return None, f"{key} is not a JSON document"


def load_plan_file(path: Path) -> dict:
    """Read a `terraform show -json` file; ConfigError (one line, the fix) if it is not one."""
    fix = "write it with `terraform show -json <planfile> > FILE`"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not text (the binary plan file itself?)", fix) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", fix) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}", fix) from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path} holds a JSON {type(document).__name__}, not a plan", fix)
    return document
