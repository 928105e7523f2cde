"""Typed results every validation returns: status, evidence and, when skipped, why."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIPPED = "SKIPPED"


class Severity(StrEnum):
    error = "error"
    warning = "warning"


def _now() -> datetime:
    return datetime.now(UTC)


class Evidence(BaseModel):
    """What was read, from where and when."""

    source: str
    observed: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=_now)


class CheckResult(BaseModel):
    check_id: str
    title: str
    status: Status
    severity: Severity = Severity.error
    subject: str = ""  # the resource or file the result is about
    location: str = ""  # file:line it is blamed on, for static checks
    message: str = ""  # for FAIL: what is wrong; for SKIPPED: why
    evidence: list[Evidence] = Field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return self.status is Status.FAIL and self.severity is Severity.error
