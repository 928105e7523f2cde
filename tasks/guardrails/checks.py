"""Static guardrails: small checks with ids over the raw structure of infra/ (python-hcl2).

They run before any plan and read what the files say: which blocks exist, which
literal settings they hold, which resource an argument refers to, what the tfvars
set. Each failing result names the file:line and the resource. Values only
Terraform can compute (names, thresholds, windows, tags) are checked on the plan
JSON by ``tasks.guardrails.plan_checks``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mirror_rollout import contract
from mirror_rollout.errors import ConfigError
from mirror_rollout.results import CheckResult
from tasks.data_plane.checks import TableShape, mismatches
from tasks.data_plane.spec import SPEC_PATH, load_data_plane
from tasks.guardrails.common import (
    NONCE_OWNERSHIP,
    Check,
    Observation,
    Registry,
    as_list,
    dashboard_metrics,
    declares_nonce_version,
    drill_grant_problems,
    policy_problems,
    run_checks,
    strings,
    trust_problems,
)
from tasks.guardrails.common import glob_match as _glob
from tasks.guardrails.view import Block, InfraView, ModuleView

__all__ = [
    "REGISTRY",
    "Guardrail",
    "as_list",
    "dashboard_metrics",
    "evaluate_guardrails",
    "run_static_checks",
]

REGISTRY = Registry()
guardrail = REGISTRY.register


@dataclass(frozen=True)
class At:
    """A problem's file:line when it is not an argument of the observed block (a companion's)."""

    location: str


Problem = tuple[str | At, str]  # (argument path in the block, or At(file:line); message)


class Guardrail(Check[InfraView]):
    @staticmethod
    def observe(block: Block, problems: list[Problem], ok_message: str) -> Iterator[Observation]:
        """One observation per (argument path, problem), blamed on that argument's line."""
        if not problems:
            yield Observation(block.address, block.location, True, ok_message)
        for where, problem in problems:
            location = where.location if isinstance(where, At) else block.at(where)
            yield Observation(block.address, location, False, problem)


def missing(view: InfraView, what: str) -> Observation:
    return Observation(what, view.tfvars_dir, False, f"{what} is not declared")


def is_cmk(module: ModuleView, value: Any, key_types=("aws_kms_key", "aws_kms_alias")) -> bool:
    """A reference to a KMS key (or alias) of this configuration, or a literal KMS ARN."""
    if isinstance(value, str) and value.startswith("arn:") and ":kms:" in value:
        return True
    return any(a.split(".")[0] in key_types for a in module.references(value))


def is_true(module: ModuleView, value: Any) -> tuple[bool, str]:
    """A literal true, or a bare ${var.x} whose tfvars value (or default) is true."""
    resolved = module.resolve(value)
    if resolved is True:
        return True, ""
    return False, f"is {shown(value)}" + (f" (= {shown(resolved)})" if resolved != value else "")


def shown(value: Any) -> str:
    """A value as it reads in HCL (true, null, "text")."""
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(str(value)) if isinstance(value, str) else repr(value)


# -- DynamoDB ---------------------------------------------------------------------
def _tables(view: InfraView) -> Iterator[tuple[contract.TableSpec, Block | None]]:
    for spec in contract.TABLES:
        yield spec, view.aws.get(spec.address)


@guardrail
class TablePitr(Guardrail):
    id = "MR-001"
    title = "Point-in-time recovery on every DynamoDB table"

    def inspect(self, view):
        for spec, table in _tables(view):
            if table is None:
                yield missing(view, spec.address)
                continue
            if not table.blocks("point_in_time_recovery"):
                yield from self.observe(table, [("", "no point_in_time_recovery block")], "")
                continue
            raw = table.block("point_in_time_recovery").get("enabled")
            ok, why = is_true(view.aws, raw)
            if not ok and isinstance(raw, str) and raw.startswith("${var."):
                name = raw[len("${var.") : -1]
                yield Observation(
                    table.address,
                    view.aws.var_location(name),
                    False,
                    f"point_in_time_recovery.enabled {why}: set {name} = true for {view.env}",
                )
                continue
            yield from self.observe(
                table,
                []
                if ok
                else [
                    (
                        "point_in_time_recovery.enabled",
                        f"point_in_time_recovery.enabled {why}, must be true",
                    )
                ],
                "PITR enabled",
            )


