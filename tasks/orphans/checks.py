"""Pure: which live, project-named resources does the state not track, and how to adopt them.

A resource can exist in AWS but not in state when Terraform lost a create's
response or was killed between the create and the state write. The next plan
would try to create it again and fail ("already exists"); the fix is to adopt
it with ``terraform import`` (``mirror-rollout adopt``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from mirror_rollout.results import CheckResult, Evidence, Status
from mirror_rollout.target import DEFAULT_REGION
from tasks.restore_drill.checks import delete_command, is_drill_table


@dataclass(frozen=True)
class LiveResource:
    """A resource read from AWS: its Terraform type and the id Terraform imports it by.

    ``name`` is the name the configuration gives it when that is not the id (an SNS
    topic's or a trail's ARN, a Backup plan's generated id); empty: the id is the name.
    """

    type: str
    id: str
    name: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """What a planned resource may call it: the id, the name, an ARN's last part."""
        return tuple(
            dict.fromkeys(n for n in (self.id, self.name, self.id.rsplit(":", 1)[-1]) if n)
        )


@dataclass(frozen=True)
class Orphan:
    live: LiveResource
    address: str | None  # the configuration's address that would adopt it, when known

    def adopt_command(self, environment: str) -> str:
        address = self.address or f"{self.live.type}.<name>"
        return (
            f"mirror-rollout adopt --env {environment} "
            f"{shlex.quote(address)} {shlex.quote(self.live.id)}"
        )


def tracked_ids(state: dict[str, Any]) -> set[tuple[str, str]]:
    """(type, id) of every managed instance in a Terraform state document (v4)."""
    found = set()
    for resource in state.get("resources", []):
        if resource.get("mode") != "managed":
            continue
        for instance in resource.get("instances", []):
            attributes = instance.get("attributes") or {}
            for key in ("id", "name", "arn"):
                if attributes.get(key):
                    found.add((resource["type"], str(attributes[key])))
    return found


#: Planned values that name a resource (a generated ``id`` only once it exists).
NAME_KEYS = ("name", "alarm_name", "dashboard_name", "bucket", "id")


def _planned_resources(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Managed resources of a plan document's planned values, modules included."""
    found: list[dict[str, Any]] = []

    def walk(module: dict[str, Any]) -> None:
        found.extend(
            r for r in module.get("resources", []) if r.get("mode", "managed") == "managed"
        )
        for child in module.get("child_modules", []):
            walk(child)

    walk((plan.get("planned_values") or {}).get("root_module") or {})
    return found


def planned_addresses(plan: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(type, name-or-id) -> address, from a plan document's planned values (modules included)."""
    out: dict[tuple[str, str], str] = {}
    for resource in _planned_resources(plan):
        values = resource.get("values") or {}
        for key in NAME_KEYS:
            if isinstance(values.get(key), str):
                out[(resource["type"], values[key])] = resource["address"]
    return out


def unnamed_addresses(plan: dict[str, Any]) -> dict[str, str]:
    """type -> address for the types planned exactly once and without a name (a CMK, an OIDC
    provider): a live resource of such a type can only be that one."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in _planned_resources(plan):
        by_type.setdefault(resource["type"], []).append(resource)
    return {
        rtype: found[0]["address"]
        for rtype, found in by_type.items()
        if len(found) == 1
        and not any(isinstance((found[0].get("values") or {}).get(k), str) for k in NAME_KEYS)
    }


def find_orphans(
    live: list[LiveResource], state: dict[str, Any], plan: dict[str, Any] | None = None
) -> list[Orphan]:
    """The live resources the state does not track, each with the planned address that
    would adopt it (None when the plan is not given or has no such resource)."""
    tracked = tracked_ids(state)
    addresses = planned_addresses(plan or {})
    unnamed = unnamed_addresses(plan or {})
    orphans = []
    for resource in live:
        if any((resource.type, name) in tracked for name in resource.names):
            continue
        address = next(
            (
                addresses[(resource.type, n)]
                for n in resource.names
                if (resource.type, n) in addresses
            ),
            unnamed.get(resource.type),
        )
        orphans.append(Orphan(resource, address))
    return orphans


def planned_creates(plan: dict[str, Any]) -> set[str]:
    """Addresses a plan document creates (a replace keeps its resource in state: not these)."""
    return {
        c["address"]
        for c in plan.get("resource_changes", [])
        if (c.get("change") or {}).get("actions") == ["create"]
    }


def blocking_orphans(orphans: list[Orphan], plan: dict[str, Any]) -> list[Orphan]:
    """The orphans the plan would create again: that create cannot succeed (or duplicates)."""
    creates = planned_creates(plan)
    return [o for o in orphans if o.address in creates]


def adoption_needed(environment: str, blocking: list[Orphan]) -> tuple[str, str]:
    """(problem, fix) of refusing a plan that creates ``blocking``: each named with its adopt command."""
    named = "; ".join(f"{o.address} ({o.live.id})" for o in blocking)
    return (
        f"the plan creates what already exists in AWS but not in the {environment} state "
        f"(an apply was killed, or lost a create's response): {named}",
        "adopt each into state, then run the rollout again: "
        + "; ".join(o.adopt_command(environment) for o in blocking),
    )


def drill_leftovers(environment: str, orphans: list[Orphan]) -> tuple[list[Orphan], list[Orphan]]:
    """(restore-drill copies a killed drill left behind, the other orphans).

    A drill copy is never Terraform's: it is removed, not adopted.
    """
    left = [
        o
        for o in orphans
        if o.live.type == "aws_dynamodb_table" and is_drill_table(environment, o.live.id)
    ]
    return left, [o for o in orphans if o not in left]


def orphan_results(
    environment: str,
    live: list[LiveResource],
    orphans: list[Orphan],
    source: str,
    region: str = DEFAULT_REGION,
) -> list[CheckResult]:
    leftovers, orphans = drill_leftovers(environment, orphans)
    evidence = [
        Evidence(
            source=source,
            observed={
                "live": [f"{r.type} {r.id}" for r in live],
                "orphans": len(orphans),
                "drill_leftovers": [o.live.id for o in leftovers],
            },
        )
    ]

    def result(check_id: str, title: str, status: Status, subject: str, message: str):
        return CheckResult(
            check_id=check_id,
            title=title,
            status=status,
            subject=subject,
            message=message,
            evidence=evidence,
        )

    tracked = "Every project-named resource in AWS is tracked by Terraform state"
    results = [
        result(
            "ORPHAN-002",
            "No restore-drill copy left behind",
            Status.FAIL,
            f"{o.live.type} {o.live.id}",
            f"{o.live.id} is a PITR restore-drill copy of {environment} data that a killed or "
            f"failed drill left behind; remove it: {delete_command(o.live.id, region)}",
        )
        for o in leftovers
    ]
    if not orphans:
        count = len(live) - len(leftovers)
        return [
            *results,
            result(
                "ORPHAN-001",
                tracked,
                Status.PASS,
                f"{len(live)} resources",
                f"{count} project-named resources, all in state",
            ),
        ]
    return [
        *results,
        *(
            result(
                "ORPHAN-001",
                tracked,
                Status.FAIL,
                f"{o.live.type} {o.live.id}",
                f"{o.live.type} {o.live.id} exists in AWS but not in the {environment} state; "
                f"adopt it: {o.adopt_command(environment)}",
            )
            for o in orphans
        ),
    ]
