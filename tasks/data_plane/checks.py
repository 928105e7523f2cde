"""Pure data-plane contract logic: the Oracle's access patterns against a table's shape.

A ``TableShape`` is what a table offers (keys, indexes, TTL, encryption), built from
DescribeTable/DescribeTimeToLive here, or from the raw HCL by guardrail MR-009. Every
mismatch is one sentence naming both sides: "consent adapter keys pk/sk; table keys orgId".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tasks.data_plane.spec import AccessPattern, TableUse

#: TTL states in which expiry works (or is being switched on by AWS).
TTL_ON = ("ENABLED", "ENABLING")


@dataclass(frozen=True)
class TableShape:
    name: str
    keys: dict[str, str]  # hash key first, then range key: attribute -> type
    indexes: dict[str, tuple[dict[str, str], str]] = field(default_factory=dict)  # keys, projection
    ttl: str | None = None
    ttl_status: str | None = None
    sse: str | None = None  # "KMS", or "DEFAULT" (AWS owned key)
    sse_key: str | None = None


def _keys(keys: Mapping[str, str], typed: bool = False) -> str:
    return "/".join(f"{k}:{t}" if typed else k for k, t in keys.items())


def shape_from_describe(table: Mapping[str, Any], ttl: Mapping[str, Any]) -> TableShape:
    """A live table from DescribeTable's ``Table`` and DescribeTimeToLive's response."""
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}

    def keyed(schema: list[Mapping[str, Any]]) -> dict[str, str]:
        ordered = sorted(schema, key=lambda k: k["KeyType"] != "HASH")
        return {k["AttributeName"]: types.get(k["AttributeName"], "?") for k in ordered}

    indexes = {
        g["IndexName"]: (keyed(g["KeySchema"]), g.get("Projection", {}).get("ProjectionType", "?"))
        for g in table.get("GlobalSecondaryIndexes", [])
    }
    described = ttl.get("TimeToLiveDescription", {})
    sse = table.get("SSEDescription") or {}
    return TableShape(
        name=table["TableName"],
        keys=keyed(table.get("KeySchema", [])),
        indexes=indexes,
        ttl=described.get("AttributeName"),
        ttl_status=described.get("TimeToLiveStatus"),
        sse=sse.get("SSEType", "KMS" if sse.get("KMSMasterKeyArn") else None)
        if sse.get("Status") in ("ENABLED", "UPDATING")
        else "DEFAULT",
        sse_key=sse.get("KMSMasterKeyArn"),
    )


Mismatch = tuple[str, str]  # (aspect: table, keys, index, ttl or sse; the sentence)


def mismatches(
    pattern: AccessPattern, use: TableUse, shape: TableShape | None, cmk_arn: str | None = None
) -> list[Mismatch]:
    """What of ``shape`` breaks ``pattern`` (empty when the table serves it)."""
    who = f"{pattern.adapter} adapter"
    if shape is None:
        return [("table", f"{who} uses table {pattern.table}; no such table")]
    # One aspect after another, in the order the table's sentences are read.
    return [
        *_key_mismatches(who, pattern, shape),
        *_index_mismatches(who, pattern, shape),
        *_ttl_mismatches(who, pattern, shape),
        *_sse_mismatches(who, use, shape, cmk_arn),
    ]


def _key_mismatches(who: str, pattern: AccessPattern, shape: TableShape) -> list[Mismatch]:
    if list(pattern.keys) != list(shape.keys):
        return [("keys", f"{who} keys {_keys(pattern.keys)}; table keys {_keys(shape.keys)}")]
    if pattern.keys != shape.keys:
        typed = f"{who} keys {_keys(pattern.keys, True)}; table keys {_keys(shape.keys, True)}"
        return [("keys", typed)]
    return []


def _index_mismatches(who: str, pattern: AccessPattern, shape: TableShape) -> list[Mismatch]:
    if not pattern.index:
        return []
    wanted = pattern.index
    found = shape.indexes.get(wanted.name)
    said = f"{who} queries {wanted.name} on {_keys(wanted.keys, True)} ({wanted.projection})"
    if found is None:
        return [("index", f"{said}; table has no index {wanted.name}")]
    if (dict(found[0]), found[1]) != (wanted.keys, wanted.projection):
        on = f"{_keys(found[0], True)} ({found[1]})"
        return [("index", f"{said}; table {wanted.name} is on {on}")]
    return []


def _ttl_mismatches(who: str, pattern: AccessPattern, shape: TableShape) -> list[Mismatch]:
    if not pattern.ttl:
        # No expiry of its own: it must still not write the table's TTL attribute as non-epoch.
        if shape.ttl and pattern.writes.get(shape.ttl) not in (None, "N"):
            kind = pattern.writes[shape.ttl]
            return [
                (
                    "ttl",
                    f"{who} writes {shape.ttl} as {kind}; table TTL reads {shape.ttl} as epoch seconds (N)",
                )
            ]
        return []
    said = f"{who} writes its expiry to {pattern.ttl}"
    if shape.ttl is None:
        return [("ttl", f"{said}; table has no TTL attribute")]
    if shape.ttl != pattern.ttl:
        return [("ttl", f"{said}; table TTL attribute is {shape.ttl}")]
    if shape.ttl_status is not None and shape.ttl_status not in TTL_ON:
        return [("ttl", f"{said}; table TTL on {shape.ttl} is {shape.ttl_status}")]
    return []


def _sse_mismatches(
    who: str, use: TableUse, shape: TableShape, cmk_arn: str | None
) -> list[Mismatch]:
    if use.encryption != "KMS":
        return []
    said = f"{who} expects SSE-KMS with the project CMK"
    if shape.sse != "KMS":
        return [("sse", f"{said}; table SSE is {shape.sse or 'off'}")]
    if cmk_arn and shape.sse_key and shape.sse_key != cmk_arn:
        return [("sse", f"{said} {cmk_arn}; table key is {shape.sse_key}")]
    return []


# -- performing a pattern with a test item --------------------------------------------------
def sample_value(attribute: str, kind: str, token: str, now: datetime) -> Any:
    """A recognisable test value of DynamoDB type ``kind`` (wire format)."""
    epoch = int(now.timestamp()) + 3600  # an hour ahead: a valid TTL that does not fire mid-check
    return {
        "S": {"S": f"mirror-rollout-contract#{token}#{attribute}"},
        "N": {"N": str(epoch)},
        "B": {"B": f"{token}:{attribute}".encode()},
        "BOOL": {"BOOL": True},
        "M": {"M": {"probe": {"S": token}}},
        "L": {"L": [{"S": token}]},
    }[kind]


def sample_item(pattern: AccessPattern, token: str, now: datetime) -> dict[str, Any]:
    return {a: sample_value(a, t, token, now) for a, t in pattern.writes.items()}


def update_arguments(pattern: AccessPattern, token: str, now: datetime) -> dict[str, Any]:
    """Names and values of the pattern's update expression: #name is attribute ``name``,
    :name a test value of ``name``'s type."""
    expression = pattern.update or ""
    names = {f"#{a}": a for a in pattern.writes if f"#{a}" in expression}
    values = {
        f":{a}": sample_value(a, t, token, now)
        for a, t in pattern.writes.items()
        if f":{a}" in expression
    }
    return {
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def type_problems(pattern: AccessPattern, item: Mapping[str, Any] | None) -> list[str]:
    """Attributes of a read-back test item (wire format) missing or of another type."""
    if not item:
        return [f"{pattern.adapter} adapter's test item was not read back"]
    problems = []
    for attribute, kind in pattern.writes.items():
        got = next(iter(item.get(attribute, {})), None)
        if got != kind:
            problems.append(
                f"{pattern.adapter} adapter writes {attribute} as {kind}; read back "
                + (f"as {got}" if got else "without it")
            )
    return problems