@guardrail
class TableEncryption(Guardrail):
    id = "MR-002"
    title = "Every DynamoDB table encrypted with the project CMK"

    def inspect(self, view):
        for spec, table in _tables(view):
            if table is None:
                yield missing(view, spec.address)
                continue
            sse = table.block("server_side_encryption")
            problems = []
            if not is_true(view.aws, sse.get("enabled"))[0]:
                problems.append(
                    (
                        "server_side_encryption.enabled",
                        "server_side_encryption.enabled must be true",
                    )
                )
            if not is_cmk(view.aws, sse.get("kms_key_arn")):
                problems.append(
                    (
                        "server_side_encryption.kms_key_arn",
                        "server_side_encryption.kms_key_arn must refer to the project CMK "
                        "(aws_kms_key.<name>.arn)",
                    )
                )
            yield from self.observe(table, problems, "SSE with the project CMK")


#: Where a data-plane mismatch is blamed in a table block, by its aspect. Encryption is
#: MR-002's (same rule, one failure), so MR-009 leaves the "sse" aspect out.
_ASPECT_ARGUMENT = {"keys": "hash_key", "index": "global_secondary_index", "ttl": "ttl"}


def table_shape(view: InfraView, table: Block) -> TableShape:
    """What a raw table block declares, in the data-plane contract's terms (no evaluation)."""
    types = {a.get("name"): a.get("type") for a in table.blocks("attribute")}

    def keyed(*names: Any) -> dict[str, str]:
        return {str(n): str(types.get(n, "?")) for n in names if n}

    ttl = table.block("ttl")
    return TableShape(
        name=table.address,
        keys=keyed(table.get("hash_key"), table.get("range_key")),
        indexes={
            g.get("name"): (keyed(g.get("hash_key"), g.get("range_key")), g.get("projection_type"))
            for g in table.blocks("global_secondary_index")
        },
        ttl=ttl.get("attribute_name"),
        ttl_status=("ENABLED" if is_true(view.aws, ttl.get("enabled"))[0] else "DISABLED")
        if ttl
        else None,
    )


@guardrail
class OracleAccessPatterns(Guardrail):
    id = "MR-009"
    title = "Tables serve the Oracle's access patterns (infra/data-plane.yaml)"

    def inspect(self, view):
        try:
            plane = load_data_plane(view.root)
        except ConfigError as exc:
            yield Observation(str(SPEC_PATH), str(SPEC_PATH), False, exc.line())
            return
        specs = {s.key: s for s in contract.TABLES}
        for short, use in plane.tables.items():
            table = view.aws.get(specs[short].address)
            if table is None:
                yield missing(view, specs[short].address)
                continue
            shape = table_shape(view, table)
            problems: list[Problem] = list(
                dict.fromkeys(
                    (_ASPECT_ARGUMENT[aspect], message)
                    for p in plane.patterns
                    if p.table == short
                    for aspect, message in mismatches(p, use, shape)
                    if aspect in _ASPECT_ARGUMENT
                )
            )
            ids = ", ".join(p.id for p in plane.patterns if p.table == short)
            yield from self.observe(table, problems, f"serves {ids}")


# -- KMS ------------------------------------------------------------------------------
@guardrail
class KeyRotation(Guardrail):
    id = "MR-004"
    title = "KMS key rotation on and an explicit key policy"

    def inspect(self, view):
        keys = view.aws.of_type("aws_kms_key")
        if len(keys) != 1:
            yield Observation(
                "aws_kms_key",
                view.tfvars_dir,
                False,
                f"expected exactly one aws_kms_key (the project CMK), found {len(keys)}",
            )
            return
        key = keys[0]
        problems = []
        if key.get("enable_key_rotation") is not True:
            problems.append(("enable_key_rotation", "enable_key_rotation must be true"))
        if not isinstance(key.document("policy"), dict):
            problems.append(
                ("policy", "an explicit key policy (policy = jsonencode({...})) is required")
            )
        yield from self.observe(key, problems, "rotation on, explicit key policy")


