"""Prefect glue for the guardrails: load, check, publish the artifact, fail on errors."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact

from mirror_rollout.errors import RolloutError
from mirror_rollout.results import CheckResult
from tasks.guardrails.checks import evaluate_guardrails
from tasks.guardrails.report import artifact_rows, summary


class GuardrailsFailed(RolloutError):
    pass


@task(name="guardrails", task_run_name="guardrails-{environment}")
def guardrails(environment: str, root: str | None = None) -> list[CheckResult]:
    results = evaluate_guardrails(environment, Path(root) if root else None)
    create_table_artifact(
        key=f"{environment}-guardrails",
        table=artifact_rows(results),
        description=f"Static guardrails for {environment}: {summary(results)}",
    )
    blocking = [r for r in results if r.blocking]
    if blocking:
        ids = ", ".join(sorted({r.check_id for r in blocking}))
        raise GuardrailsFailed(
            f"guardrails failed: {ids}",
            "fix the Terraform named in the guardrails artifact and run again",
        )
    return results
