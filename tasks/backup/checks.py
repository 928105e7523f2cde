"""Pure check: does the backup plan select the three tables?"""

from __future__ import annotations

from mirror_rollout import contract
from mirror_rollout.results import CheckResult, Evidence, Status


def selection_results(
    environment: str, plan_name: str, selected_arns: list[str] | None, reason_unavailable: str = ""
) -> list[CheckResult]:
    title = "AWS Backup selection covers the three tables"
    if selected_arns is None:
        return [
            CheckResult(
                check_id="BACKUP-001",
                title=title,
                status=Status.SKIPPED,
                subject=plan_name,
                message=reason_unavailable,
            )
        ]
    wanted = [t.name(environment) for t in contract.TABLES]
    missing = [
        name for name in wanted if not any(arn.endswith(f":table/{name}") for arn in selected_arns)
    ]
    return [
        CheckResult(
            check_id="BACKUP-001",
            title=title,
            status=Status.FAIL if missing else Status.PASS,
            subject=plan_name,
            message=f"not selected: {', '.join(missing)}"
            if missing
            else "all three tables selected",
            evidence=[
                Evidence(
                    source="backup:ListBackupSelections/GetBackupSelection",
                    observed={"resources": selected_arns},
                )
            ],
        )
    ]