# -- nonce ------------------------------------------------------------------------------
@guardrail
class NonceNotDeclared(Guardrail):
    id = "MR-010"
    title = "No aws_ssm_parameter declares a nonce version (runtime data of the nonce flows)"

    def inspect(self, view):
        params = view.aws.of_type("aws_ssm_parameter")
        for param in params:
            name = view.aws.resolve(param.get("name"))
            if declares_nonce_version(name, param.name):
                yield Observation(
                    param.address,
                    param.at("name"),
                    False,
                    f"{param.address} declares {name!r}: {NONCE_OWNERSHIP}; remove the resource "
                    "(where it was applied, add a removed { lifecycle { destroy = false } } block "
                    "so Terraform forgets it without deleting the live version)",
                )
            else:
                yield Observation(param.address, param.location, True, f"{name!r} is no nonce")
        if not params:
            yield Observation(
                "aws_ssm_parameter",
                view.tfvars_dir,
                True,
                f"none of {len(view.aws.module.resources)} resources is an aws_ssm_parameter",
            )


_COMMENT = re.compile(r"^\s*(#|//)")


@guardrail
class LegacyNoncePath(Guardrail):
    id = "MR-011"
    title = "The retired nonce path guardian/{env}/redaction/nonce/vN appears nowhere"

    def inspect(self, view):
        files = [*view.aws.module.files, *(view.gcp.module.files if view.gcp else [])]
        files += [t.file for t in view.tfvars.values()]
        for shown in files:
            text = (view.root / shown).read_text(encoding="utf-8")
            for number, line in enumerate(text.splitlines(), 1):
                match = contract.NONCE_LEGACY_NAME.search(line)
                if match and not _COMMENT.match(line):
                    yield Observation(
                        shown,
                        f"{shown}:{number}",
                        False,
                        f"{match.group(0)!r} uses the retired guardian/{{env}}/redaction/nonce/vN "
                        f"form; nonce versions are /guardian/{{env}}/redaction_nonce_v{{N}}",
                    )
        yield Observation(
            "infra/", view.tfvars_dir, True, f"{len(files)} files read for the retired nonce path"
        )


_HEX64 = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")


@guardrail
class NoSecretInTerraform(Guardrail):
    id = "MR-012"
    title = "No nonce or secret generated or written by Terraform (random_*, 64-hex literals)"

    def inspect(self, view):
        for resource in view.aws.module.resources:
            if resource.type.startswith("random_"):
                yield Observation(
                    resource.address,
                    resource.location,
                    False,
                    f"{resource.type} would put a secret into Terraform state; "
                    "the nonce flows generate nonces",
                )
            for text in strings(resource.body):
                if _HEX64.search(text):
                    yield Observation(
                        resource.address,
                        resource.location,
                        False,
                        "holds a 64-hex literal that looks like a nonce",
                    )
        yield Observation(
            "infra/terraform",
            view.tfvars_dir,
            True,
            f"{len(view.aws.module.resources)} resources hold no generated secret",
        )


# -- alarms and SNS ----------------------------------------------------------------
def _topic(view: InfraView) -> Block | None:
    expected = contract.name(view.env, "ops-alerts")
    return next(
        (
            t
            for t in view.aws.of_type("aws_sns_topic")
            if view.aws.resolve(t.get("name")) == expected
        ),
        None,
    )


@guardrail
class AlarmActions(Guardrail):
    id = "MR-022"
    title = "Every alarm notifies the ops SNS topic"

    def inspect(self, view):
        topic = _topic(view)
        if topic is None:
            yield missing(view, f"aws_sns_topic {contract.name(view.env, 'ops-alerts')}")
            return
        alarms = view.aws.of_type("aws_cloudwatch_metric_alarm")
        if not alarms:
            yield missing(view, "aws_cloudwatch_metric_alarm")
        for alarm in alarms:
            ok = view.aws.refers_to(alarm.get("alarm_actions"), topic.address)
            yield from self.observe(
                alarm,
                []
                if ok
                else [("alarm_actions", f"alarm_actions must include {topic.address}.arn")],
                f"notifies {topic.address}",
            )


@guardrail
class TopicEncryption(Guardrail):
    id = "MR-023"
    title = "Ops SNS topic encrypted with the project CMK"

    def inspect(self, view):
        topic = _topic(view)
        if topic is None:
            yield missing(view, f"aws_sns_topic {contract.name(view.env, 'ops-alerts')}")
            return
        ok = is_cmk(view.aws, topic.get("kms_master_key_id"))
        yield from self.observe(
            topic,
            []
            if ok
            else [("kms_master_key_id", "kms_master_key_id must refer to the project CMK")],
            "encrypted with the CMK",
        )


