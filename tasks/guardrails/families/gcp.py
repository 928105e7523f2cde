"""GCP (infra/gcp): Firestore PITR, the baselines bucket, Cloud KMS, workload identity, the
nonce secret."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from mirror_rollout import contract
from tasks.guardrails.base import static_check
from tasks.guardrails.common import Observation, Problem, each_found, observe, unless
from tasks.guardrails.view import Block, InfraView, ModuleView

#: What is wrong with one GCP resource as written (argument path, message).
Judge = Callable[[ModuleView, Block], list[Problem]]


def gcp_check(check_id: str, title: str, resource_type: str) -> Callable[[Judge], Judge]:
    """Register a judge of every ``resource_type`` block of infra/gcp as a guardrail; the
    resource type must be declared."""

    def register(judge: Judge) -> Judge:
        def inspect(view: InfraView) -> Iterator[Observation]:
            gcp = view.gcp
            absent = Observation(
                resource_type, "infra/gcp", False, f"{resource_type} is not declared"
            )
            if gcp is None:
                return iter([absent])
            return each_found(
                gcp.of_type(resource_type),
                absent,
                lambda resource: observe(resource, judge(gcp, resource), title),
            )

        inspect.__name__ = judge.__name__
        static_check(check_id, title)(inspect)
        return judge

    return register


@gcp_check("MR-070", "GCP: Firestore point-in-time recovery on", "google_firestore_database")
def firestore_pitr(gcp: ModuleView, resource: Block) -> list[Problem]:
    value = gcp.resolve(resource.get("point_in_time_recovery_enablement"))
    return unless(
        value == "POINT_IN_TIME_RECOVERY_ENABLED",
        "point_in_time_recovery_enablement",
        f"point_in_time_recovery_enablement is {value!r}",
    )


@gcp_check(
    "MR-071",
    "GCP: baselines bucket versioned, uniform access, public access prevention enforced",
    "google_storage_bucket",
)
def gcs_bucket_protection(gcp: ModuleView, resource: Block) -> list[Problem]:
    return (
        unless(
            resource.block("versioning").get("enabled") is True,
            "versioning.enabled",
            "versioning.enabled must be true",
        )
        + unless(
            resource.get("uniform_bucket_level_access") is True,
            "uniform_bucket_level_access",
            "uniform_bucket_level_access must be true",
        )
        + unless(
            gcp.resolve(resource.get("public_access_prevention")) == "enforced",
            "public_access_prevention",
            'public_access_prevention must be "enforced"',
        )
    )


@gcp_check(
    "MR-072",
    "GCP: baselines bucket encrypted with the project Cloud KMS key",
    "google_storage_bucket",
)
def gcs_cmek(gcp: ModuleView, resource: Block) -> list[Problem]:
    key = resource.block("encryption").get("default_kms_key_name")
    return unless(
        gcp.refers_to(key, *(k.address for k in gcp.of_type("google_kms_crypto_key"))),
        "encryption",
        "encryption.default_kms_key_name must refer to the project crypto key",
    )


@gcp_check("MR-073", "GCP: Cloud KMS key rotates at least every 90 days", "google_kms_crypto_key")
def gcp_key_rotation(gcp: ModuleView, resource: Block) -> list[Problem]:
    period = str(gcp.resolve(resource.get("rotation_period")) or "")
    seconds = int(period[:-1]) if period.endswith("s") and period[:-1].isdigit() else None
    return unless(
        seconds is not None and seconds <= 90 * 86400,
        "rotation_period",
        f"rotation_period {period!r} must be set and at most 7776000s",
    )


@gcp_check(
    "MR-074",
    "GCP: workload identity federation restricted to the repository",
    "google_iam_workload_identity_pool_provider",
)
def gcp_workload_identity(gcp: ModuleView, resource: Block) -> list[Problem]:
    org, repo = gcp.var("github_org", ""), gcp.var("github_repo", "")
    condition = str(gcp.resolve(resource.get("attribute_condition")) or "")
    pinned = re.search(
        rf"assertion\.repository\s*==\s*['\"]{re.escape(org)}/{re.escape(repo)}['\"]", condition
    )
    problems = unless(
        bool(pinned),
        "attribute_condition",
        f"attribute_condition must require assertion.repository == '{org}/{repo}'",
    ) + unless(
        resource.block("oidc").get("issuer_uri") == contract.OIDC_URL,
        "oidc.issuer_uri",
        f"oidc.issuer_uri must be {contract.OIDC_URL}",
    )
    for member in gcp.of_type("google_service_account_iam_member"):
        text = str(gcp.resolve(member.get("member", "")))
        if "principalSet" in text and not text.endswith(f"attribute.repository/{org}/{repo}"):
            problems.append(
                (
                    "",
                    f"{member.address} ({member.location}) grants {text}, wider than the repository",
                )
            )
    return problems


@gcp_check(
    "MR-075",
    "GCP: nonce secret exists, CMEK-encrypted, with no value in Terraform",
    "google_secret_manager_secret",
)
def gcp_nonce_secret(gcp: ModuleView, resource: Block) -> list[Problem]:
    problems: list[Problem] = [
        ("", f"{v.address} ({v.location}) writes a secret value into Terraform state")
        for v in gcp.of_type("google_secret_manager_secret_version")
    ]
    problems += [
        ("", f"{r.address} ({r.location}) generates a secret in Terraform")
        for r in gcp.module.resources
        if r.type.startswith("random_")
    ]
    keys = [k.address for k in gcp.of_type("google_kms_crypto_key")]
    return problems + unless(
        gcp.refers_to(resource.get("replication"), *keys),
        "replication",
        "replication must use customer_managed_encryption with the project key",
    )
