"""Pure builders: our typed data (plan documents, AWS read-backs) as the frames the suites check.

Each builder accepts what the pipeline already holds - Terraform's JSON plan
shape, boto3 responses, DynamoDB items - and also already-flat rows with the
frame's own column names, so a caller can hand over either. They never talk to
AWS and never import Great Expectations; pandas is imported when called.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from mirror_rollout import contract
from mirror_rollout.provisioners.document import PlanDocument, ResourceChange

if TYPE_CHECKING:
    import pandas

PLAN_COLUMNS = ("address", "type", "action", "stateful")
ALARM_COLUMNS = (
    "name",
    "namespace",
    "metric",
    "table",
    "threshold",
    "comparison",
    "period",
    "state",
    "actions",
)
PITR_COLUMNS = ("table", "status", "earliest_restorable")
FP_EVENT_COLUMNS = contract.FP_EVENT_FIELDS


def _frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> pandas.DataFrame:
    import pandas as pd

    # object dtype keeps None as None (not NaN) and bools as bools until GE reads them
    frame = pd.DataFrame(rows, columns=list(columns))
    return frame


# -- plan_changes ----------------------------------------------------------------------------
def _plan_row(change: ResourceChange | Mapping[str, Any]) -> dict[str, Any] | None:
    if isinstance(change, Mapping) and "change" not in change:
        # already flat: address, type, action (stateful is recomputed from the contract)
        rtype = change.get("type") or str(change.get("address", "")).split(".")[0]
        return {
            "address": change.get("address"),
            "type": rtype,
            "action": change.get("action"),
            "stateful": rtype in contract.STATEFUL_TYPES,
        }
    rc = change if isinstance(change, ResourceChange) else ResourceChange.model_validate(change)
    if rc.mode != "managed":
        return None
    return {
        "address": rc.address,
        "type": rc.type,
        "action": rc.action,
        "stateful": rc.type in contract.STATEFUL_TYPES,
    }


def build_plan_changes_frame(
    plan: PlanDocument | Mapping[str, Any] | Iterable[ResourceChange | Mapping[str, Any]],
) -> pandas.DataFrame:
    """One row per managed resource change: address, type, action (create/update/delete/
    replace/no-op/read), stateful (type in contract.STATEFUL_TYPES)."""
    if isinstance(plan, PlanDocument):
        changes: Iterable[Any] = plan.resource_changes
    elif isinstance(plan, Mapping):
        changes = plan.get("resource_changes", [])
    else:
        changes = plan
    rows = [row for row in map(_plan_row, changes) if row is not None]
    frame = _frame(rows, PLAN_COLUMNS)
    frame["stateful"] = frame["stateful"].astype(bool)
    return frame


# -- alarm_inventory -------------------------------------------------------------------------
def _alarm_row(alarm: Mapping[str, Any]) -> dict[str, Any]:
    if "AlarmName" not in alarm:  # already flat
        row = {c: alarm.get(c) for c in ALARM_COLUMNS}
        if isinstance(row["actions"], list | tuple):
            row["actions"] = " ".join(row["actions"])
        return row
    dims = {d.get("Name"): d.get("Value") for d in alarm.get("Dimensions") or []}
    return {
        "name": alarm.get("AlarmName"),
        "namespace": alarm.get("Namespace"),
        "metric": alarm.get("MetricName"),
        "table": dims.get("TableName"),
        "threshold": alarm.get("Threshold"),
        "comparison": alarm.get("ComparisonOperator"),
        "period": alarm.get("Period"),
        "state": alarm.get("StateValue"),
        "actions": " ".join(alarm.get("AlarmActions") or []) or None,
    }


def build_alarm_inventory_frame(alarms: Iterable[Mapping[str, Any]]) -> pandas.DataFrame:
    """One row per live alarm, from CloudWatch ``describe_alarms()["MetricAlarms"]`` entries
    (or flat rows): name, namespace, metric, table (the TableName dimension, full name),
    threshold, comparison, period, state, actions (AlarmActions ARNs, space-separated)."""
    return _frame([_alarm_row(a) for a in alarms], ALARM_COLUMNS)


# -- pitr_status -----------------------------------------------------------------------------
def _iso(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _pitr_row(record: Mapping[str, Any]) -> dict[str, Any]:
    table = record.get("table") or record.get("TableName")
    described = record.get("ContinuousBackupsDescription")
    if described is None and "PointInTimeRecoveryDescription" in record:
        described = record
    if described is not None:
        pitr = described.get("PointInTimeRecoveryDescription") or {}
        return {
            "table": table,
            "status": pitr.get("PointInTimeRecoveryStatus"),
            "earliest_restorable": _iso(pitr.get("EarliestRestorableDateTime")),
        }
    return {
        "table": table,
        "status": record.get("status"),
        "earliest_restorable": _iso(record.get("earliest_restorable")),
    }


def build_pitr_status_frame(records: Iterable[Mapping[str, Any]]) -> pandas.DataFrame:
    """One row per table: table (full name), status, earliest_restorable (ISO-8601).

    A record is either flat (``table``, ``status``, ``earliest_restorable``) or
    ``{"table": name, **describe_continuous_backups(TableName=name)}``.
    """
    return _frame([_pitr_row(r) for r in records], PITR_COLUMNS)


# -- fp_events -------------------------------------------------------------------------------
_DYNAMO_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})


def _is_wire_item(item: Mapping[str, Any]) -> bool:
    return bool(item) and all(
        isinstance(v, Mapping) and len(v) == 1 and next(iter(v)) in _DYNAMO_TYPES
        for v in item.values()
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping | list | set | tuple):
        return json.dumps(value, default=_plain_default, sort_keys=True)
    return value


def _plain_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _plain(value)
    if isinstance(value, set):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def build_fp_events_frame(items: Iterable[Mapping[str, Any]]) -> pandas.DataFrame:
    """One row per FP event item read back from the fp-events table.

    Items may be plain (boto3 resource / ``TypeDeserializer`` output, numbers as
    Decimal) or DynamoDB wire format (``{"pk": {"S": ...}}``, the client API).
    Numbers become int/float; maps and lists (``context``) become JSON text.
    """
    rows = []
    for item in items:
        if _is_wire_item(item):
            from boto3.dynamodb.types import TypeDeserializer

            des = TypeDeserializer()
            item = {k: des.deserialize(v) for k, v in item.items()}
        rows.append({c: _plain(item.get(c)) for c in FP_EVENT_COLUMNS})
    return _frame(rows, FP_EVENT_COLUMNS)


# -- restore_drill ---------------------------------------------------------------------------
def build_restore_drill_frame(records: Iterable[Mapping[str, Any]]) -> pandas.DataFrame:
    """One row per table drilled (``tasks.restore_drill.checks.drill_records``): table, copy,
    source_items, copy_items, source_digest, copy_digest, match, copy_deleted."""
    from tasks.restore_drill.checks import RECORD_COLUMNS

    return _frame([dict(r) for r in records], RECORD_COLUMNS)
