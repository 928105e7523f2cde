"""Pure PITR logic over DescribeContinuousBackups responses (dicts in, decisions and results out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mirror_rollout.results import CheckResult, Evidence, Status
from tasks.common import iso

CHECK_ID = "PITR-001"
TITLE = "Point-in-time recovery ENABLED with a restorable window"
ENABLED_BY_ROLLOUT = "enabled by the rollout"

Action = Literal["done", "enable", "wait"]


def pitr_description(response: dict[str, Any]) -> dict[str, Any]:
    """The PITR facts of one DescribeContinuousBackups response, JSON-ready."""
    backups = response.get("ContinuousBackupsDescription") or {}
    pitr = backups.get("PointInTimeRecoveryDescription") or {}
    return {
        "ContinuousBackupsStatus": backups.get("ContinuousBackupsStatus"),
        "PointInTimeRecoveryStatus": pitr.get("PointInTimeRecoveryStatus"),
        "EarliestRestorableDateTime": iso(pitr.get("EarliestRestorableDateTime")),
        "LatestRestorableDateTime": iso(pitr.get("LatestRestorableDateTime")),
        "RecoveryPeriodInDays": pitr.get("RecoveryPeriodInDays"),
    }


def verified(desc: dict[str, Any]) -> bool:
    return desc.get("PointInTimeRecoveryStatus") == "ENABLED" and bool(
        desc.get("EarliestRestorableDateTime")
    )


def next_action(desc: dict[str, Any]) -> Action:
    """What to do after reading ``desc``: done, enable PITR, or wait (ENABLING / no window yet)."""
    if verified(desc):
        return "done"
    if desc.get("PointInTimeRecoveryStatus") == "DISABLED":
        return "enable"
    return "wait"


def backoff_delays(max_attempts: int, base_seconds: float, cap_seconds: float) -> list[float]:
    """Sleeps between ``max_attempts`` attempts: base, 2*base, 4*base ... capped."""
    return [min(base_seconds * 2**i, cap_seconds) for i in range(max(max_attempts - 1, 0))]


@dataclass
class TableProbe:
    """Everything read and done for one table during the bounded retry loop."""

    table: str
    reads: list[Evidence] = field(default_factory=list)  # one per describe (per attempt)
    enables: list[Evidence] = field(default_factory=list)  # UpdateContinuousBackups by us
    missing: Evidence | None = None  # the read that said the table does not exist
    last: dict[str, Any] | None = None  # pitr_description of the last read
    error: str = ""  # an API error that ended the probe of this table


def judge(probe: TableProbe, attempts: int) -> CheckResult:
    """PASS only when the last read shows ENABLED with EarliestRestorableDateTime."""
    evidence = [*probe.reads, *probe.enables]
    result = CheckResult(
        check_id=CHECK_ID, title=TITLE, status=Status.FAIL, subject=probe.table, evidence=evidence
    )
    if probe.missing is not None:
        result.evidence = [*evidence, probe.missing]
        result.message = f"table {probe.table} does not exist"
        return result
    if probe.error:
        result.message = f"{probe.table}: {probe.error}"
        return result
    last = probe.last or {}
    enabled_note = f" ({ENABLED_BY_ROLLOUT}: it was DISABLED)" if probe.enables else ""
    if verified(last):
        result.status = Status.PASS
        result.message = (
            f"ENABLED, earliest restorable {last['EarliestRestorableDateTime']}{enabled_note}"
        )
        return result
    status = last.get("PointInTimeRecoveryStatus")
    if status == "ENABLED":
        result.message = (
            f"{probe.table}: PITR ENABLED but no EarliestRestorableDateTime after "
            f"{attempts} attempt(s){enabled_note}"
        )
    else:
        result.message = f"{probe.table}: PITR is {status or 'unknown'} after {attempts} attempt(s){enabled_note}"
    return result
