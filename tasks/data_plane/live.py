"""Glue of the data-plane contract: read the live tables, perform each access pattern once.

boto3 through ``AwsClients`` (moto or AWS); every decision is in ``checks.py``. Each
pattern is performed with its own test item (attribute values
``mirror-rollout-contract#{token}#…``) that is deleted afterwards, whatever happened.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.results import CheckResult, Evidence, Status
from mirror_rollout.retries import error_code
from tasks.data_plane.checks import (
    TableShape,
    mismatches,
    sample_item,
    shape_from_describe,
    type_problems,
    update_arguments,
)
from tasks.data_plane.spec import AccessPattern, DataPlane
from tasks.e2e.oracle import describe_error

PREFIX = "DATAPLANE"
MISSING_TABLE = {"ResourceNotFoundException", "TableNotFoundException"}


def read_shapes(clients: AwsClients, environment: str, plane: DataPlane) -> dict[str, Any]:
    """Each listed table's shape (None when it does not exist), by short name."""
    ddb = clients.client("dynamodb")
    shapes: dict[str, TableShape | None] = {}
    for short in plane.tables:
        name = contract.name(environment, short)
        try:
            table = ddb.describe_table(TableName=name)["Table"]
            ttl = ddb.describe_time_to_live(TableName=name)
        except Exception as exc:
            if error_code(exc) not in MISSING_TABLE:
                raise
            shapes[short] = None
            continue
        shapes[short] = shape_from_describe(table, ttl)
    return shapes


def table_results(
    plane: DataPlane,
    shapes: dict[str, TableShape | None],
    environment: str,
    region: str,
    cmk_arn: str | None,
) -> list[CheckResult]:
    """One result per table: every pattern on it against its live shape (pure)."""
    results = []
    for n, (short, use) in enumerate(plane.tables.items(), start=1):
        name = contract.name(environment, short)
        shape = shapes.get(short)
        patterns = [p for p in plane.patterns if p.table == short]
        problems = list(
            dict.fromkeys(m for p in patterns for _, m in mismatches(p, use, shape, cmk_arn))
        )
        observed: dict[str, Any] = {"patterns": [p.id for p in patterns], "exists": bool(shape)}
        if shape:
            observed |= {
                "keys": shape.keys,
                "indexes": {
                    k: {"keys": v[0], "projection": v[1]} for k, v in shape.indexes.items()
                },
                "ttl": shape.ttl,
                "ttl_status": shape.ttl_status,
                "sse": shape.sse,
            }
        results.append(
            CheckResult(
                check_id=f"{PREFIX}-{n:03d}",
                title=f"{short} table serves the Oracle's {len(patterns)} access pattern(s)",
                status=Status.FAIL if problems else Status.PASS,
                subject=name,
                message="; ".join(problems)
                if problems
                else f"keys, indexes, TTL and encryption as {', '.join(observed['patterns'])} need",
                evidence=[
                    Evidence(
                        source=f"dynamodb:DescribeTable+DescribeTimeToLive {region} {name}",
                        observed=observed,
                    )
                ],
            )
        )
    return results


class PatternProbe:
    """Performs one access pattern on the live table with a test item, then deletes it."""

    def __init__(self, clients: AwsClients, table: str, pattern: AccessPattern, token: str):
        self.ddb = clients.client("dynamodb")
        self.table = table
        self.pattern = pattern
        self.token = token
        self.now = datetime.now(UTC)
        self.item = sample_item(pattern, token, self.now)
        self.key = {k: self.item[k] for k in pattern.keys}

    def run(self) -> tuple[list[str], dict[str, Any]]:
        """(problems, what was observed); the test item is gone afterwards."""
        observed: dict[str, Any] = {"operation": self.pattern.operation}
        try:
            problems = self._perform(observed)
        except Exception as exc:
            problems = [f"{self.pattern.operation} failed: {describe_error(exc)}"]
        try:
            self.ddb.delete_item(TableName=self.table, Key=self.key)
            left = self.ddb.get_item(TableName=self.table, Key=self.key, ConsistentRead=True)
        except Exception as exc:
            problems.append(f"removing the test item failed: {describe_error(exc)}")
            return problems, observed
        observed["test_item_removed"] = "Item" not in left
        if "Item" in left:
            problems.append("the test item is still there after DeleteItem")
        return problems, observed

    def _perform(self, observed: dict[str, Any]) -> list[str]:
        p = self.pattern
        if p.operation == "UpdateItem":
            self.ddb.update_item(
                TableName=self.table, Key=self.key, **update_arguments(p, self.token, self.now)
            )
        else:
            extra = {"ConditionExpression": p.condition} if p.condition else {}
            self.ddb.put_item(TableName=self.table, Item=self.item, **extra)
            if p.condition:
                observed["duplicate_refused"] = self._duplicate_refused(extra)
        if p.operation == "Query":
            assert p.index is not None
            hash_key = next(iter(p.index.keys))
            found = self.ddb.query(
                TableName=self.table,
                IndexName=p.index.name,
                KeyConditionExpression="#h = :h",
                ExpressionAttributeNames={"#h": hash_key},
                ExpressionAttributeValues={":h": self.item[hash_key]},
            ).get("Items", [])
            observed["query_count"] = len(found)
            read = next((i for i in found if all(i.get(k) == v for k, v in self.key.items())), None)
        else:
            read = self.ddb.get_item(TableName=self.table, Key=self.key, ConsistentRead=True).get(
                "Item"
            )
        problems = type_problems(p, read)
        if observed.get("duplicate_refused") is False:
            problems.append(f"a second put with condition {p.condition!r} was accepted")
        return problems

    def _duplicate_refused(self, extra: dict[str, str]) -> bool:
        try:
            self.ddb.put_item(TableName=self.table, Item=self.item, **extra)
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return True
            raise
        return False


def pattern_results(
    clients: AwsClients,
    environment: str,
    plane: DataPlane,
    tables: list[CheckResult],
    token: str,
) -> list[CheckResult]:
    """Each pattern performed once on a table whose schema serves it; SKIPPED otherwise."""
    failed_tables = {r.subject for r in tables if r.status is Status.FAIL}
    results = []
    for n, pattern in enumerate(plane.patterns, start=len(tables) + 1):
        name = contract.name(environment, pattern.table)
        check_id = f"{PREFIX}-{n:03d}"
        title = f"{pattern.adapter} adapter: {pattern.id} ({pattern.operation}) on the live table"
        if name in failed_tables:
            failing = next(r.check_id for r in tables if r.subject == name)
            results.append(
                CheckResult(
                    check_id=check_id,
                    title=title,
                    status=Status.SKIPPED,
                    subject=name,
                    message=f"not performed: {name} does not match the pattern ({failing} FAIL)",
                )
            )
            continue
        problems, observed = PatternProbe(clients, name, pattern, token).run()
        results.append(
            CheckResult(
                check_id=check_id,
                title=title,
                status=Status.FAIL if problems else Status.PASS,
                subject=name,
                message="; ".join(problems)
                if problems
                else f"{pattern.operation} with a test item read back in the adapter's types; "
                "test item removed",
                evidence=[
                    Evidence(
                        source=f"dynamodb:{pattern.operation} {clients.region} {name}",
                        observed=observed,
                    )
                ],
            )
        )
    return results
