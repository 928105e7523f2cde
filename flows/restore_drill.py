"""Flow `restore-drill`: the PITR restore drill on its own (deployment `restore-drill/weekly`).

Restores each table to a time T into a drill copy, compares the copy with the items
at T, and deletes the copy. It holds the environment's rollout slot, so no rollout
(and no other drill) writes to the tables or scans for orphans meanwhile. On AWS a
restore takes minutes to hours and costs money: the timeouts here are generous.
"""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from flows.common import per_table_summary
from mirror_rollout.evidence import overall
from mirror_rollout.rollout_slot import environment_slot
from mirror_rollout.target import target_of
from tasks.restore_drill.task import restore_drill


@flow(name="restore-drill", log_prints=True)
def restore_drill_flow(
    environment: str = "staging",
    backend: str = "sandbox",
    region: str | None = None,
    busy_wait_seconds: int = 3600,
    active_timeout_seconds: int = 4 * 3600,
    restorable_wait_seconds: int = 900,
) -> dict:
    """Fail unless every table's restored copy matches the source at T; no copy is left."""
    target = target_of(environment, backend, region=region)  # type: ignore[arg-type]
    with environment_slot(target.environment, busy_wait_seconds, flow_run.get_id()):
        results = restore_drill(
            target,
            active_timeout_seconds=active_timeout_seconds,
            restorable_wait_seconds=restorable_wait_seconds,
        )
    return per_table_summary(target, results, overall(results).value)
