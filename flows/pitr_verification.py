"""Flow `pitr-verification`: PITR ENABLED with a restorable window on the three tables (the old verify-pitr.sh).

Read-only by default: a table with PITR off fails the run, it is not switched on
(``enable=true`` switches it on and verifies, as the rollout's PITR step does).
"""

from __future__ import annotations

from prefect import flow

from flows.common import per_table_summary
from mirror_rollout.results import Status
from mirror_rollout.target import target_of
from tasks.pitr.task import pitr_verify


@flow(name="pitr-verification", log_prints=True)
def pitr_verification(
    environment: str = "staging",
    region: str | None = None,
    enable: bool = False,
    max_attempts: int = 4,
) -> dict:
    """Fail unless every table reports PITR ENABLED with an EarliestRestorableDateTime."""
    target = target_of(environment, region=region)
    results = pitr_verify(target, enable=enable, max_attempts=max_attempts)
    return per_table_summary(target, results, Status.PASS.value)
