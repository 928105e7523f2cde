"""Prefect glue of Day 21: list or set the environment's GitHub Actions secrets.

The token comes from ``GITHUB_TOKEN`` in the worker's environment, never from a
parameter, so it is not stored with the run. The result and the
``{env}-github-secrets`` artifact hold names, sources and statuses, never values.
"""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext

from mirror_rollout.settings import RolloutSettings
from tasks.common import run_logger
from tasks.github_secrets.client import DEFAULT_API
from tasks.github_secrets.report import SecretsReport, markdown
from tasks.github_secrets.run import github_secrets_of, token_from_env


@task(
    name="github-secrets",
    task_run_name="github-secrets-{settings.environment}",
    cache_policy=NO_CACHE,  # a cached result would skip setting the secrets again
)
def github_secrets(
    settings: RolloutSettings, repo: str | None = None, api_url: str = DEFAULT_API
) -> SecretsReport:
    """Set AWS_ROLE_ARN_<ENV>, OPS_SNS_TOPIC_ARN_<ENV> and TERRAFORM_STATE_BUCKET in ``repo``.

    Without a repository or a token it only lists them (artifact ``{env}-github-secrets``)
    and says how to set them; with a repository but no token it lists, then fails.
    """
    logger = run_logger()

    def show(report: SecretsReport) -> None:
        for line in report.secrets:
            logger.info("%s ← %s: %s", line.name, line.source, line.status)
        for step in report.next_steps:
            logger.info("%s", step)
        if not (TaskRunContext.get() or FlowRunContext.get()):
            return  # Prefect 3 deprecates artifacts outside a run; a `.fn` caller has the report
        create_markdown_artifact(
            key=f"{report.environment}-github-secrets",
            markdown=markdown(report),
            description=f"GitHub Actions secrets of {report.environment}"
            + (f" in {report.repo}" if report.applied else " (listed, not set)"),
        )

    return github_secrets_of(settings, repo, token_from_env(), api_url, show)
