"""Terraform's JSON plan and state documents, typed, and the summary a reviewer reads.

The shapes follow Terraform's documented JSON output (``terraform show -json``
for plans, state file version 4). Unknown properties are kept (``extra="allow"``)
so that newer Terraform minor versions still load.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mirror_rollout import contract
from mirror_rollout.plan_digest import PlanDigest


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- plan ----------------------------------------------------------------------------
class Change(_Doc):
    actions: list[str]
    before: Any = None
    after: Any = None
    after_unknown: Any = None
    before_sensitive: Any = None
    after_sensitive: Any = None
    replace_paths: list[list[Any]] | None = None

    @property
    def action(self) -> str:
        """One word: create, update, delete, replace, read or no-op."""
        actions = self.actions
        if sorted(actions) == ["create", "delete"]:
            return "replace"
        return actions[0] if len(actions) == 1 else "+".join(actions)


class _Addressed(_Doc):
    """One resource instance by its address, as both plan sections name it."""

    address: str
    mode: str = "managed"
    type: str
    name: str
    index: Any = None


class ResourceChange(_Addressed):
    provider_name: str = "registry.terraform.io/hashicorp/aws"
    change: Change
    action_reason: str | None = None

    @property
    def action(self) -> str:
        return self.change.action


class StateValuesResource(_Addressed):
    provider_name: str = ""
    schema_version: int = 0
    values: dict[str, Any] = Field(default_factory=dict)


class StateValuesModule(_Doc):
    resources: list[StateValuesResource] = Field(default_factory=list)


class StateValues(_Doc):
    outputs: dict[str, Any] = Field(default_factory=dict)
    root_module: StateValuesModule = Field(default_factory=StateValuesModule)


class PriorState(_Doc):
    format_version: str = "1.0"
    terraform_version: str | None = None
    values: StateValues = Field(default_factory=StateValues)


class PlanDocument(_Doc):
    format_version: str
    terraform_version: str | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    planned_values: dict[str, Any] = Field(default_factory=dict)
    resource_changes: list[ResourceChange] = Field(default_factory=list)
    output_changes: dict[str, Change] = Field(default_factory=dict)
    prior_state: PriorState | None = None
    applyable: bool | None = None
    errored: bool | None = None
    timestamp: str | None = None

    def check_version(self) -> None:
        major = self.format_version.split(".")[0]
        if major != "1":
            from mirror_rollout.errors import ConfigError

            raise ConfigError(
                f"plan JSON format_version {self.format_version} is not supported",
                "use a Terraform release whose `show -json` writes format 1.x",
            )

    def managed_changes(self) -> list[ResourceChange]:
        return [c for c in self.resource_changes if c.mode == "managed"]


# -- state ---------------------------------------------------------------------------
class StateInstance(_Doc):
    index_key: Any = None
    schema_version: int = 0
    attributes: dict[str, Any] = Field(default_factory=dict)
    sensitive_attributes: list[Any] = Field(default_factory=list)
    private: str | None = None
    dependencies: list[str] = Field(default_factory=list)


class StateResource(_Doc):
    mode: str = "managed"
    type: str
    name: str
    provider: str = 'provider["registry.terraform.io/hashicorp/aws"]'
    instances: list[StateInstance] = Field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{'data.' if self.mode == 'data' else ''}{self.type}.{self.name}"


class StateDocument(_Doc):
    version: int = 4
    terraform_version: str = "1.9.8"
    serial: int = 0
    lineage: str
    outputs: dict[str, Any] = Field(default_factory=dict)
    resources: list[StateResource] = Field(default_factory=list)
    check_results: Any = None

    def check_version(self) -> None:
        if self.version != 4:
            from mirror_rollout.errors import ConfigError

            raise ConfigError(
                f"state version {self.version} is not supported",
                "use a state written by Terraform >= 0.12 (version 4)",
            )

    def instances(self) -> dict[str, tuple[StateResource, StateInstance]]:
        """Instance address -> (resource, instance)."""
        out = {}
        for res in self.resources:
            for inst in res.instances:
                out[instance_address(res.address, inst.index_key)] = (res, inst)
        return out


def instance_address(resource_address: str, key: Any) -> str:
    if key is None:
        return resource_address
    if isinstance(key, int):
        return f"{resource_address}[{key}]"
    return f'{resource_address}["{key}"]'


# -- summary -------------------------------------------------------------------------
class DestructiveChange(BaseModel):
    address: str
    type: str
    action: str


class PlanSummary(BaseModel):
    """What a reviewer needs before approving: counts, what is destroyed, what is missing."""

    sha256: PlanDigest
    counts: dict[str, int]
    by_type: dict[str, dict[str, int]]
    destructive: list[DestructiveChange]
    missing_expected: list[str]
    not_provisionable: dict[str, str] = Field(default_factory=dict)
    resource_count: int

    @property
    def has_changes(self) -> bool:
        return any(n for action, n in self.counts.items() if action not in ("no-op", "read"))

    @property
    def is_destructive(self) -> bool:
        return bool(self.destructive)

    def headline(self) -> str:
        order = ("create", "update", "replace", "delete", "no-op")
        parts = [f"{self.counts.get(a, 0)} to {a}" for a in order if a != "no-op"]
        text = ", ".join(parts) + f", {self.counts.get('no-op', 0)} unchanged"
        if self.destructive:
            text += f" — {len(self.destructive)} DESTRUCTIVE"
        return text


def summarize(
    plan: PlanDocument,
    sha256: PlanDigest,
    not_provisionable: Mapping[str, str] | None = None,
    expected: tuple[str, ...] = contract.EXPECTED_ADDRESSES,
) -> PlanSummary:
    """Pure: the review summary of a plan document."""
    changes = plan.managed_changes()
    counts = Counter(c.action for c in changes)
    by_type: dict[str, Counter] = {}
    for c in changes:
        by_type.setdefault(c.type, Counter())[c.action] += 1
    destructive = [
        DestructiveChange(address=c.address, type=c.type, action=c.action)
        for c in changes
        if c.type in contract.STATEFUL_TYPES and ("delete" in c.change.actions)
    ]
    present = {c.address for c in changes if c.change.actions != ["delete"]}
    # An address left out on purpose (a declared sandbox gap) is reported as such, not as missing.
    missing = [a for a in expected if a not in present and a not in (not_provisionable or {})]
    return PlanSummary(
        sha256=sha256,
        counts=dict(counts),
        by_type={t: dict(c) for t, c in sorted(by_type.items())},
        destructive=destructive,
        missing_expected=missing,
        not_provisionable=dict(not_provisionable or {}),
        resource_count=len(changes),
    )


def unchanged_summary(
    sha256: PlanDigest, state: dict[str, Any], not_provisionable: Mapping[str, str] | None = None
) -> PlanSummary:
    """Pure: the summary of a re-plan Terraform reported empty (exit code 0, no ``show``).

    Every managed instance of the state it was made against is unchanged.
    """
    instances = [
        (resource["type"], instance)
        for resource in state.get("resources", [])
        if resource.get("mode") == "managed"
        for instance in resource.get("instances", [])
    ]
    by_type: dict[str, Counter] = {}
    for rtype, _ in instances:
        by_type.setdefault(rtype, Counter())["no-op"] += 1
    return PlanSummary(
        sha256=sha256,
        counts={"no-op": len(instances)} if instances else {},
        by_type={t: dict(c) for t, c in sorted(by_type.items())},
        destructive=[],
        missing_expected=[],
        not_provisionable=dict(not_provisionable or {}),
        resource_count=len(instances),
    )
