"""Flow `pitr-verification`: PITR ENABLED with a restorable window on the three tables (the old verify-pitr.sh).

Read-only by default: a table with PITR off fails the run, it is not switched on
(``enable=true`` switches it on and verifies, as the rollout's PITR step does).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from mirror_rollout.aws import AwsClients
from mirror_rollout.environments import parse_environment
from mirror_rollout.results import Status
from tasks.pitr.task import pitr_verify


@flow(name="pitr-verification", log_prints=True)
def pitr_verification(
    environment: str = "staging",
    region: str | None = None,
    enable: bool = False,
    max_attempts: int = 4,
) -> dict:
    """Fail unless every table reports PITR ENABLED with an EarliestRestorableDateTime."""
    env = parse_environment(environment)
    region = AwsClients(region, environment=env).region
    results = pitr_verify(env, region, enable=enable, max_attempts=max_attempts)
    for r in results:
        get_run_logger().info("%s %s: %s", r.status.value, r.subject, r.message)
    return {
        "environment": env,
        "region": region,
        "tables": {r.subject: r.status.value for r in results},
        "verdict": Status.PASS.value,
    }
