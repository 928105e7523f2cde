"""Prefect glue of the E2E cycle: run a driver, publish ``{env}-e2e``, hand back the FP events.

Drivers:
- ``local``: the reference Oracle client (``oracle.py``) performs the Oracle's data-plane
  contract itself against the deployed environment (works on the sandbox);
- ``github``: a PR in the test repository triggers the real Oracle (GitHub Actions,
  ``.github/workflows/oracle-check.yml``); the driver verifies what it wrote.

The task returns an ``E2EOutcome``: ``results`` (E2E-001.. one per step) and ``fp_events``
(the FP event items read back, plain JSON values) for the ``fp_events`` expectation suite.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field, SecretStr

from mirror_rollout.aws import AwsClients
from mirror_rollout.errors import ConfigError
from mirror_rollout.results import CheckResult
from mirror_rollout.target import RolloutTarget
from tasks.common import calls_evidence, default_run_id, publish_or_fail, run_logger
from tasks.e2e.checks import StepResult, to_check_results
from tasks.e2e.github import DEFAULT_API, GithubDriver, GithubSettings
from tasks.e2e.oracle import DEFAULT_ORG, OracleClient

Driver = Literal["local", "github"]
TOKEN_VARIABLE = "GITHUB_TOKEN"


class E2EOutcome(BaseModel):
    """What the E2E cycle saw: one result per step and the FP event items read back."""

    environment: str
    driver: str
    run_id: str
    results: list[CheckResult]
    fp_events: list[dict[str, Any]] = Field(default_factory=list)
    baseline_key: str | None = None


def github_settings(
    repo: str | None, api: str | None, timeout_seconds: float, poll_seconds: float
) -> GithubSettings:
    """The github driver's settings, its token from ``GITHUB_TOKEN`` (never a parameter)."""
    token = os.environ.get(TOKEN_VARIABLE)
    if not repo or not token:
        raise ConfigError(
            "the github E2E driver needs a test repository and a token",
            f"pass github_repo=owner/repo and export {TOKEN_VARIABLE}",
        )
    return GithubSettings(
        repo=repo,
        token=SecretStr(token),
        api_base=api or DEFAULT_API,
        timeout_seconds=timeout_seconds,
        poll_seconds=poll_seconds,
    )


def run_driver(
    clients: AwsClients,
    environment: str,
    driver: str,
    run_id: str,
    org_id: str = DEFAULT_ORG,
    github: GithubSettings | None = None,
) -> tuple[list[StepResult], list[dict[str, Any]], str | None]:
    """The steps of ``driver``, the FP event items it read back and the baseline key."""
    if driver == "local":
        oracle = OracleClient(clients, environment, run_id, org_id=org_id)
        return oracle.run(), oracle.read_back, oracle.baseline_key
    if driver == "github":
        if github is None:
            raise ConfigError(
                "the github E2E driver needs its settings", "pass github=github_settings(...)"
            )
        gh = GithubDriver(clients, environment, run_id, github)
        steps = gh.run()
        return steps, gh.fp_events, (gh.report or {}).get("baselineKey")
    raise ConfigError(f"unknown E2E driver {driver!r}", "use driver='local' or 'github'")


@task(name="e2e-cycle", task_run_name="e2e-{target.environment}-{driver}", cache_policy=NO_CACHE)
def e2e_cycle(
    target: RolloutTarget,
    driver: Driver = "local",
    run_id: str | None = None,
    github_repo: str | None = None,
    github_api: str | None = None,
    org_id: str = DEFAULT_ORG,
    timeout_seconds: float = 900.0,
    poll_seconds: float = 10.0,
) -> E2EOutcome:
    """Run the E2E cycle; artifact ``{env}-e2e``; raises ``ValidationFailed`` on a failed step.

    The GitHub token is read from ``GITHUB_TOKEN``, never passed as a parameter.
    """
    environment, backend = target.environment, target.backend
    run_id = run_id or default_run_id()
    clients = AwsClients.of(target)
    github = (
        github_settings(github_repo, github_api, timeout_seconds, poll_seconds)
        if driver == "github"
        else None
    )
    steps, fp_events, key = run_driver(clients, environment, driver, run_id, org_id, github)
    results = to_check_results(steps)
    results[-1].evidence.append(
        calls_evidence(
            clients,
            driver=driver,
            run_id=run_id,
            total_seconds=round(sum(s.seconds for s in steps), 4),
        )
    )
    logger = run_logger()
    for step in steps:
        logger.info(
            "E2E %s: %s in %.3fs %s", step.name, step.status.value, step.seconds, step.message
        )
    publish_or_fail(
        f"{environment}-e2e",
        results,
        f"E2E cycle ({driver}, {environment}, {backend})",
        "E2E cycle failed",
        with_ids=True,
    )
    return E2EOutcome(
        environment=environment,
        driver=driver,
        run_id=run_id,
        results=results,
        fp_events=fp_events,
        baseline_key=key,
    )
