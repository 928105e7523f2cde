"""GCP (infra/gcp): Firestore PITR, the baselines bucket, Cloud KMS, workload identity, the
nonce secret."""

from __future__ import annotations

import re
from typing import ClassVar

from mirror_rollout import contract
from tasks.guardrails.base import Guardrail
from tasks.guardrails.common import Observation, Problem, guardrail, unless
from tasks.guardrails.view import Block, ModuleView


class GcpGuardrail(Guardrail):
    resource_type: ClassVar[str]

    def inspect(self, view):
        gcp = view.gcp
        found = gcp.of_type(self.resource_type) if gcp else []
        if not found:
            yield Observation(
                self.resource_type, "infra/gcp", False, f"{self.resource_type} is not declared"
            )
        for resource in found:
            yield from self.observe(resource, self.problems(gcp, resource), self.title)

    def problems(self, gcp: ModuleView, resource: Block) -> list[Problem]:
        raise NotImplementedError


@guardrail
class FirestorePitr(GcpGuardrail):
    id = "MR-070"
    title = "GCP: Firestore point-in-time recovery on"
    resource_type = "google_firestore_database"

    def problems(self, gcp, resource):
        value = gcp.resolve(resource.get("point_in_time_recovery_enablement"))
        return unless(
            value == "POINT_IN_TIME_RECOVERY_ENABLED",
            "point_in_time_recovery_enablement",
            f"point_in_time_recovery_enablement is {value!r}",
        )


@guardrail
class GcsBucketProtection(GcpGuardrail):
    id = "MR-071"
    title = "GCP: baselines bucket versioned, uniform access, public access prevention enforced"
    resource_type = "google_storage_bucket"

    def problems(self, gcp, resource):
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


@guardrail
class GcsCmek(GcpGuardrail):
    id = "MR-072"
    title = "GCP: baselines bucket encrypted with the project Cloud KMS key"
    resource_type = "google_storage_bucket"

    def problems(self, gcp, resource):
        key = resource.block("encryption").get("default_kms_key_name")
        return unless(
            gcp.refers_to(key, *(k.address for k in gcp.of_type("google_kms_crypto_key"))),
            "encryption",
            "encryption.default_kms_key_name must refer to the project crypto key",
        )


@guardrail
class GcpKeyRotation(GcpGuardrail):
    id = "MR-073"
    title = "GCP: Cloud KMS key rotates at least every 90 days"
    resource_type = "google_kms_crypto_key"

    def problems(self, gcp, resource):
        period = str(gcp.resolve(resource.get("rotation_period")) or "")
        seconds = int(period[:-1]) if period.endswith("s") and period[:-1].isdigit() else None
        return unless(
            seconds is not None and seconds <= 90 * 86400,
            "rotation_period",
            f"rotation_period {period!r} must be set and at most 7776000s",
        )


@guardrail
class GcpWorkloadIdentity(GcpGuardrail):
    id = "MR-074"
    title = "GCP: workload identity federation restricted to the repository"
    resource_type = "google_iam_workload_identity_pool_provider"

    def problems(self, gcp, resource):
        org, repo = gcp.var("github_org", ""), gcp.var("github_repo", "")
        condition = str(gcp.resolve(resource.get("attribute_condition")) or "")
        problems = []
        if not re.search(
            rf"assertion\.repository\s*==\s*['\"]{re.escape(org)}/{re.escape(repo)}['\"]", condition
        ):
            problems.append(
                (
                    "attribute_condition",
                    f"attribute_condition must require assertion.repository == '{org}/{repo}'",
                )
            )
        if resource.block("oidc").get("issuer_uri") != contract.OIDC_URL:
            problems.append(("oidc.issuer_uri", f"oidc.issuer_uri must be {contract.OIDC_URL}"))
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


@guardrail
class GcpNonceSecret(GcpGuardrail):
    id = "MR-075"
    title = "GCP: nonce secret exists, CMEK-encrypted, with no value in Terraform"
    resource_type = "google_secret_manager_secret"

    def problems(self, gcp, resource):
        problems = [
            ("", f"{v.address} ({v.location}) writes a secret value into Terraform state")
            for v in gcp.of_type("google_secret_manager_secret_version")
        ]
        problems += [
            ("", f"{r.address} ({r.location}) generates a secret in Terraform")
            for r in gcp.module.resources
            if r.type.startswith("random_")
        ]
        keys = [k.address for k in gcp.of_type("google_kms_crypto_key")]
        if not gcp.refers_to(resource.get("replication"), *keys):
            problems.append(
                (
                    "replication",
                    "replication must use customer_managed_encryption with the project key",
                )
            )
        return problems
