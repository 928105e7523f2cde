"""Pure comparison of a baseline snapshot with a live one, and the results it gives."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from mirror_rollout.results import CheckResult, Evidence, Status

TITLE = "Live configuration matches the baseline recorded by the last rollout"
#: The attribute name of a whole resource that exists on one side only.
RESOURCE = "(resource)"
PRESENT = "present"
MISSING = "missing"
#: An attribute one side does not have.
ABSENT = "<absent>"


class Drift(BaseModel):
    resource: str
    attribute: str
    expected: Any
    actual: Any

    def describe(self) -> str:
        return f"{self.attribute}: expected {show(self.expected)}, actual {show(self.actual)}"


def show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def diff(baseline: dict[str, dict[str, Any]], live: dict[str, dict[str, Any]]) -> list[Drift]:
    """Every difference, ordered by resource then attribute; a one-sided resource is one Drift."""
    drifts: list[Drift] = []
    for resource in sorted(set(baseline) | set(live)):
        if resource not in live:
            drifts.append(
                Drift(resource=resource, attribute=RESOURCE, expected=PRESENT, actual=MISSING)
            )
            continue
        if resource not in baseline:
            drifts.append(
                Drift(resource=resource, attribute=RESOURCE, expected=MISSING, actual=PRESENT)
            )
            continue
        expected, actual = baseline[resource], live[resource]
        for attribute in sorted(set(expected) | set(actual)):
            want, got = expected.get(attribute, ABSENT), actual.get(attribute, ABSENT)
            if want != got:
                drifts.append(
                    Drift(resource=resource, attribute=attribute, expected=want, actual=got)
                )
    return drifts


def to_check_results(
    drifts: list[Drift], evidence: list[Evidence], first: int = 1
) -> list[CheckResult]:
    """One FAIL (DRIFT-001, DRIFT-002 ...) per difference, or one PASS with ``evidence``."""
    if not drifts:
        return [
            CheckResult(
                check_id=f"DRIFT-{first:03d}",
                title=TITLE,
                status=Status.PASS,
                subject="all contract resources",
                message="no drift: every resource and attribute matches the baseline",
                evidence=list(evidence),
            )
        ]
    return [
        CheckResult(
            check_id=f"DRIFT-{first + i:03d}",
            title=TITLE,
            status=Status.FAIL,
            subject=d.resource,
            message=d.describe(),
            evidence=[
                *evidence,
                Evidence(
                    source="drift comparison",
                    observed={
                        "resource": d.resource,
                        "attribute": d.attribute,
                        "expected": d.expected,
                        "actual": d.actual,
                    },
                ),
            ],
        )
        for i, d in enumerate(drifts)
    ]