# -- dashboard -----------------------------------------------------------------------
@guardrail
class DashboardWidgets(Guardrail):
    id = "MR-030"
    title = "Dashboard covers capacity, errors, SSM failures, circuit breaker, alarm status"

    def inspect(self, view):
        env, aws = view.env, view.aws
        boards = aws.of_type("aws_cloudwatch_dashboard")
        if not boards:
            yield missing(view, "aws_cloudwatch_dashboard")
            return
        for board in boards:
            body = aws.resolve(board.document("dashboard_body"))
            if not isinstance(body, dict):
                yield from self.observe(
                    board,
                    [("dashboard_body", "dashboard_body must be jsonencode({ widgets = [...] })")],
                    "",
                )
                continue
            rows, alarm_widgets = dashboard_metrics(body)
            problems = []
            for namespace, metric in contract.DASHBOARD_METRICS:
                namespace = namespace.format(env=env)
                if metric.startswith("Consumed"):
                    for spec in contract.TABLES:
                        if not any(
                            (ns, m) == (namespace, metric)
                            and (t == spec.name(env) or aws.refers_to(t, spec.address))
                            for ns, m, t in rows
                        ):
                            problems.append(f"no {metric} row for {spec.address}")
                elif not any(r[0] == namespace and r[1] == metric for r in rows):
                    problems.append(f"no {namespace} {metric} widget")
            alarms = {a.address for a in aws.of_type("aws_cloudwatch_metric_alarm")}
            if not any(alarms <= aws.references(w.get("alarms")) for w in alarm_widgets):
                problems.append("no alarm-status widget listing every aws_cloudwatch_metric_alarm")
            yield from self.observe(
                board,
                [("dashboard_body", p) for p in problems],
                f"{len(rows)} metric rows, {len(alarm_widgets)} alarm widget(s)",
            )


# -- S3 --------------------------------------------------------------------------------
def _bucket(view: InfraView, suffix: str) -> Block | None:
    expected = contract.name(view.env, suffix)
    return next(
        (
            b
            for b in view.aws.of_type("aws_s3_bucket")
            if view.aws.resolve(b.get("bucket")) == expected
        ),
        None,
    )


def companions(view: InfraView, rtype: str, bucket: Block) -> list[Block]:
    """The ``rtype`` resources whose ``bucket`` argument is ``bucket``."""
    name = view.aws.resolve(bucket.get("bucket"))
    return [
        r
        for r in view.aws.of_type(rtype)
        if view.aws.refers_to(r.get("bucket"), bucket.address)
        or view.aws.resolve(r.get("bucket")) == name
    ]


def versioning_problems(view: InfraView, bucket: Block) -> list[Problem]:
    configs = companions(view, "aws_s3_bucket_versioning", bucket)
    if not configs:
        return [("bucket", "no aws_s3_bucket_versioning for this bucket")]
    config = configs[0]
    status = config.block("versioning_configuration").get("status")
    if status == "Enabled":
        return []
    return [
        (
            At(config.at("versioning_configuration.status")),
            f"{config.address}: versioning status is {status!r}, must be Enabled",
        )
    ]


def encryption_problems(view: InfraView, bucket: Block) -> list[Problem]:
    configs = companions(view, "aws_s3_bucket_server_side_encryption_configuration", bucket)
    if not configs:
        return [("bucket", "no aws_s3_bucket_server_side_encryption_configuration")]
    sse = configs[0]
    path = "rule.apply_server_side_encryption_by_default"
    default = (sse.block("rule").get("apply_server_side_encryption_by_default") or [{}])[0]
    problems: list[Problem] = []
    if default.get("sse_algorithm") != "aws:kms":
        problems.append(
            (
                At(sse.at(f"{path}.sse_algorithm")),
                f"{sse.address}: sse_algorithm is {default.get('sse_algorithm')!r}, "
                "must be aws:kms",
            )
        )
    if not is_cmk(view.aws, default.get("kms_master_key_id")):
        problems.append(
            (
                At(sse.at(f"{path}.kms_master_key_id")),
                f"{sse.address}: kms_master_key_id must refer to the project CMK",
            )
        )
    return problems


