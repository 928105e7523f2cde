"""The audit trail: CloudTrail with validated, encrypted logs in its own private bucket."""

from __future__ import annotations

from mirror_rollout import contract
from tasks.guardrails.base import Guardrail, is_cmk, missing
from tasks.guardrails.common import guardrail, unless
from tasks.guardrails.families.s3 import declared_bucket, private_bucket_problems


@guardrail
class AuditTrail(Guardrail):
    id = "MR-043"
    title = "CloudTrail: own private, versioned, encrypted bucket; validated, encrypted logs"

    def inspect(self, view):
        aws = view.aws
        bucket = declared_bucket(view, "audit-logs")
        if bucket is None:
            yield missing(view, f"aws_s3_bucket {contract.name(view.env, 'audit-logs')}")
        else:
            problems = private_bucket_problems(view, bucket)
            yield from self.observe(bucket, problems, "private, versioned, encrypted")
        trails = aws.of_type("aws_cloudtrail")
        if not trails:
            yield missing(view, "aws_cloudtrail")
        for trail in trails:
            problems = unless(
                is_cmk(aws, trail.get("kms_key_id")),
                "kms_key_id",
                "kms_key_id must refer to the project CMK",
            ) + unless(
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
            yield from self.observe(trail, problems, "encrypted, validated")
