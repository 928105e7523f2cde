"""The audit trail: CloudTrail with validated, encrypted logs in its own private bucket."""

from __future__ import annotations

from collections.abc import Iterator

from mirror_rollout import contract
from mirror_rollout.documents import as_list
from tasks.guardrails.base import cmk_problems, missing, static_check
from tasks.guardrails.common import Observation, each_found, observe, unless
from tasks.guardrails.families.s3 import declared_bucket, private_bucket_problems
from tasks.guardrails.view import Block, InfraView


def _trail(view: InfraView, bucket: Block | None, trail: Block) -> Iterator[Observation]:
    aws = view.aws
    problems = cmk_problems(aws, trail, "kms_key_id") + unless(
        trail.get("enable_log_file_validation") is True,
        "enable_log_file_validation",
        "enable_log_file_validation must be true",
    )
    if bucket is not None:
        problems += unless(
            aws.refers_to(trail.get("s3_bucket_name"), bucket.address),
            "s3_bucket_name",
            f"s3_bucket_name must be {bucket.address}",
        )
    return observe(trail, problems, "encrypted, validated")


@static_check(
    "MR-043", "CloudTrail: own private, versioned, encrypted bucket; validated, encrypted logs"
)
def audit_trail(view: InfraView) -> Iterator[Observation]:
    bucket = declared_bucket(view, "audit-logs")
    yield from each_found(
        as_list(bucket),
        missing(view, f"aws_s3_bucket {contract.name(view.env, 'audit-logs')}"),
        lambda b: observe(b, private_bucket_problems(view, b), "private, versioned, encrypted"),
    )
    yield from each_found(
        view.aws.of_type("aws_cloudtrail"),
        missing(view, "aws_cloudtrail"),
        lambda trail: _trail(view, bucket, trail),
    )
