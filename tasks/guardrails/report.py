"""Render guardrail results for a terminal (rich) and for a Prefect table artifact."""

from __future__ import annotations

from mirror_rollout.results import CheckResult, Status


def artifact_rows(results: list[CheckResult]) -> list[dict[str, str]]:
    return [
        {
            "check": r.check_id,
            "status": r.status.value,
            "severity": r.severity.value,
            "title": r.title,
            "subject": r.subject[:200],
            "location": r.location,
            "detail": r.message[:300],
        }
        for r in results
    ]


def summary(results: list[CheckResult]) -> str:
    checks = {r.check_id for r in results}
    failed = sorted({r.check_id for r in results if r.status is Status.FAIL})
    skipped = sorted({r.check_id for r in results if r.status is Status.SKIPPED} - set(failed))
    if failed:
        return f"{len(failed)} of {len(checks)} guardrails failed: {', '.join(failed)}"
    if skipped:
        return (
            f"{len(checks) - len(skipped)} of {len(checks)} guardrails passed, "
            f"{len(skipped)} skipped: {', '.join(skipped)}"
        )
    return f"all {len(checks)} guardrails passed"


def rich_table(results: list[CheckResult], title: str):
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in ("check", "status", "title", "subject / detail", "location"):
        table.add_column(column, overflow="fold")
    colours = {Status.PASS: "green", Status.FAIL: "red", Status.SKIPPED: "yellow"}
    for r in results:
        detail = r.subject if r.status is Status.PASS else f"{r.subject}: {r.message}"
        table.add_row(
            r.check_id,
            f"[{colours[r.status]}]{r.status.value}[/]",
            r.title,
            detail[:160],
            r.location,
        )
    return table
