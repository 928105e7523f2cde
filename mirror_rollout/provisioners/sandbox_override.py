"""The sandbox-only ``*_override.tf``: the real provider, pointed at moto.

Terraform merges ``sandbox_override.tf`` into the run's working copy of the
root (never into ``infra/``). It holds the provider endpoints, fail-fast
retries, an ``assume_role`` into the environment's sandbox account, and one
entry per moto gap: ``count = 0`` for a resource moto cannot create,
``ignore_changes`` for attributes moto does not keep. Each entry carries its
reason as a comment; the same reasons become SKIPPED lines of the checklist.

Credentials never appear here (the file is part of the reviewed artifact):
the provider reads them from the environment, as it does on AWS.

Everything in this module is pure: the root's raw structure (python-hcl2) in,
text and gap records out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from mirror_rollout.errors import ConfigError
from mirror_rollout.provisioners.raw_hcl import load, root_files, unquote

OVERRIDE_FILE = "sandbox_override.tf"
#: The provider gives up after this many attempts, so a moto gap fails in seconds, not minutes.
SANDBOX_MAX_RETRIES = 2
#: Role assumed in an environment's own sandbox account (moto runs the requests there).
SANDBOX_ROLE = "mirror-rollout-sandbox"

#: Provider endpoint keys pointed at moto (hashicorp/aws 5.x names). Broad on purpose:
#: any root planned on the sandbox must never reach a real AWS endpoint.
ENDPOINT_SERVICES: tuple[str, ...] = (
    "acm",
    "apigateway",
    "backup",
    "cloudformation",
    "cloudtrail",
    "cloudwatch",
    "dynamodb",
    "ec2",
    "ecr",
    "events",
    "iam",
    "kinesis",
    "kms",
    "lambda",
    "logs",
    "rds",
    "route53",
    "s3",
    "secretsmanager",
    "sns",
    "sqs",
    "ssm",
    "sts",
)


@dataclass(frozen=True)
class MotoGap:
    """Something moto cannot do that the provider asks of it, and how the override avoids it."""

    resource_type: str
    kind: Literal["exclude", "ignore"]
    moto_behaviour: str
    attributes: tuple[str, ...] = ()

    @property
    def consequence(self) -> str:
        if self.kind == "exclude":
            return "not created on the sandbox (count = 0); planned and applied on AWS"
        return f"changes to {', '.join(self.attributes)} ignored on the sandbox"


#: Measured with moto 5.2.5 and hashicorp/aws 5.100.0 (see README, "What the sandbox cannot show").
MOTO_GAPS: tuple[MotoGap, ...] = (
    MotoGap(
        "aws_s3_bucket_logging",
        "exclude",
        "moto's PutBucketLogging answers HTTP 500: its log-permission check "
        "(_log_permissions_enabled_policy) expects every statement of the target "
        "bucket's policy to have a Principal map, and the audit bucket's policy has Principal \"*\"",
    ),
    MotoGap(
        "aws_backup_selection",
        "exclude",
        "moto's CreateBackupSelection answers HTTP 500: "
        '"The create_backup_selection action has not been implemented"',
    ),
    MotoGap(
        "aws_backup_vault",
        "ignore",
        "moto keeps the tags of Backup vaults but its ListTags reads the ARN as the "
        "next-to-last path segment: boto3 asks GET /tags/{arn}/, the provider's Go SDK "
        "GET /tags/{arn} (no final slash), which moto answers with no tags, so every "
        "re-plan would show tags_all drift",
        ("tags", "tags_all"),
    ),
    MotoGap(
        "aws_backup_plan",
        "ignore",
        "moto keeps the tags of Backup plans but its ListTags reads the ARN as the "
        "next-to-last path segment: boto3 asks GET /tags/{arn}/, the provider's Go SDK "
        "GET /tags/{arn} (no final slash), which moto answers with no tags, so every "
        "re-plan would show tags_all drift",
        ("tags", "tags_all"),
    ),
)


class SandboxGap(BaseModel):
    """One gap as it applies to one resource of the root planned on the sandbox."""

    address: str
    kind: Literal["exclude", "ignore"]
    attributes: list[str] = []
    moto_behaviour: str
    consequence: str


# -- the root's raw structure ---------------------------------------------------------
@dataclass(frozen=True)
class RawResource:
    type: str
    name: str
    file: str
    repetition: Literal["count", "for_each"] | None
    ignore_changes: tuple[str, ...]

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"


@dataclass(frozen=True)
class RawRoot:
    """What the override needs to know of a root: its resources and aliased aws providers."""

    resources: tuple[RawResource, ...]
    aws_aliases: tuple[str, ...]


def read_root(directory: Path) -> RawRoot:
    """Resources and aliased ``aws`` providers of the ``.tf`` files in ``directory`` (python-hcl2)."""
    resources: list[RawResource] = []
    aliases: list[str] = []
    for path in root_files(directory):
        document = load(path)
        for block in document.get("resource", []):
            for rtype, named in block.items():
                if rtype.startswith("__"):
                    continue
                for name, body in named.items():
                    if name.startswith("__"):
                        continue
                    lifecycle = (body.get("lifecycle") or [{}])[0]
                    ignored = lifecycle.get("ignore_changes") or []
                    if isinstance(ignored, str):  # `all`
                        ignored = [ignored]
                    repetition: Literal["count", "for_each"] | None = (
                        "count" if "count" in body else "for_each" if "for_each" in body else None
                    )
                    resources.append(
                        RawResource(
                            unquote(rtype),
                            unquote(name),
                            path.name,
                            repetition,
                            tuple(unquote(i) for i in ignored),
                        )
                    )
        for block in document.get("provider", []):
            for label, body in block.items():
                if unquote(label) == "aws" and isinstance(body, dict) and body.get("alias"):
                    aliases.append(unquote(body["alias"]))
    return RawRoot(tuple(resources), tuple(dict.fromkeys(aliases)))


# -- rendering -----------------------------------------------------------------------
def gaps_for(
    root: RawRoot, gaps: Iterable[MotoGap] = MOTO_GAPS
) -> list[tuple[RawResource, MotoGap]]:
    by_type = {g.resource_type: g for g in gaps}
    return [(r, by_type[r.type]) for r in root.resources if r.type in by_type]


def sandbox_gaps(root: RawRoot, gaps: Iterable[MotoGap] = MOTO_GAPS) -> list[SandboxGap]:
    return [
        SandboxGap(
            address=r.address,
            kind=g.kind,
            attributes=list(g.attributes),
            moto_behaviour=g.moto_behaviour,
            consequence=g.consequence,
        )
        for r, g in gaps_for(root, gaps)
    ]


def _q(value: str) -> str:
    return json.dumps(value)


def _comment(text: str, indent: str = "") -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) > 88:
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return [f"{indent}# {part}" for part in lines]


def _provider_block(
    endpoint: str, alias: str | None, assume_role_arn: str | None, region: str | None
) -> list[str]:
    lines = ['provider "aws" {']
    if alias:
        lines.append(f"  alias = {_q(alias)}")
    if region and not alias:
        lines.append(f"  region = {_q(region)}")
    lines += [
        "  s3_use_path_style           = true",
        "  skip_credentials_validation = true",
        "  skip_metadata_api_check     = true",
        f"  max_retries                 = {SANDBOX_MAX_RETRIES}",
    ]
    if assume_role_arn:
        lines += [
            "  # moto runs every request made with these credentials in the role's account.",
            "  assume_role {",
            f"    role_arn     = {_q(assume_role_arn)}",
            '    session_name = "mirror-rollout-sandbox"',
            "  }",
        ]
    lines.append("  endpoints {")
    width = max(len(s) for s in ENDPOINT_SERVICES)
    lines += [f"    {s:<{width}} = {_q(endpoint)}" for s in ENDPOINT_SERVICES]
    lines += ["  }", "}"]
    return lines


def render_override(
    root: RawRoot,
    endpoint: str,
    *,
    assume_role_arn: str | None = None,
    gaps: Iterable[MotoGap] = MOTO_GAPS,
) -> str:
    """The text of ``sandbox_override.tf`` for ``root`` on the moto server at ``endpoint``."""
    from urllib.parse import urlparse

    from mirror_rollout.aws import LOOPBACK

    if urlparse(endpoint).hostname not in LOOPBACK:
        raise ConfigError(
            f"the sandbox override needs a loopback moto endpoint, not {endpoint!r}",
            "run `mirror-rollout sandbox up` and use the AWS_ENDPOINT_URL it exports",
        )
    lines = [
        "# Generated by mirror-rollout for the sandbox backend; never committed under infra/.",
        "# Credentials come from the environment (never from this file, which reviewers read).",
        "",
    ]
    lines += _provider_block(endpoint, None, assume_role_arn, None)
    for alias in root.aws_aliases:
        lines += ["", *_provider_block(endpoint, alias, assume_role_arn, None)]
    for resource, gap in gaps_for(root, gaps):
        lines += ["", *_comment(f"moto gap: {gap.moto_behaviour}.")]
        lines.append(f'resource "{resource.type}" "{resource.name}" {{')
        if gap.kind == "exclude":
            lines.append("  for_each = {}" if resource.repetition == "for_each" else "  count = 0")
        else:
            ignored = list(dict.fromkeys([*resource.ignore_changes, *gap.attributes]))
            lines += [
                "  lifecycle {",
                f"    ignore_changes = [{', '.join(ignored)}]",
                "  }",
            ]
        lines.append("}")
    return "\n".join(lines) + "\n"


def backend_config(endpoint: str) -> dict[str, Any]:
    """``-backend-config`` values that keep the S3 backend (state + lock table) on moto."""
    return {
        "endpoints": {"s3": endpoint, "dynamodb": endpoint, "sts": endpoint, "iam": endpoint},
        "use_path_style": True,
        "skip_credentials_validation": True,
        "skip_requesting_account_id": True,
        "skip_metadata_api_check": True,
        "skip_region_validation": True,
    }


def excluded(gaps: Iterable[SandboxGap]) -> Mapping[str, str]:
    return {g.address: g.moto_behaviour for g in gaps if g.kind == "exclude"}
