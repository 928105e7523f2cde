"""How validations report: typed results into Prefect table artifacts, and what a target can show."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from mirror_rollout.errors import RolloutError
from mirror_rollout.results import CheckResult, Status


class Capabilities(BaseModel):
    """What the target environment can demonstrate. A check needing more reports SKIPPED with
    ``why(<capability>)``: each capability's own reason, the precise behaviour of the backend."""

    alarm_history: bool
    alarm_notifications: bool
    email_delivery: bool
    backup_selections: bool
    reasons: dict[str, str] = {}

    def why(self, capability: str) -> str:
        return self.reasons.get(capability, f"the backend cannot show {capability}")


#: What moto does (measured on this project's moto), per capability the sandbox lacks.
SANDBOX_REASONS = {
    "alarm_history": "moto does not implement DescribeAlarmHistory "
    '("The describe_alarm_history action has not been implemented")',
    "alarm_notifications": "moto's SetAlarmState changes the alarm state but runs none of its "
    "actions: nothing is published to the ops topic",
    "email_delivery": "moto accepts e-mail subscriptions but delivers no e-mail",
    "backup_selections": "moto does not implement CreateBackupSelection "
    '(HTTP 500 "The create_backup_selection action has not been implemented"), '
    "so no selection exists to read",
}


def capabilities(backend: str) -> Capabilities:
    if backend == "sandbox":
        return Capabilities(
            alarm_history=False,
            alarm_notifications=False,
            email_delivery=False,
            backup_selections=False,
            reasons=SANDBOX_REASONS,
        )
    return Capabilities(
        alarm_history=True, alarm_notifications=True, email_delivery=True, backup_selections=True
    )


def overall(results: Iterable[CheckResult]) -> Status:
    """FAIL if any blocking failure, else PASS if anything passed, else SKIPPED."""
    results = list(results)
    if any(r.blocking for r in results):
        return Status.FAIL
    if any(r.status is Status.PASS for r in results):
        return Status.PASS
    return Status.SKIPPED


def rows(results: Iterable[CheckResult]) -> list[dict[str, str]]:
    return [
        {
            "check": r.check_id,
            "status": r.status.value,
            "subject": r.subject[:200],
            "detail": r.message[:300],
            "evidence": "; ".join(f"{e.source} @ {e.at:%H:%M:%S}" for e in r.evidence)[:300],
        }
        for r in results
    ]


def publish(key: str, results: list[CheckResult], what: str) -> Status:
    """Publish ``results`` as the table artifact ``key``; returns the overall status."""
    from prefect.artifacts import create_table_artifact

    verdict = overall(results)
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    create_table_artifact(
        key=key,
        table=rows(results),
        description=f"{what}: {verdict.value} ({counts[Status.PASS]} pass, {counts[Status.FAIL]} fail, {counts[Status.SKIPPED]} skipped)",
    )
    return verdict


class ValidationFailed(RolloutError):
    """A validation task found a blocking failure; ``results`` carries what it saw."""

    def __init__(
        self, problem: str, fix: str | None = None, results: list[CheckResult] | None = None
    ):
        super().__init__(problem, fix)
        self.results = results


def raise_if_blocking(
    results: list[CheckResult], problem: str, fix: str, *, with_ids: bool = False
) -> None:
    """ValidationFailed ("problem: what failed; …", ``fix``, the results) if any result blocks."""
    failed = [r for r in results if r.blocking]
    if failed:
        said = (f"{r.check_id} {r.message}" if with_ids else r.message for r in failed)
        raise ValidationFailed(f"{problem}: " + "; ".join(said), fix, results=results)


def failure_results(prefix: str, title: str, error: BaseException) -> list[CheckResult]:
    """The results of a validation task that failed: its own, or one FAIL saying why it stopped."""
    carried = getattr(error, "results", None)
    if carried:
        return list(carried)
    return [
        CheckResult(
            check_id=f"{prefix}-900",
            title=title,
            status=Status.FAIL,
            subject=type(error).__name__,
            message=str(error)[:500],
        )
    ]
