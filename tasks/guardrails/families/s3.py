"""S3 buckets (baselines, audit logs) and their companions: versioning, SSE-KMS, public access."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from mirror_rollout import contract
from tasks.guardrails.base import (
    Guardrail,
    PlanGuardrail,
    declared_named,
    first,
    is_cmk,
    missing,
    named,
    not_planned,
)
from tasks.guardrails.common import At, Problem, guardrail, unless
from tasks.guardrails.plan_view import Planned, PlanView
from tasks.guardrails.view import Block, InfraView

PUBLIC_ACCESS_FLAGS = (
    "block_public_acls",
    "block_public_policy",
    "ignore_public_acls",
    "restrict_public_buckets",
)
_SSE_DEFAULT = "rule.apply_server_side_encryption_by_default"


def declared_bucket(view: InfraView, suffix: str) -> Block | None:
    return declared_named(view, "aws_s3_bucket", "bucket", suffix)


def companions(view: InfraView, rtype: str, bucket: Block) -> list[Block]:
    """The ``rtype`` resources whose ``bucket`` argument is ``bucket``."""
    name = view.aws.resolve(bucket.get("bucket"))
    return [
        r
        for r in view.aws.of_type(rtype)
        if view.aws.refers_to(r.get("bucket"), bucket.address)
        or view.aws.resolve(r.get("bucket")) == name
    ]


# -- as written: each aspect blames its companion's line --------------------------------
def versioning_problems(view: InfraView, bucket: Block) -> list[Problem]:
    configs = companions(view, "aws_s3_bucket_versioning", bucket)
    if not configs:
        return [("bucket", "no aws_s3_bucket_versioning for this bucket")]
    config = configs[0]
    status = config.block("versioning_configuration").get("status")
    return unless(
        status == "Enabled",
        At(config.at("versioning_configuration.status")),
        f"{config.address}: versioning status is {status!r}, must be Enabled",
    )


def encryption_problems(view: InfraView, bucket: Block) -> list[Problem]:
    configs = companions(view, "aws_s3_bucket_server_side_encryption_configuration", bucket)
    if not configs:
        return [("bucket", "no aws_s3_bucket_server_side_encryption_configuration")]
    sse = configs[0]
    default = (sse.block("rule").get("apply_server_side_encryption_by_default") or [{}])[0]
    return unless(
        default.get("sse_algorithm") == "aws:kms",
        At(sse.at(f"{_SSE_DEFAULT}.sse_algorithm")),
        f"{sse.address}: sse_algorithm is {default.get('sse_algorithm')!r}, must be aws:kms",
    ) + unless(
        is_cmk(view.aws, default.get("kms_master_key_id")),
        At(sse.at(f"{_SSE_DEFAULT}.kms_master_key_id")),
        f"{sse.address}: kms_master_key_id must refer to the project CMK",
    )


def public_access_problems(view: InfraView, bucket: Block) -> list[Problem]:
    blocks = companions(view, "aws_s3_bucket_public_access_block", bucket)
    if not blocks:
        return [("bucket", "no aws_s3_bucket_public_access_block for this bucket")]
    return [
        (At(blocks[0].at(flag)), f"{blocks[0].address}: {flag} must be true")
        for flag in PUBLIC_ACCESS_FLAGS
        if blocks[0].get(flag) is not True
    ]


def private_bucket_problems(view: InfraView, bucket: Block) -> list[Problem]:
    """Every aspect at once: versioned, SSE-KMS with the CMK, no public access."""
    return (
        versioning_problems(view, bucket)
        + encryption_problems(view, bucket)
        + public_access_problems(view, bucket)
    )


class BaselinesBucketCheck(Guardrail):
    """One aspect of the baselines bucket, from its companions as written."""

    aspect: ClassVar[Callable[[InfraView, Block], list[Problem]]]

    def inspect(self, view):
        bucket = declared_bucket(view, "baselines")
        if bucket is None:
            yield missing(view, f"aws_s3_bucket {contract.name(view.env, 'baselines')}")
            return
        yield from self.observe(bucket, type(self).aspect(view, bucket), self.title)


@guardrail
class BaselinesVersioning(BaselinesBucketCheck):
    id = "MR-040"
    title = "Baselines bucket versioned"
    aspect = versioning_problems


@guardrail
class BaselinesEncryption(BaselinesBucketCheck):
    id = "MR-041"
    title = "Baselines bucket SSE-KMS with the project CMK"
    aspect = encryption_problems


@guardrail
class BaselinesPublicAccess(BaselinesBucketCheck):
    id = "MR-042"
    title = "Baselines bucket blocks all four kinds of public access"
    aspect = public_access_problems


# -- as planned -------------------------------------------------------------------------
def _companion(plan: PlanView, rtype: str, bucket: Planned) -> Planned | None:
    return next(
        (
            r
            for r in plan.of_type(rtype)
            if plan.refers_to(r, "bucket", bucket)
            or r.values.get("bucket") == bucket.values["bucket"]
        ),
        None,
    )


def bucket_problems(plan: PlanView, bucket: Planned) -> list[Problem]:
    versioning = _companion(plan, "aws_s3_bucket_versioning", bucket)
    status = first((versioning.values if versioning else {}).get("versioning_configuration"))
    sse = _companion(plan, "aws_s3_bucket_server_side_encryption_configuration", bucket)
    rule = first((sse.values if sse else {}).get("rule"))
    default = first(rule.get("apply_server_side_encryption_by_default"))
    problems = unless(
        status.get("status") == "Enabled",
        "bucket",
        "versioning is not Enabled (aws_s3_bucket_versioning)",
    ) + unless(
        default.get("sse_algorithm") == "aws:kms", "bucket", "default encryption is not aws:kms"
    )
    block = _companion(plan, "aws_s3_bucket_public_access_block", bucket)
    if block is None:
        return [*problems, ("bucket", "no aws_s3_bucket_public_access_block")]
    return problems + [
        ("bucket", f"{block.address}.{flag} is not true")
        for flag in PUBLIC_ACCESS_FLAGS
        if block.values.get(flag) is not True
    ]


@guardrail
class Buckets(PlanGuardrail):
    id = "MR-044"
    title = "Buckets mirror-dissonance-{env}-baselines and -audit-logs: versioned, SSE-KMS, private"

    def inspect(self, plan):
        for suffix in ("baselines", "audit-logs"):
            expected = contract.name(plan.env, suffix)
            bucket = named(plan, "aws_s3_bucket", "bucket", expected)
            if bucket is None:
                yield not_planned(plan, f"aws_s3_bucket {expected}")
                continue
            yield from self.observe(bucket, bucket_problems(plan, bucket), expected)
