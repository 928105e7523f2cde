"""Prefect glue for the guardrails: check, publish the table artifact, fail on errors."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact

from mirror_rollout.errors import RolloutError
from mirror_rollout.results import CheckResult
from mirror_rollout.target import RolloutTarget
from tasks.guardrails.checks import run_static_checks
from tasks.guardrails.plan_checks import evaluate_plan_guardrails
from tasks.guardrails.report import artifact_rows, summary
from tasks.guardrails.view import load_view


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


@task(name="guardrails", task_run_name="guardrails-{target.environment}")
def guardrails(target: RolloutTarget) -> list[CheckResult]:
    """Static guardrails over infra/ (raw .tf structure), artifact ``{env}-guardrails``."""
    env = target.environment
    results = run_static_checks(load_view(env, target.root))
    return _publish(results, f"{env}-guardrails", f"Static guardrails for {env}")


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
