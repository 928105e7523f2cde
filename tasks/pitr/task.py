"""Prefect glue for PITR: describe, enable where off, verify with a bounded exponential backoff."""

from __future__ import annotations

import time
from collections.abc import Callable

from prefect import task

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.results import CheckResult, Evidence
from mirror_rollout.retries import error_code
from mirror_rollout.target import RolloutTarget
from tasks.common import aws_task, calls_evidence, now, publish_or_fail, run_logger
from tasks.pitr import checks
from tasks.pitr.checks import TableProbe

MISSING_TABLE = {"TableNotFoundException", "ResourceNotFoundException"}
#: Still settling after an enable: try the update again on the next attempt.
RETRYABLE_UPDATE = {"ContinuousBackupsUnavailableException", "LimitExceededException"}


def verify_pitr(
    clients: AwsClients,
    environment: str,
    max_attempts: int = 8,
    backoff_seconds: float = 2.0,
    max_backoff_seconds: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    enable: bool = True,
) -> list[CheckResult]:
    """One DescribeContinuousBackups per unsettled table per attempt; enable where DISABLED.

    ``enable=False`` only reads: a DISABLED table is judged as it is (a FAIL).
    """
    ddb = clients.client("dynamodb")
    region = clients.region
    logger = run_logger()
    probes = {spec.key: TableProbe(spec.name(environment)) for spec in contract.TABLES}
    pending = list(probes.values())
    delays = checks.backoff_delays(max_attempts, backoff_seconds, max_backoff_seconds)
    attempt = 0
    for attempt in range(1, max_attempts + 1):
        still: list[TableProbe] = []
        for probe in pending:
            source = f"dynamodb:DescribeContinuousBackups {region} {probe.table}"
            try:
                response = ddb.describe_continuous_backups(TableName=probe.table)
            except Exception as exc:
                code = error_code(exc)
                if code not in MISSING_TABLE:
                    raise
                probe.missing = Evidence(
                    source=source, observed={"attempt": attempt, "error": code}
                )
                continue
            probe.last = desc = checks.pitr_description(response)
            probe.reads.append(Evidence(source=source, observed={"attempt": attempt, **desc}))
            action = checks.next_action(desc)
            if action == "enable":
                if not enable:
                    continue
                if not _enable(ddb, probe, region, attempt):
                    continue
                logger.warning(
                    "PITR was DISABLED on %s: %s", probe.table, checks.ENABLED_BY_ROLLOUT
                )
            if action != "done":
                still.append(probe)
        pending = still
        if not pending:
            break
        if attempt < max_attempts:
            delay = delays[attempt - 1]
            logger.info(
                "PITR not yet verified on %s; attempt %d/%d, next in %.1fs",
                ", ".join(p.table for p in pending),
                attempt,
                max_attempts,
                delay,
            )
            sleep(delay)
    results = [checks.judge(probe, attempt) for probe in probes.values()]
    results[-1].evidence.append(calls_evidence(clients, attempts=attempt))
    return results


def _enable(ddb, probe: TableProbe, region: str, attempt: int) -> bool:
    """UpdateContinuousBackups on; False if that ended the probe of this table."""
    source = f"dynamodb:UpdateContinuousBackups {region} {probe.table}"
    try:
        response = ddb.update_continuous_backups(
            TableName=probe.table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    except Exception as exc:
        code = error_code(exc)
        if code in MISSING_TABLE:
            probe.missing = Evidence(source=source, observed={"attempt": attempt, "error": code})
            return False
        if code in RETRYABLE_UPDATE:
            probe.reads.append(
                Evidence(source=source, observed={"attempt": attempt, "retry_after": code})
            )
            return True
        probe.error = f"UpdateContinuousBackups failed: {code or exc}"
        return False
    probe.enables.append(
        Evidence(
            source=source,
            observed={
                "attempt": attempt,
                "action": checks.ENABLED_BY_ROLLOUT,
                "previous": "DISABLED",
                "returned": checks.pitr_description(response)["PointInTimeRecoveryStatus"],
            },
            at=now(),
        )
    )
    return True


# Idempotent: a retry re-reads and enables only where PITR is still off.
@aws_task("pitr", retry_delay_seconds=[5, 20])
def pitr(
    target: RolloutTarget, max_attempts: int = 8, backoff_seconds: float = 2.0
) -> list[CheckResult]:
    """Enable (where off) and verify PITR on the three tables; artifact ``{env}-pitr``."""
    environment, backend = target.environment, target.backend
    clients = AwsClients.of(target)
    results = verify_pitr(clients, environment, max_attempts, backoff_seconds)
    return publish_or_fail(
        f"{environment}-pitr",
        results,
        f"PITR on the {environment} tables ({backend})",
        "PITR not verified",
        "create the missing table or enable PITR and rerun",
    )


@task(name="pitr-verify", task_run_name="pitr-verify-{target.environment}")
def pitr_verify(
    target: RolloutTarget, enable: bool = False, max_attempts: int = 8, backoff_seconds: float = 2.0
) -> list[CheckResult]:
    """Verify PITR on the three tables, changing nothing unless ``enable``; ``{env}-pitr-verification``."""
    environment = target.environment
    clients = AwsClients.of(target)
    results = verify_pitr(clients, environment, max_attempts, backoff_seconds, enable=enable)
    mode = "enable where off" if enable else "read-only"
    return publish_or_fail(
        f"{environment}-pitr-verification",
        results,
        f"PITR verification of the {environment} tables in {clients.region} ({mode})",
        "PITR not verified",
        "create the missing table (run the rollout) or enable PITR (verify again with enable=true)",
    )
