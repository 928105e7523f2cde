"""Prefect glue: read the backup plan's selections (or say why the target cannot show them)."""

from __future__ import annotations

from prefect import task

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.evidence import ValidationFailed, capabilities, publish
from mirror_rollout.results import CheckResult
from mirror_rollout.target import RolloutTarget
from tasks.backup.checks import selection_results


@task(
    name="backup-coverage",
    task_run_name="backup-{target.environment}",
    retries=2,
    retry_delay_seconds=[2, 10],
)
def backup_coverage(target: RolloutTarget) -> list[CheckResult]:
    environment, backend = target.environment, target.backend
    caps = capabilities(backend)
    plan_name = contract.name(environment, "backup-plan")
    if not caps.backup_selections:
        results = selection_results(environment, plan_name, None, caps.why("backup_selections"))
    else:
        backup = AwsClients.of(target).client("backup")
        plans = {
            p["BackupPlanName"]: p["BackupPlanId"]
            for p in backup.list_backup_plans()["BackupPlansList"]
        }
        arns: list[str] = []
        if plan_name in plans:
            for selection in backup.list_backup_selections(BackupPlanId=plans[plan_name])[
                "BackupSelectionsList"
            ]:
                detail = backup.get_backup_selection(
                    BackupPlanId=plans[plan_name], SelectionId=selection["SelectionId"]
                )
                arns += detail["BackupSelection"].get("Resources", [])
        results = selection_results(environment, plan_name, arns)
    if publish(f"{environment}-backup", results, "AWS Backup coverage").value == "FAIL":
        raise ValidationFailed(
            "the backup plan does not cover the three tables",
            "see the backup artifact",
            results=results,
        )
    return results
