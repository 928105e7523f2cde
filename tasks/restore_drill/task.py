"""Prefect/boto3 glue of the PITR restore drill: snapshot at T, restore, wait, compare, delete.

T is one instant for the three tables. The items "at T" are a consistent scan of
each source taken just before T and scanned again just after it: when both scans
agree, nothing wrote in between and they are the items at T exactly. In a rollout
nothing else writes at this point (the E2E cycle is over, the other steps only
read); an environment with live writers gets another quiet window (a few
attempts), then a FAIL saying so instead of a guess.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prefect.cache_policies import NO_CACHE

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.errors import RolloutError
from mirror_rollout.evidence import ValidationFailed, failure_results, publish
from mirror_rollout.results import CheckResult, Evidence
from mirror_rollout.retries import error_code
from mirror_rollout.target import RolloutTarget
from tasks.common import aws_task, calls_evidence, default_run_id, iso, run_logger
from tasks.restore_drill.checks import (
    TableDrill,
    compare,
    drill_table_name,
    judge,
    keyed,
    not_run,
    refusal,
    runs_in_rollout,
)

MISSING = {"ResourceNotFoundException", "TableNotFoundException"}
#: T is later than the table's LatestRestorableDateTime (on AWS about 5 min behind now).
NOT_YET_RESTORABLE = "InvalidRestoreTimeException"
QUIET_ATTEMPTS = 3
MAX_DELAY_SECONDS = 30.0


class DrillRefused(RolloutError):
    """A drill table name exists already: the drill changes nothing."""


def _scan(ddb, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items += page["Items"]
    return items


def _exists(ddb, table: str) -> bool:
    try:
        ddb.describe_table(TableName=table)
    except Exception as exc:
        if error_code(exc) in MISSING:
            return False
        raise
    return True


def _poll(
    read: Callable[[], bool], timeout: float, sleep: Callable[[float], None], base: float
) -> bool:
    """Call ``read`` until it says done or ``timeout`` seconds passed (backoff base, 2*base ... 30 s)."""
    started = time.monotonic()
    for attempt in itertools.count():
        if read():
            return True
        delay = min(base * 2 ** min(attempt, 10), MAX_DELAY_SECONDS)
        if time.monotonic() - started + delay > timeout:
            return False
        sleep(delay)
    return False  # pragma: no cover - count() never ends


def items_at_t(
    ddb,
    tables: dict[str, list[str]],
    sleep: Callable[[float], None],
    attempts: int = QUIET_ATTEMPTS,
) -> tuple[datetime, dict[str, dict[str, str]], int]:
    """(T, table -> keyed items at T, attempts used); RolloutError if no quiet window was found.

    T is a whole second (PITR restores to the second) strictly between the two scans.
    """
    for attempt in range(1, attempts + 1):
        before = {t: keyed(_scan(ddb, t), keys) for t, keys in tables.items()}
        now = datetime.now(UTC)
        at = datetime.fromtimestamp(math.floor(now.timestamp()) + 1, UTC)
        sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.05)
        after = {t: keyed(_scan(ddb, t), keys) for t, keys in tables.items()}
        if before == after:
            return at, before, attempt
    raise RolloutError(
        f"the source tables changed while T was recorded, {attempts} times: something is "
        "writing to them, so the items at T are not known",
        "run the drill when nothing writes (the rollout runs it after the E2E cycle; "
        "the restore-drill/weekly deployment at a quiet hour)",
    )


def _restore(
    ddb, drill: TableDrill, at: datetime, wait_seconds: float, sleep: Callable[[float], None]
) -> dict[str, Any]:
    """RestoreTableToPointInTime, again while T is not restorable yet (bounded)."""
    response: dict[str, Any] = {}

    def call() -> bool:
        nonlocal response
        try:
            response = ddb.restore_table_to_point_in_time(
                SourceTableName=drill.source, TargetTableName=drill.copy, RestoreDateTime=at
            )
        except Exception as exc:
            if error_code(exc) == NOT_YET_RESTORABLE:
                return False
            raise
        return True

    if not _poll(call, wait_seconds, sleep, base=15.0):
        raise RolloutError(
            f"T={iso(at)} was not restorable within {wait_seconds:.0f} s",
            "raise restorable_wait_seconds",
        )
    return response


def run_drill(
    clients: AwsClients,
    environment: str,
    run_id: str,
    active_timeout_seconds: float = 3600.0,
    restorable_wait_seconds: float = 900.0,
    delete_timeout_seconds: float = 600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[CheckResult]:
    """Restore the three tables to T into drill copies, compare, delete the copies (always)."""
    ddb = clients.client("dynamodb")
    region = clients.region
    drills = {
        spec.key: TableDrill(
            spec.name(environment), drill_table_name(environment, spec.key, run_id)
        )
        for spec in contract.TABLES
    }
    existing = [d.copy for d in drills.values() if _exists(ddb, d.copy)]
    if existing:
        raise DrillRefused(*refusal(existing, region))

    # The key schema comes from the live table, not the contract: it names the differing key.
    keys = {
        d.source: [
            k["AttributeName"] for k in ddb.describe_table(TableName=d.source)["Table"]["KeySchema"]
        ]
        for d in drills.values()
    }
    at, snapshot, attempts = items_at_t(ddb, keys, sleep)
    for d in drills.values():
        d.restore_point = iso(at)
        d.evidence.append(
            Evidence(
                source=f"dynamodb:Scan (consistent) {region} {d.source}, before and after T",
                observed={
                    "restore_point": iso(at),
                    "items": len(snapshot[d.source]),
                    "attempts": attempts,
                },
            )
        )
    failure: BaseException | None = None
    try:
        begun, failure = _restore_copies(ddb, drills, at, restorable_wait_seconds, sleep, region)
        for d in drills.values():
            if d.deleted is None or d.error:
                continue
            try:
                _wait_and_compare(
                    ddb,
                    d,
                    keys[d.source],
                    snapshot[d.source],
                    begun[d.copy],
                    active_timeout_seconds,
                    sleep,
                )
            except Exception as exc:
                d.error, failure = f"{error_code(exc) or type(exc).__name__}: {exc}", exc
    finally:
        # Always: a copy holds the data of a production table and costs money.
        not_deleted = _delete_copies(ddb, drills, delete_timeout_seconds, sleep)
        failure = failure or not_deleted
    results = _judged(drills, clients)
    if failure is not None:
        raise DrillFailed(results) from failure
    return results


def _restore_copies(
    ddb,
    drills: dict[str, TableDrill],
    at: datetime,
    wait_seconds: float,
    sleep: Callable[[float], None],
    region: str,
) -> tuple[dict[str, float], BaseException | None]:
    """Request every restore: (copy -> when its restore was requested, the last failure)."""
    failure: BaseException | None = None
    begun: dict[str, float] = {}
    for d in drills.values():
        started = time.monotonic()
        try:
            response = _restore(ddb, d, at, wait_seconds, sleep)
        except Exception as exc:
            d.error, failure = f"RestoreTableToPointInTime failed: {error_code(exc) or exc}", exc
            continue
        d.deleted = False  # a copy exists from here on: ours to delete
        d.seconds["restore_call"] = time.monotonic() - started
        begun[d.copy] = started
        summary = (response.get("TableDescription") or {}).get("RestoreSummary") or {}
        d.evidence.append(
            Evidence(
                source=f"dynamodb:RestoreTableToPointInTime {region} {d.source} -> {d.copy}",
                observed={
                    "requested": iso(at),
                    "RestoreDateTime": iso(summary.get("RestoreDateTime")),
                    "SourceTableArn": summary.get("SourceTableArn"),
                },
            )
        )
    return begun, failure


def _delete_copies(
    ddb, drills: dict[str, TableDrill], timeout: float, sleep: Callable[[float], None]
) -> BaseException | None:
    """Delete every copy that exists; the first failure (the next copy is still deleted)."""
    failure: BaseException | None = None
    for d in drills.values():
        if d.deleted is False:
            try:
                _delete(ddb, d, timeout, sleep)
            except Exception as exc:
                d.error = d.error or f"deleting the copy failed: {error_code(exc) or exc}"
                failure = failure or exc
    return failure


def _judged(drills: dict[str, TableDrill], clients: AwsClients) -> list[CheckResult]:
    """One result per table, the API calls on the last; the figures of each table logged."""
    for d in drills.values():
        # Per table: from the restore request to ACTIVE, then the comparison and the delete.
        d.seconds["total"] = sum(d.seconds.get(s, 0.0) for s in ("to_active", "compare", "delete"))
    results = [judge(d) for d in drills.values()]
    results[-1].evidence.append(calls_evidence(clients))
    logger = run_logger()
    for d in drills.values():
        logger.info("restore drill %s: %s", d.source, d.figures())
    return results


def _wait_and_compare(
    ddb,
    d: TableDrill,
    keys: list[str],
    at_t: dict[str, str],
    begun: float,
    timeout: float,
    sleep: Callable[[float], None],
) -> None:
    described: dict[str, Any] = {}

    def active() -> bool:
        nonlocal described
        described = ddb.describe_table(TableName=d.copy)["Table"]
        return described.get("TableStatus") == "ACTIVE"

    if not _poll(active, timeout, sleep, base=5.0):
        raise RolloutError(
            f"the copy {d.copy} is {described.get('TableStatus')} after {timeout:.0f} s",
            "raise active_timeout_seconds (on AWS a restore takes minutes to hours)",
        )
    d.seconds["to_active"] = time.monotonic() - begun
    d.evidence.append(
        Evidence(
            source=f"dynamodb:DescribeTable {d.copy}",
            observed={"TableStatus": "ACTIVE", "ItemCount": described.get("ItemCount")},
        )
    )
    started = time.monotonic()
    d.comparison = compare(at_t, keyed(_scan(ddb, d.copy), keys))
    d.seconds["compare"] = time.monotonic() - started


def _delete(ddb, d: TableDrill, timeout: float, sleep: Callable[[float], None]) -> None:
    started = time.monotonic()
    try:
        ddb.delete_table(TableName=d.copy)
    except Exception as exc:
        if error_code(exc) not in MISSING:
            d.error = d.error or f"DeleteTable failed: {exc}"
            return
    # Gone, not just DELETING: a retry of the drill may then use the same name again.
    gone = _poll(lambda: not _exists(ddb, d.copy), timeout, sleep, base=2.0)
    d.deleted = True
    d.seconds["delete"] = time.monotonic() - started
    d.evidence.append(Evidence(source=f"dynamodb:DeleteTable {d.copy}", observed={"gone": gone}))


class DrillFailed(ValidationFailed):
    """The drill stopped on an error (its cause); ``results`` say per table what happened."""

    def __init__(self, results: list[CheckResult]):
        failed = [r for r in results if r.blocking]
        super().__init__(
            "restore drill failed: " + "; ".join(r.message for r in failed),
            "see the restore-drill artifact; every copy that was created has been deleted",
            results=results,
        )


@aws_task("restore-drill", retry_delay_seconds=[10, 60], cache_policy=NO_CACHE)
def restore_drill(
    target: RolloutTarget,
    run_id: str | None = None,
    active_timeout_seconds: float = 3600.0,
    restorable_wait_seconds: float = 900.0,
) -> list[CheckResult]:
    """Restore each table to T into a drill copy, compare, delete; artifact ``{env}-restore-drill``."""
    key = f"{target.environment}-restore-drill"
    what = f"PITR restore drill of the {target.environment} tables ({target.backend})"
    try:
        results = run_drill(
            AwsClients.of(target),
            target.environment,
            run_id or default_run_id(),
            active_timeout_seconds,
            restorable_wait_seconds,
        )
    except DrillFailed as failed:  # published too: the results say per table what happened
        publish(key, failed.results or [], what)
        raise
    publish(key, results, what)
    if any(r.blocking for r in results):
        raise DrillFailed(results)
    return results


def run_restore_drill(target: RolloutTarget, requested: bool | None) -> list[CheckResult]:
    """The drill inside a flow: its results, one FAIL saying why it stopped, or SKIPPED when off."""
    if not runs_in_rollout(target.rules, requested):
        return [not_run(target.environment)]
    state = restore_drill(target, return_state=True)
    if state.is_completed():
        return state.result()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, BaseException)  # a state that did not complete holds its error
    return failure_results("DRILL", "restore drill", error)
