"""Pure logic of the PITR restore drill: drill table names, item digests, the comparison, results.

A drill restores each table to a recorded time T into a throw-away copy named
``mirror-dissonance-{env}-{table}-drill-{short run id}`` and compares the copy
with the items the source held at T. Items are DynamoDB wire values
(``{"pk": {"S": "..."}}``) as the low-level client returns them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mirror_rollout import contract
from mirror_rollout.errors import ConfigError
from mirror_rollout.results import CheckResult, Evidence, Status
from mirror_rollout.target import EnvironmentRules

CHECK_ID = "DRILL-001"
TITLE = "PITR restore drill: a restored copy matches the source at T"
#: What every drill table name carries after its source table's name.
DRILL_MARKER = "-drill-"
SHORT_ID = re.compile(r"^[0-9a-f]{8}$")
SHORT_ID_LENGTH = 8

Item = Mapping[str, Any]


# -- names ---------------------------------------------------------------------------------
def short_run_id(run_id: str) -> str:
    """The first 8 hex digits of a run id (a flow run's UUID, dashes removed)."""
    digits = re.sub(r"[^0-9a-f]", "", str(run_id).lower())[:SHORT_ID_LENGTH]
    if not SHORT_ID.match(digits):
        raise ConfigError(
            f"run id {run_id!r} has fewer than {SHORT_ID_LENGTH} hex digits for a drill table name",
            "pass a flow run id (a UUID) or let the drill use its own flow run's id",
        )
    return digits


def drill_table_name(environment: str, table_key: str, run_id: str) -> str:
    """``mirror-dissonance-{env}-{table}-drill-{short run id}``: never a source table's name.

    The run id makes names of different runs distinct; the drill still refuses a name
    that exists (``refusal``), so even a collision never reuses or deletes a table.
    """
    if table_key not in {t.key for t in contract.TABLES}:
        raise ConfigError(
            f"unknown table {table_key!r}",
            "use one of " + ", ".join(t.key for t in contract.TABLES),
        )
    name = f"{contract.name(environment, table_key)}{DRILL_MARKER}{short_run_id(run_id)}"
    if not is_drill_table(environment, name) or name in source_tables(environment):
        raise ConfigError(  # unreachable by construction; a drill must never touch a source
            f"{name!r} is not a restore-drill table name of {environment}",
            "drill names are mirror-dissonance-{env}-{table}-drill-{8 hex digits}",
        )
    return name


def source_tables(environment: str) -> set[str]:
    return {t.name(environment) for t in contract.TABLES}


def drill_pattern(environment: str) -> re.Pattern[str]:
    tables = "|".join(re.escape(t.key) for t in contract.TABLES)
    return re.compile(
        rf"^{re.escape(contract.name(environment, ''))}(?P<table>{tables})"
        rf"{re.escape(DRILL_MARKER)}(?P<run>[0-9a-f]{{{SHORT_ID_LENGTH}}})$"
    )


def is_drill_table(environment: str, name: str) -> bool:
    """A restore drill's copy of one of ``environment``'s tables (by its name alone)."""
    return drill_pattern(environment).match(name) is not None


def delete_command(name: str, region: str) -> str:
    """The command that removes a drill copy (it holds a copy of the data: remove it)."""
    return f"aws dynamodb delete-table --region {region} --table-name {name}"


def refusal(existing: list[str], region: str) -> tuple[str, str]:
    """(problem, fix) of refusing a drill whose copy names already exist."""
    return (
        "restore drill refused: drill table(s) already exist: " + ", ".join(existing),
        "nothing was restored or deleted; if a killed drill left them, remove them ("
        + "; ".join(delete_command(n, region) for n in existing)
        + ") and run the drill again",
    )


# -- items ---------------------------------------------------------------------------------
def _canonical(value: Any) -> Any:
    """A wire value in one canonical form: set members sorted, binaries base64."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Mapping):
        out = {}
        for kind, inner in value.items():
            if kind in ("SS", "NS", "BS"):
                out[kind] = sorted(_canonical(v) for v in inner)
            else:
                out[kind] = _canonical(inner)
        return out
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def canonical_item(item: Item) -> str:
    return json.dumps(_canonical(item), sort_keys=True, separators=(",", ":"))


def item_key(item: Item, key_attributes: Iterable[str]) -> str:
    """``pk=rule#x, sk=event#...``: the item's primary key in words."""
    parts = []
    for name in key_attributes:
        value = item.get(name) or {}
        shown = next(iter(_canonical(value).values()), None) if value else None
        parts.append(f"{name}={shown}")
    return ", ".join(parts)


def keyed(items: Iterable[Item], key_attributes: Iterable[str]) -> dict[str, str]:
    """Item key -> canonical item text."""
    keys = list(key_attributes)
    return {item_key(i, keys): canonical_item(i) for i in items}


def digest(items: Mapping[str, str]) -> str:
    """sha256 over every (key, canonical item), in key order: equal digests, equal items."""
    h = hashlib.sha256()
    for key in sorted(items):
        h.update(key.encode())
        h.update(b"\0")
        h.update(items[key].encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class Comparison:
    source_items: int
    copy_items: int
    source_digest: str
    copy_digest: str
    first_difference: str | None  # the first differing key (key order), None: identical
    difference: str = ""  # what differs at that key

    @property
    def match(self) -> bool:
        return self.first_difference is None


def _differing_attributes(source: str, copy: str) -> list[str]:
    a, b = json.loads(source), json.loads(copy)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def compare(source: Mapping[str, str], copy: Mapping[str, str]) -> Comparison:
    """The items of the source at T against the restored copy's (both from ``keyed``)."""
    first, what = None, ""
    for key in sorted(set(source) | set(copy)):
        if source.get(key) == copy.get(key):
            continue
        first = key
        if key not in copy:
            what = "in the source at T, missing from the copy"
        elif key not in source:
            what = "in the copy, not in the source at T"
        else:
            what = "attribute values differ: " + ", ".join(
                _differing_attributes(source[key], copy[key])
            )
        break
    return Comparison(len(source), len(copy), digest(source), digest(copy), first, what)


# -- when it runs ----------------------------------------------------------------------------
def runs_in_rollout(rules: EnvironmentRules, requested: bool | None) -> bool:
    """``requested`` (the flow parameter) decides; unset, the environment's rules do (on by
    default everywhere but production, where a restore on AWS takes hours and costs money)."""
    return rules.restore_drill_by_default if requested is None else requested


def not_run(environment: str) -> CheckResult:
    return CheckResult(
        check_id=CHECK_ID,
        title=TITLE,
        status=Status.SKIPPED,
        subject=environment,
        message=f"not run in this {environment} rollout: a restore on AWS takes minutes to "
        "hours and costs money, so it runs only when asked (rollout parameter "
        "restore_drill=true, or the restore-drill/weekly deployment)",
        evidence=[Evidence(source="infra-rollout parameter restore_drill", observed={})],
    )


# -- the result ------------------------------------------------------------------------------
@dataclass
class TableDrill:
    """What the drill read and did for one table; ``error`` ends it early."""

    source: str
    copy: str
    restore_point: str = ""  # T, ISO-8601 UTC
    comparison: Comparison | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # step -> duration
    evidence: list[Evidence] = field(default_factory=list)
    error: str = ""
    deleted: bool | None = None  # None: no copy was created

    def figures(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "source": self.source,
            "copy": self.copy,
            "restore_point": self.restore_point,
            **{f"{step}_seconds": round(s, 3) for step, s in self.seconds.items()},
            "source_items": c.source_items if c else None,
            "copy_items": c.copy_items if c else None,
            "source_digest": c.source_digest if c else None,
            "copy_digest": c.copy_digest if c else None,
            "match": c.match if c else None,
            "first_differing_key": c.first_difference if c else None,
            "copy_deleted": self.deleted,
        }


def judge(drill: TableDrill) -> CheckResult:
    """PASS only when the copy's items equal the source's at T and the copy is gone again."""
    result = CheckResult(
        check_id=CHECK_ID,
        title=TITLE,
        status=Status.FAIL,
        subject=drill.source,
        evidence=[*drill.evidence, Evidence(source="restore drill", observed=drill.figures())],
    )
    c = drill.comparison
    kept = (
        f"; the copy {drill.copy} could not be deleted: remove it "
        f"(see the orphan scan for the command)"
        if drill.deleted is False
        else ""
    )
    if drill.error:
        result.message = f"{drill.source}: {drill.error}{kept}"
        return result
    if c is None:  # pragma: no cover - a drill without error always compared
        result.message = f"{drill.source}: nothing was compared{kept}"
        return result
    active = drill.seconds.get("to_active")
    timing = f", ACTIVE after {active:.1f} s" if active is not None else ""
    if not c.match:
        result.message = (
            f"{drill.source}: the copy restored to T={drill.restore_point} differs from the "
            f"source at T: first differing key {c.first_difference} ({c.difference}); "
            f"{c.source_items} item(s) at T, {c.copy_items} in the copy{kept}"
        )
        return result
    if kept:
        result.message = f"{drill.source}: copy matched{kept}"
        return result
    result.status = Status.PASS
    total = drill.seconds.get("total")
    result.message = (
        f"restored to T={drill.restore_point}{timing}: {c.source_items} item(s) match "
        f"(sha256 {c.source_digest[:12]}); copy deleted"
        + (f"; drill {total:.2f} s" if total is not None else "")
    )
    return result


def drill_records(results: list[CheckResult]) -> list[dict[str, Any]]:
    """One row per table from the drill's figures (for the restore_drill expectation suite)."""
    rows = []
    for r in results:
        if r.check_id != CHECK_ID:
            continue
        figures = next((e.observed for e in r.evidence if e.source == "restore drill"), None)
        if figures is None:  # not run (SKIPPED): nothing was restored
            continue
        rows.append({k: figures.get(k) for k in RECORD_COLUMNS} | {"table": r.subject})
    return rows


RECORD_COLUMNS = (
    "table",
    "copy",
    "source_items",
    "copy_items",
    "source_digest",
    "copy_digest",
    "match",
    "copy_deleted",
)
