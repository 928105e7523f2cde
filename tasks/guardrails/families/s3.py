"""S3 buckets (baselines, audit logs) and their companions: versioning, SSE-KMS, public access."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from mirror_rollout import contract
from mirror_rollout.documents import as_list
from tasks.guardrails.base import (
    declared_named,
    first,
    is_cmk,
    missing,
    named,
    not_planned,
    plan_check,
    static_check,
)
from tasks.guardrails.common import (
    At,
    Observation,
    Problem,
    each_expected,
    each_found,
    observe,
    unless,
)
from tasks.guardrails.plan_view import Planned, PlanView
from tasks.guardrails.view import Block, InfraView

PUBLIC_ACCESS_FLAGS = (
    "block_public_acls",
    "block_public_policy",
    "ignore_public_acls",
    "restrict_public_buckets",
)
_SSE_DEFAULT = "rule.apply_server_side_encryption_by_default"
#: One aspect of a bucket as written: its problems, from the bucket's companions.
Aspect = Callable[[InfraView, Block], list[Problem]]


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


def baselines_check(check_id: str, title: str, aspect: Aspect) -> None:
    """Register the check of one aspect of the baselines bucket, from its companions."""

    def inspect(view: InfraView) -> Iterator[Observation]:
        bucket = declared_bucket(view, "baselines")
        return each_found(
            as_list(bucket),
            missing(view, f"aws_s3_bucket {contract.name(view.env, 'baselines')}"),
            lambda b: observe(b, aspect(view, b), title),
        )

    inspect.__name__ = aspect.__name__.removesuffix("_problems")
    static_check(check_id, title)(inspect)


baselines_check("MR-040", "Baselines bucket versioned", versioning_problems)
baselines_check("MR-041", "Baselines bucket SSE-KMS with the project CMK", encryption_problems)
baselines_check(
    "MR-042", "Baselines bucket blocks all four kinds of public access", public_access_problems
)


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


@plan_check(
    "MR-044",
    "Buckets mirror-dissonance-{env}-baselines and -audit-logs: versioned, SSE-KMS, private",
)
def buckets(plan: PlanView) -> Iterator[Observation]:
    expected = [contract.name(plan.env, suffix) for suffix in ("baselines", "audit-logs")]
    return each_expected(
        [(name, named(plan, "aws_s3_bucket", "bucket", name)) for name in expected],
        lambda name: not_planned(plan, f"aws_s3_bucket {name}"),
        lambda bucket: observe(bucket, bucket_problems(plan, bucket), bucket.values["bucket"]),
    )
