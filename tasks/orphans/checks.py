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


@dataclass(frozen=True)
class LiveResource:
    """A resource read from AWS: its Terraform type and the id Terraform imports it by."""

    type: str
    id: str


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


def planned_addresses(plan: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(type, name-or-id) -> address, from a plan document's planned values (modules included)."""
    out: dict[tuple[str, str], str] = {}

    def walk(module: dict[str, Any]) -> None:
        for resource in module.get("resources", []):
            if resource.get("mode", "managed") != "managed":
                continue
            values = resource.get("values") or {}
            for key in ("name", "alarm_name", "dashboard_name", "bucket", "id"):
                if isinstance(values.get(key), str):
                    out[(resource["type"], values[key])] = resource["address"]
        for child in module.get("child_modules", []):
            walk(child)

    walk((plan.get("planned_values") or {}).get("root_module") or {})
    return out


def find_orphans(
    live: list[LiveResource], state: dict[str, Any], plan: dict[str, Any] | None = None
) -> list[Orphan]:
    tracked = tracked_ids(state)
    addresses = planned_addresses(plan or {})
    orphans = []
    for resource in live:
        if (resource.type, resource.id) in tracked:
            continue
        short = resource.id.rsplit(":", 1)[-1]  # an ARN's name part (SNS topics)
        address = addresses.get((resource.type, resource.id)) or addresses.get(
            (resource.type, short)
        )
        orphans.append(Orphan(resource, address))
    return orphans


def orphan_results(
    environment: str, live: list[LiveResource], orphans: list[Orphan], source: str
) -> list[CheckResult]:
    evidence = [
        Evidence(
            source=source,
            observed={"live": [f"{r.type} {r.id}" for r in live], "orphans": len(orphans)},
        )
    ]
    if not orphans:
        return [
            CheckResult(
                check_id="ORPHAN-001",
                title="Every project-named resource in AWS is tracked by Terraform state",
                status=Status.PASS,
                subject=f"{len(live)} resources",
                message=f"{len(live)} project-named resources, all in state",
                evidence=evidence,
            )
        ]
    return [
        CheckResult(
            check_id="ORPHAN-001",
            title="Every project-named resource in AWS is tracked by Terraform state",
            status=Status.FAIL,
            subject=f"{o.live.type} {o.live.id}",
            message=f"{o.live.type} {o.live.id} exists in AWS but not in the {environment} state; "
            f"adopt it: {o.adopt_command(environment)}",
            evidence=evidence,
        )
        for o in orphans
    ]
