"""Prefect glue for the guardrails: check, publish the table artifact, fail on errors."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact

from mirror_rollout.errors import RolloutError
from mirror_rollout.results import CheckResult
from tasks.guardrails.checks import evaluate_guardrails
from tasks.guardrails.plan_checks import evaluate_plan_guardrails
from tasks.guardrails.report import artifact_rows, summary


class GuardrailsFailed(RolloutError):
    pass


def _publish(results: list[CheckResult], key: str, description: str) -> list[CheckResult]:
    create_table_artifact(
        key=key, table=artifact_rows(results), description=f"{description}: {summary(results)}"
    )
    blocking = [r for r in results if r.blocking]
    if blocking:
        ids = ", ".join(sorted({r.check_id for r in blocking}))
        raise GuardrailsFailed(
            f"guardrails failed: {ids}",
            "fix the Terraform named in the guardrails artifact and run again",
        )
    return results


@task(name="guardrails", task_run_name="guardrails-{environment}")
def guardrails(environment: str, root: str | None = None) -> list[CheckResult]:
    """Static guardrails over infra/ (raw .tf structure), artifact ``{env}-guardrails``."""
    results = evaluate_guardrails(environment, Path(root) if root else None)
    return _publish(results, f"{environment}-guardrails", f"Static guardrails for {environment}")


@task(name="plan-guardrails", task_run_name="plan-guardrails-{environment}")
def plan_guardrails(
    plan: dict, environment: str, not_kept: dict[str, list[str]] | None = None
) -> list[CheckResult]:
    """Guardrails over the `terraform show -json` plan document, artifact ``{env}-plan-guardrails``.

    ``not_kept``: attributes the backend does not keep, by address (the sandbox's gaps).
    """
    results = evaluate_plan_guardrails(
        plan, environment, {a: tuple(v) for a, v in (not_kept or {}).items()}
    )
    return _publish(results, f"{environment}-plan-guardrails", f"Plan guardrails for {environment}")
