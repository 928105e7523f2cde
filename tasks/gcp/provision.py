"""Create the baselines bucket on the GCS emulator with the settings infra/gcp/main.tf declares.

gcp-storage-emulator keeps only the name from a bucket insert (it drops
versioning, iamConfiguration, location and labels from the request body), so
the settings are applied with a PATCH afterwards, which it stores as sent.
Against real GCP the bucket comes from Terraform; this helper refuses to run
without ``STORAGE_EMULATOR_HOST``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from mirror_rollout.errors import RolloutError
from tasks.gcp.checks import bucket_name
from tasks.gcp.task import storage_client

#: google_storage_bucket.baselines in infra/gcp/main.tf (CMEK aside: the emulator has no KMS).
REGION = "us-central1"


def provision_sandbox_bucket(
    environment: str,
    region: str = REGION,
    client: Any = None,
) -> dict[str, Any]:
    """Create (or re-apply) ``mirror-dissonance-{env}-baselines`` on the emulator.

    Returns the bucket metadata the emulator reports afterwards.
    """
    from google.api_core.exceptions import Conflict

    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        raise RolloutError(
            "provision_sandbox_bucket needs the GCS emulator, but STORAGE_EMULATOR_HOST is unset",
            "start the sandbox (mirror-rollout sandbox up) and export its variables; "
            "real buckets come from infra/gcp via Terraform",
        )
    client = client or storage_client(os.environ.get("GOOGLE_CLOUD_PROJECT") or "sandbox")
    name = bucket_name(environment)
    bucket = client.bucket(name)
    bucket.storage_class = "STANDARD"
    with contextlib.suppress(Conflict):  # already there: re-apply the settings below
        bucket.create(location=region.upper())
    bucket = client.bucket(name)
    bucket.versioning_enabled = True
    bucket.iam_configuration.uniform_bucket_level_access_enabled = True
    bucket.iam_configuration.public_access_prevention = "enforced"
    bucket.labels = {
        "project": "mirror-dissonance",
        "environment": environment,
        "managed-by": "mirror-rollout-sandbox",
    }
    bucket.patch()
    return dict(client.get_bucket(name)._properties)
