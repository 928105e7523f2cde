"""Pure GCP checks over Cloud Storage bucket metadata (the JSON API's bucket resource).

``metadata`` is the dict google-cloud-storage keeps as ``bucket._properties``
(what ``storage.buckets.get`` returns), or None when the bucket does not exist.
A field the server does not report never passes a check: it FAILs naming the
bucket, the setting and what was (not) seen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mirror_rollout.contract import PREFIX
from mirror_rollout.results import CheckResult, Evidence, Status

Metadata = dict[str, Any]

#: The GCS checks: id, title.
EXISTS = ("GCS-001", "Baselines bucket exists")
VERSIONING = ("GCS-002", "Baselines bucket: object versioning enabled")
UNIFORM_ACCESS = ("GCS-003", "Baselines bucket: uniform bucket-level access enabled")
PUBLIC_ACCESS = ("GCS-004", 'Baselines bucket: public access prevention "enforced"')
CMEK = ("GCS-005", "Baselines bucket: default Cloud KMS key (CMEK) is the project key")

#: GCP services besides Cloud Storage that infra/gcp declares:
#: id, title, subject template ({env}), client library a live check would need.
SERVICES: tuple[tuple[str, str, str, str], ...] = (
    (
        "GCP-010",
        "Firestore point-in-time recovery enabled",
        "google_firestore_database.main ((default))",
        "google-cloud-firestore",
    ),
    (
        "GCP-011",
        "Secret Manager redaction nonce secret (CMEK, versions by the pipeline)",
        "secret redaction-nonce-{env}",
        "google-cloud-secret-manager",
    ),
    (
        "GCP-012",
        "Cloud KMS key rotation period at most 90 days",
        "crypto key " + PREFIX + "-{env}",
        "google-cloud-kms",
    ),
    (
        "GCP-013",
        "Workload identity federation restricted to the repository",
        "workload identity pool md-{env}-github",
        "google-cloud-iam",
    ),
)

SANDBOX_SERVICES_REASON = "checked only against real GCP: the sandbox emulates Cloud Storage only"


def bucket_name(environment: str) -> str:
    return f"{PREFIX}-{environment}-baselines"


def observed(metadata: Metadata | None) -> dict[str, Any]:
    """The settings the checks judge, as read (JSON-ready) — the evidence of every GCS result."""
    if metadata is None:
        return {"exists": False}
    return {
        "exists": True,
        "name": metadata.get("name"),
        "location": metadata.get("location"),
        "metageneration": metadata.get("metageneration"),
        "updated": metadata.get("updated"),
        "versioning": metadata.get("versioning"),
        "iamConfiguration": metadata.get("iamConfiguration"),
        "encryption": metadata.get("encryption"),
    }


def _result(
    check: tuple[str, str], bucket: str, status: Status, message: str, evidence: Evidence
) -> CheckResult:
    check_id, title = check
    return CheckResult(
        check_id=check_id,
        title=title,
        status=status,
        subject=bucket,
        message=message,
        evidence=[evidence],
    )


def check_exists(bucket: str, metadata: Metadata | None, evidence: Evidence) -> CheckResult:
    if metadata is None:
        return _result(EXISTS, bucket, Status.FAIL, f"bucket {bucket} does not exist", evidence)
    return _result(EXISTS, bucket, Status.PASS, f"bucket {bucket} exists", evidence)


def check_versioning(bucket: str, metadata: Metadata, evidence: Evidence) -> CheckResult:
    enabled = (metadata.get("versioning") or {}).get("enabled")
    if enabled is True:
        return _result(VERSIONING, bucket, Status.PASS, "versioning.enabled is true", evidence)
    return _result(
        VERSIONING,
        bucket,
        Status.FAIL,
        f"bucket {bucket}: versioning is not enabled (versioning.enabled is {enabled!r})",
        evidence,
    )


def check_uniform_access(bucket: str, metadata: Metadata, evidence: Evidence) -> CheckResult:
    iam = metadata.get("iamConfiguration") or {}
    enabled = (iam.get("uniformBucketLevelAccess") or {}).get("enabled")
    if enabled is True:
        return _result(
            UNIFORM_ACCESS,
            bucket,
            Status.PASS,
            "iamConfiguration.uniformBucketLevelAccess.enabled is true",
            evidence,
        )
    return _result(
        UNIFORM_ACCESS,
        bucket,
        Status.FAIL,
        f"bucket {bucket}: uniform bucket-level access is not enabled "
        f"(iamConfiguration.uniformBucketLevelAccess.enabled is {enabled!r})",
        evidence,
    )


def check_public_access_prevention(
    bucket: str, metadata: Metadata, evidence: Evidence
) -> CheckResult:
    value = (metadata.get("iamConfiguration") or {}).get("publicAccessPrevention")
    if value == "enforced":
        return _result(
            PUBLIC_ACCESS,
            bucket,
            Status.PASS,
            'iamConfiguration.publicAccessPrevention is "enforced"',
            evidence,
        )
    return _result(
        PUBLIC_ACCESS,
        bucket,
        Status.FAIL,
        f'bucket {bucket}: public access prevention is not "enforced" '
        f"(iamConfiguration.publicAccessPrevention is {value!r})",
        evidence,
    )


def _key(name: str | None) -> str:
    return (name or "").strip().rstrip("/")


def check_cmek(
    bucket: str,
    metadata: Metadata,
    evidence: Evidence,
    expected_key: str | None,
    unset_reason: str = "no expected Cloud KMS key name was given",
) -> CheckResult:
    """PASS when encryption.defaultKmsKeyName is ``expected_key``; SKIPPED when none is expected."""
    actual = (metadata.get("encryption") or {}).get("defaultKmsKeyName")
    if not _key(expected_key):
        return _result(
            CMEK,
            bucket,
            Status.SKIPPED,
            f"{unset_reason}; encryption.defaultKmsKeyName is {actual!r} (not judged)",
            evidence,
        )
    if not actual:
        return _result(
            CMEK,
            bucket,
            Status.FAIL,
            f"bucket {bucket}: no default KMS key (encryption.defaultKmsKeyName is unset), "
            f"expected {expected_key}",
            evidence,
        )
    if _key(actual) != _key(expected_key):
        return _result(
            CMEK,
            bucket,
            Status.FAIL,
            f"bucket {bucket}: encryption.defaultKmsKeyName is {actual}, expected {expected_key}",
            evidence,
        )
    return _result(CMEK, bucket, Status.PASS, f"encryption.defaultKmsKeyName is {actual}", evidence)


SETTINGS: tuple[tuple[tuple[str, str], Callable[[str, Metadata, Evidence], CheckResult]], ...] = (
    (VERSIONING, check_versioning),
    (UNIFORM_ACCESS, check_uniform_access),
    (PUBLIC_ACCESS, check_public_access_prevention),
)


def check_bucket(
    bucket: str,
    metadata: Metadata | None,
    source: str,
    expected_key: str | None = None,
    cmek_unset_reason: str = "no expected Cloud KMS key name was given",
) -> list[CheckResult]:
    """GCS-001..005 over one read of the bucket; ``source`` names the read (API, endpoint)."""
    evidence = Evidence(source=source, observed=observed(metadata))
    results = [check_exists(bucket, metadata, evidence)]
    if metadata is None:
        why = f"bucket {bucket} does not exist (see {EXISTS[0]})"
        return results + [
            _result(check, bucket, Status.SKIPPED, why, evidence)
            for check in (*(c for c, _ in SETTINGS), CMEK)
        ]
    results += [check(bucket, metadata, evidence) for _, check in SETTINGS]
    results.append(check_cmek(bucket, metadata, evidence, expected_key, cmek_unset_reason))
    return results


def services_skipped(environment: str, reason: str, source: str) -> list[CheckResult]:
    """GCP-010.. (Firestore PITR, nonce secret, KMS rotation, WIF) SKIPPED with ``reason``.

    ``reason`` may name ``{library}``, the client library the live check would need.
    """
    return [
        CheckResult(
            check_id=check_id,
            title=title,
            status=Status.SKIPPED,
            subject=subject.format(env=environment),
            message=reason.format(library=library),
            evidence=[Evidence(source=source, observed={"client_library": library})],
        )
        for check_id, title, subject, library in SERVICES
    ]