PUBLIC_ACCESS_FLAGS = (
    "block_public_acls",
    "block_public_policy",
    "ignore_public_acls",
    "restrict_public_buckets",
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


class _BaselinesBucketCheck(Guardrail):
    aspect: ClassVar[Any]

    def inspect(self, view):
        bucket = _bucket(view, "baselines")
        if bucket is None:
            yield missing(view, f"aws_s3_bucket {contract.name(view.env, 'baselines')}")
            return
        yield from self.observe(bucket, type(self).aspect(view, bucket), self.title)


@guardrail
class BaselinesVersioning(_BaselinesBucketCheck):
    id = "MR-040"
    title = "Baselines bucket versioned"
    aspect = versioning_problems


@guardrail
class BaselinesEncryption(_BaselinesBucketCheck):
    id = "MR-041"
    title = "Baselines bucket SSE-KMS with the project CMK"
    aspect = encryption_problems


@guardrail
class BaselinesPublicAccess(_BaselinesBucketCheck):
    id = "MR-042"
    title = "Baselines bucket blocks all four kinds of public access"
    aspect = public_access_problems


@guardrail
class AuditTrail(Guardrail):
    id = "MR-043"
    title = "CloudTrail: own private, versioned, encrypted bucket; validated, encrypted logs"

    def inspect(self, view):
        bucket = _bucket(view, "audit-logs")
        if bucket is None:
            yield missing(view, f"aws_s3_bucket {contract.name(view.env, 'audit-logs')}")
        else:
            problems = (
                versioning_problems(view, bucket)
                + encryption_problems(view, bucket)
                + public_access_problems(view, bucket)
            )
            yield from self.observe(bucket, problems, "private, versioned, encrypted")
        trails = view.aws.of_type("aws_cloudtrail")
        if not trails:
            yield missing(view, "aws_cloudtrail")
        for trail in trails:
            problems = []
            if not is_cmk(view.aws, trail.get("kms_key_id")):
                problems.append(("kms_key_id", "kms_key_id must refer to the project CMK"))
            if trail.get("enable_log_file_validation") is not True:
                problems.append(
                    ("enable_log_file_validation", "enable_log_file_validation must be true")
                )
            if bucket is not None and not view.aws.refers_to(
                trail.get("s3_bucket_name"), bucket.address
            ):
                problems.append(("s3_bucket_name", f"s3_bucket_name must be {bucket.address}"))
            yield from self.observe(trail, problems, "encrypted, validated")


# -- IAM / OIDC --------------------------------------------------------------------------
@guardrail
class DeployRoleTrust(Guardrail):
    id = "MR-051"
    title = "Deploy role trusted only by repo:{org}/{repo}:* (trust policy as written)"

    def inspect(self, view):
        aws = view.aws
        org, repo = aws.var("github_org", ""), aws.var("github_repo", "")
        providers = {p.address for p in aws.of_type("aws_iam_openid_connect_provider")}
        roles = [
            r
            for r in aws.of_type("aws_iam_role")
            if "github" in r.address or aws.references(r.get("assume_role_policy")) & providers
        ]
        if not roles:
            yield missing(view, "aws_iam_role trusted by GitHub OIDC")
        for role in roles:
            policy = aws.resolve(role.document("assume_role_policy"))
            problems = [("assume_role_policy", p) for p in trust_problems(policy, org, repo)]
            yield from self.observe(role, problems, f"repo:{org}/{repo}:*")


IDENTITY_POLICY_TYPES = (
    "aws_iam_role_policy",
    "aws_iam_policy",
    "aws_iam_user_policy",
    "aws_iam_group_policy",
)


@guardrail
class IamLeastPrivilege(Guardrail):
    id = "MR-052"
    title = "IAM policies as written: no * resource for restrictable actions, no wildcard actions"

    def inspect(self, view):
        policies = [p for t in IDENTITY_POLICY_TYPES for p in view.aws.of_type(t)]
        if not policies:
            yield missing(view, "aws_iam_role_policy")
        for policy in policies:
            document = policy.document("policy")
            if not isinstance(document, dict):
                yield Observation(
                    policy.address,
                    policy.at("policy"),
                    None,
                    "policy is not written as jsonencode({...}) or JSON; the plan check "
                    "MR-055 evaluates it",
                )
                continue
            problems = [("policy", p) for p in policy_problems(document)]
            yield from self.observe(policy, problems, "least privilege")


@guardrail
class NonceReadAccess(Guardrail):
    id = "MR-053"
    title = (
        "The deploy role may read /guardian/{env}/redaction_nonce_v* (Terraform owns the access)"
    )

    def inspect(self, view):
        wanted = contract.nonce_parameter(view.env, 1)
        policies = [p for t in IDENTITY_POLICY_TYPES for p in view.aws.of_type(t)]
        granted = []
        for policy in policies:
            document = view.aws.resolve(policy.document("policy"))
            for statement in as_list((document or {}).get("Statement")):
                actions = map(str, as_list(statement.get("Action")))
                if statement.get("Effect") != "Allow" or not any(
                    _glob(a, "ssm:GetParameter") for a in actions
                ):
                    continue
                for resource in map(str, as_list(statement.get("Resource"))):
                    pattern = resource.partition(":parameter")[2]
                    if resource == "*" or (pattern and _glob(pattern, wanted)):
                        granted.append((policy, statement.get("Sid", "?")))
        if granted:
            policy, sid = granted[0]
            yield Observation(
                policy.address, policy.at("policy"), True, f"statement {sid} covers {wanted}"
            )
        else:
            blamed = policies[0] if policies else None
            yield Observation(
                blamed.address if blamed else "aws_iam_role_policy",
                blamed.at("policy") if blamed else view.tfvars_dir,
                False,
                f"no policy allows ssm:GetParameter on {wanted} (…_v*): the pipeline could not "
                "read the nonce the nonce flows write",
            )


@guardrail
class RestoreDrillGrants(Guardrail):
    id = "MR-057"
    title = (
        "Deploy role: restores from the three tables only; describes, reads and deletes only "
        "restore-drill copies"
    )

    def inspect(self, view):
        policies = [
            p
            for t in IDENTITY_POLICY_TYPES
            for p in view.aws.of_type(t)
            if view.aws.refers_to(p.get("role"), "aws_iam_role.github_deploy")
        ]
        if not policies:
            yield missing(view, "aws_iam_role_policy of aws_iam_role.github_deploy")
        for policy in policies:
            document = view.aws.resolve(policy.document("policy"))
            problems = [("policy", p) for p in drill_grant_problems(view.env, document)]
            yield from self.observe(policy, problems, "restore drill scoped to its copies")


# -- state, variables, backup, lifecycle ---------------------------------------------
@guardrail
class StateBackend(Guardrail):
    id = "MR-060"
    title = "S3 state backend encrypted, locked, with a workspace key prefix"

    def inspect(self, view):
        backend = view.aws.module.backend
        if backend is None:
            yield Observation(
                "terraform.backend",
                view.tfvars_dir,
                False,
                "no backend block: state would be local",
            )
            return
        kind = backend.type
        c = backend.body
        problems = []
        if kind != "s3":
            problems.append(("", f"backend is {kind!r}, expected s3"))
        if c.get("encrypt") is not True:
            problems.append(("encrypt", "encrypt must be true"))
        if not (c.get("dynamodb_table") or c.get("use_lockfile") is True):
            problems.append(("", "a lock (dynamodb_table or use_lockfile) is required"))
        if not c.get("workspace_key_prefix"):
            problems.append(
                ("", "workspace_key_prefix must be set so each environment has its own state")
            )
        problems += [
            ("", f"{key} must be set") for key in ("bucket", "key", "region") if not c.get(key)
        ]
        subject = f'backend "{kind}"'
        if not problems:
            yield Observation(
                subject,
                backend.location,
                True,
                f"s3://{c.get('bucket')}/{c.get('workspace_key_prefix')}/…",
            )
        for path, problem in problems:
            yield Observation(subject, backend.at(path), False, problem)


#: Variables whose value is allowed to differ between environments.
PER_ENVIRONMENT = frozenset(
    {"environment", "kms_deletion_window_days", "alert_email", "tags", "backup_retention_days"}
)


@guardrail
class TfvarsConsistency(Guardrail):
    id = "MR-061"
    title = "Every <env>.tfvars valid and differing from the others only where it should"

    def inspect(self, view):
        declared = view.aws.module.variables
        required = {n for n, b in declared.items() if "default" not in b.body}
        for env in ("staging", "production"):
            if env not in view.tfvars:
                yield Observation(
                    f"{env}.tfvars", view.tfvars_dir, False, f"{env}.tfvars is missing"
                )
        for env, tfvars in sorted(view.tfvars.items()):
            values = tfvars.values
            if values.get("environment") != env:
                yield Observation(
                    tfvars.file,
                    tfvars.at("environment"),
                    False,
                    f"environment = {values.get('environment')!r}, expected {env!r}",
                )
            for key in sorted(values.keys() - declared.keys()):
                yield Observation(
                    tfvars.file,
                    tfvars.at(key),
                    False,
                    f"{key} is not a variable of infra/terraform (typo?)",
                )
            for key in sorted(required - values.keys()):
                yield Observation(
                    tfvars.file,
                    declared[key].location,
                    False,
                    f"variable {key} has no default and {tfvars.file} does not set it",
                )
            yield Observation(tfvars.file, tfvars.file, True, "valid")
        reference = view.tfvars.get("production")
        for _, tfvars in sorted(view.tfvars.items()):
            if reference is None or tfvars is reference:
                continue
            for key in sorted((tfvars.values.keys() | reference.values.keys()) - PER_ENVIRONMENT):
                if tfvars.values.get(key) != reference.values.get(key):
                    yield Observation(
                        f"{tfvars.file} ↔ {reference.file}",
                        tfvars.at(key) if key in tfvars.values else reference.at(key),
                        False,
                        f"{key} = {shown(tfvars.values.get(key, '(unset)'))} here but "
                        f"{shown(reference.values.get(key, '(unset)'))} at {reference.at(key)}; only "
                        f"{', '.join(sorted(PER_ENVIRONMENT))} may differ between environments",
                    )


@guardrail
class BackupCoverage(Guardrail):
    id = "MR-062"
    title = (
        "AWS Backup: CMK-encrypted vault, a plan with retention, a selection of the three tables"
    )

    def inspect(self, view):
        aws = view.aws
        vaults, plans, selections = (
            aws.of_type(t) for t in ("aws_backup_vault", "aws_backup_plan", "aws_backup_selection")
        )
        for what, found in (
            ("aws_backup_vault", vaults),
            ("aws_backup_plan", plans),
            ("aws_backup_selection", selections),
        ):
            if not found:
                yield missing(view, what)
        for vault in vaults:
            yield from self.observe(
                vault,
                []
                if is_cmk(aws, vault.get("kms_key_arn"))
                else [("kms_key_arn", "kms_key_arn must refer to the project CMK")],
                "CMK-encrypted vault",
            )
        for plan in plans:
            rules = plan.blocks("rule")
            problems = [] if rules else [("", "the plan has no rule")]
            for i, rule in enumerate(rules):
                path = "rule" if i == 0 else f"rule[{i}]"
                if not (rule.get("lifecycle") or [{}])[0].get("delete_after"):
                    problems.append(
                        (
                            path,
                            f"rule {rule.get('rule_name')!r}: lifecycle.delete_after is required",
                        )
                    )
                if not aws.refers_to(rule.get("target_vault_name"), *(v.address for v in vaults)):
                    problems.append(
                        (
                            path,
                            f"rule {rule.get('rule_name')!r}: target_vault_name must refer to the vault",
                        )
                    )
            yield from self.observe(plan, problems, f"{len(rules)} rule(s) with retention")
        for selection in selections:
            chosen = aws.references(selection.get("resources"))
            lacking = [s.address for s in contract.TABLES if s.address not in chosen]
            yield from self.observe(
                selection,
                [("resources", f"does not select {a}") for a in lacking],
                "all three tables",
            )


#: Arguments the guardrails vouch for: ignoring their drift would void the guarantee.
GUARDED_ARGUMENTS = frozenset(
    {
        "point_in_time_recovery",
        "server_side_encryption",
        "kms_key_arn",
        "kms_key_id",
        "kms_master_key_id",
        "enable_key_rotation",
        "deletion_window_in_days",
        "policy",
        "assume_role_policy",
        "alarm_actions",
        "threshold",
        "period",
        "versioning_configuration",
        "rule",
        "enable_log_file_validation",
        "dashboard_body",
        "hash_key",
        "range_key",
        "ttl",
        "global_secondary_index",
        *PUBLIC_ACCESS_FLAGS,
    }
)


@guardrail
class LifecycleKeepsGuarantees(Guardrail):
    id = "MR-063"
    title = "No lifecycle.ignore_changes hides drift of a guarded setting"

    def inspect(self, view):
        resources = view.aws.module.resources + (view.gcp.module.resources if view.gcp else [])
        for resource in resources:
            lifecycle = resource.lifecycle()
            if not lifecycle or "ignore_changes" not in lifecycle:
                continue
            raw = lifecycle["ignore_changes"]
            ignored = {
                str(v).removeprefix("${").removesuffix("}").split(".")[0].split("[")[0]
                for v in as_list(raw)
            }
            hidden = sorted(ignored & (GUARDED_ARGUMENTS | {"all"}))
            yield from self.observe(
                resource,
                [("lifecycle.ignore_changes", f"ignore_changes hides drift of {hidden}")]
                if hidden
                else [],
                f"ignores {sorted(ignored)} only",
            )
        yield Observation(
            "lifecycle", view.tfvars_dir, True, f"{len(resources)} resources' lifecycle read"
        )


# -- GCP ----------------------------------------------------------------------------
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
        if value == "POINT_IN_TIME_RECOVERY_ENABLED":
            return []
        return [
            ("point_in_time_recovery_enablement", f"point_in_time_recovery_enablement is {value!r}")
        ]


@guardrail
class GcsBucketProtection(GcpGuardrail):
    id = "MR-071"
    title = "GCP: baselines bucket versioned, uniform access, public access prevention enforced"
    resource_type = "google_storage_bucket"

    def problems(self, gcp, resource):
        problems = []
        if resource.block("versioning").get("enabled") is not True:
            problems.append(("versioning.enabled", "versioning.enabled must be true"))
        if resource.get("uniform_bucket_level_access") is not True:
            problems.append(
                ("uniform_bucket_level_access", "uniform_bucket_level_access must be true")
            )
        if gcp.resolve(resource.get("public_access_prevention")) != "enforced":
            problems.append(
                ("public_access_prevention", 'public_access_prevention must be "enforced"')
            )
        return problems


@guardrail
class GcsCmek(GcpGuardrail):
    id = "MR-072"
    title = "GCP: baselines bucket encrypted with the project Cloud KMS key"
    resource_type = "google_storage_bucket"

    def problems(self, gcp, resource):
        key = resource.block("encryption").get("default_kms_key_name")
        if gcp.refers_to(key, *(k.address for k in gcp.of_type("google_kms_crypto_key"))):
            return []
        return [
            ("encryption", "encryption.default_kms_key_name must refer to the project crypto key")
        ]


@guardrail
class GcpKeyRotation(GcpGuardrail):
    id = "MR-073"
    title = "GCP: Cloud KMS key rotates at least every 90 days"
    resource_type = "google_kms_crypto_key"

    def problems(self, gcp, resource):
        period = str(gcp.resolve(resource.get("rotation_period")) or "")
        seconds = int(period[:-1]) if period.endswith("s") and period[:-1].isdigit() else None
        if seconds is not None and seconds <= 90 * 86400:
            return []
        return [("rotation_period", f"rotation_period {period!r} must be set and at most 7776000s")]


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


# -- running -------------------------------------------------------------------------
def run_static_checks(view: InfraView, only: Iterable[str] | None = None) -> list[CheckResult]:
    """Run every static guardrail (or ``only`` those ids) and return typed results."""
    return run_checks(REGISTRY, view, only)


def evaluate_guardrails(environment: str, root: Path | None = None) -> list[CheckResult]:
    """Read infra/ for ``environment`` and run every static guardrail (no Prefect involved)."""
    from mirror_rollout import PROJECT_ROOT
    from mirror_rollout.environments import parse_environment
    from tasks.guardrails.view import load_view

    base = Path(root or PROJECT_ROOT)
    return run_static_checks(load_view(parse_environment(environment, base), base))
