"""Prefect glue for GCP: read the baselines bucket with google-cloud-storage and judge it.

The client is the standard one: with ``STORAGE_EMULATOR_HOST`` set (the sandbox)
it talks anonymously to the emulator, otherwise to real Cloud Storage with
application default credentials. Nothing below branches on the backend except
which reason a SKIPPED result gives.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from mirror_rollout.evidence import publish, raise_if_blocking
from mirror_rollout.results import CheckResult, Evidence
from mirror_rollout.target import RolloutTarget
from tasks.gcp.checks import SANDBOX_SERVICES_REASON, bucket_name, check_bucket, services_skipped

#: Why GCS-005 is not judged on the sandbox.
SANDBOX_CMEK_REASON = (
    "no expected Cloud KMS key: the sandbox (gcp-storage-emulator) has no Cloud KMS, "
    "CMEK is checked only against real GCP"
)
REAL_CMEK_REASON = (
    "no expected Cloud KMS key name was given (pass kms_key_name = the kms_crypto_key_id "
    "output of infra/gcp)"
)
#: Why GCP-010.. are not judged against real GCP (``{library}`` is filled in per check).
REAL_SERVICES_REASON = (
    "not checked live: it needs the {library} client library, which this project does not "
    "install; the infra/gcp guardrails (MR-070..074) check the declared configuration"
)
EMULATOR_NOTE = (
    "gcp-storage-emulator keeps bucket settings only as sent by PATCH and enforces none of "
    "them (versioning, uniform access, public access prevention are stored, not applied)"
)


def storage_client(project: str | None = None):
    """google.cloud.storage.Client: emulated when STORAGE_EMULATOR_HOST is set, else ADC."""
    from google.cloud import storage

    return storage.Client(project=project)


def endpoint(client: Any) -> str:
    return str(getattr(client, "api_endpoint", None) or client._connection.API_BASE_URL)


def read_bucket(client: Any, name: str) -> dict[str, Any] | None:
    """The bucket's metadata as the JSON API returns it; None when it does not exist."""
    from google.api_core.exceptions import NotFound

    try:
        return dict(client.get_bucket(name)._properties)
    except NotFound:
        return None


def verify_gcs(
    client: Any, environment: str, backend: str, kms_key_name: str | None = None
) -> list[CheckResult]:
    """GCS-001..005 on ``mirror-dissonance-{env}-baselines`` plus GCP-010.. (SKIPPED)."""
    name = bucket_name(environment)
    base = endpoint(client)
    metadata = read_bucket(client, name)
    sandbox = backend == "sandbox"
    results = check_bucket(
        name,
        metadata,
        source=f"storage.buckets.get {base}/storage/v1/b/{name}",
        expected_key=kms_key_name,
        cmek_unset_reason=SANDBOX_CMEK_REASON if sandbox else REAL_CMEK_REASON,
    )
    if sandbox and metadata is not None:
        note = Evidence(source=f"gcp-storage-emulator {base}", observed={"note": EMULATOR_NOTE})
        for result in results:
            result.evidence.append(note)
    results += services_skipped(
        environment,
        SANDBOX_SERVICES_REASON if sandbox else REAL_SERVICES_REASON,
        source=f"mirror-rollout backend {backend}",
    )
    return results


@task(name="gcs-baselines", task_run_name="gcs-baselines-{target.environment}")
def gcs_baselines(
    target: RolloutTarget, project: str | None = None, kms_key_name: str | None = None
) -> list[CheckResult]:
    """Verify the baselines bucket (and report the other GCP services); artifact ``{env}-gcs``."""
    environment, backend = target.environment, target.backend
    client = storage_client(project)
    results = verify_gcs(client, environment, backend, kms_key_name)
    publish(f"{environment}-gcs", results, f"GCP baselines bucket of {environment} ({backend})")
    raise_if_blocking(
        results,
        "GCP checks failed",
        f"see the {environment}-gcs artifact; apply infra/gcp (or, on the sandbox, "
        "provision the bucket) and rerun",
    )
    return results
