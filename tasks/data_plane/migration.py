"""Re-key consent items of the old table (hash key ``orgId``) into the consent adapter's
shape (``pk=org#sha256(orgId)``, ``sk=consent#{scope}#{uuid}``) plus one summary per org.

Pure: DynamoDB JSON in (``aws dynamodb scan --output json``), DynamoDB JSON out. Record ids
are UUIDv5 of (orgId, scope, grantedAt), so running the migration twice writes the same items.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from tasks.e2e.checks import CONSENT_SUMMARY_SK, consent_pk, sha256_hex, summary_entry

GRANTED = ("granted", True, "true")
_NAMESPACE = uuid.UUID("8d7b5c1e-2f4a-4d8e-9a51-6f0e3c2b1a90")


def rekey(old: Mapping[str, Any]) -> dict[str, Any]:
    """One old item (plain values) as a consent record of the adapter."""
    org = str(old["orgId"])
    scope = str(old.get("scope") or "default")
    granted_at = str(old.get("grantedAt") or old.get("updatedAt") or "")
    record_id = uuid.uuid5(_NAMESPACE, f"{org}\n{scope}\n{granted_at}")
    state = old.get("consent", old.get("status", old.get("granted")))
    record = {
        "pk": consent_pk(org),
        "sk": f"consent#{scope}#{record_id}",
        "orgId": sha256_hex(org),
        "repoId": old.get("repoId"),
        "scope": scope,
        "grantedBy": sha256_hex(str(old["grantedBy"])) if old.get("grantedBy") else None,
        "grantedAt": granted_at or None,
        "expiresAt": old.get("expiresAt") if isinstance(old.get("expiresAt"), str) else None,
        "revoked": state not in GRANTED,
        "updatedAt": str(old.get("updatedAt") or granted_at) or None,
    }
    return {k: v for k, v in record.items() if v is not None}


def migrate(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records and one summary item per org, in DynamoDB JSON (PutItem ``Item`` values)."""
    load, dump = TypeDeserializer(), TypeSerializer()
    records = [rekey({k: load.deserialize(v) for k, v in item.items()}) for item in items]
    by_org: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_org.setdefault(record["pk"], []).append(record)
    summaries = [
        {
            "pk": pk,
            "sk": CONSENT_SUMMARY_SK,
            "records": [summary_entry(r) for r in mine],
            "updatedAt": max((r.get("updatedAt", "") for r in mine), default=""),
        }
        for pk, mine in by_org.items()
    ]
    return [{k: dump.serialize(v) for k, v in item.items()} for item in records + summaries]
