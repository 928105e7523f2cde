"""Static guardrails: small checks with ids over the evaluated Terraform.

Each check is a class registered with ``@guardrail``; ``inspect`` yields one
Observation per thing it looked at (ok or not). A check that finds nothing to
inspect fails: a guardrail never passes on absent evidence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mirror_rollout.hcl.values import Unknown

from mirror_rollout import contract
from mirror_rollout.results import CheckResult, Evidence, Severity, Status
from tasks.guardrails.view import InfraView, ResourceView


@dataclass
class Observation:
    subject: str  # resource address (or file) the observation is about
    location: str  # file:line
    ok: bool
    message: str


class Guardrail:
    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[Severity] = Severity.error
    cloud: ClassVar[str] = "aws"

    def inspect(self, view: InfraView) -> Iterable[Observation]:
        raise NotImplementedError

    # helpers for subclasses
    @staticmethod
    def observe(resource: ResourceView, problems: list[str], ok_message: str) -> Observation:
        return Observation(
            resource.address, resource.location, not problems, "; ".join(problems) or ok_message
        )


REGISTRY: dict[str, type[Guardrail]] = {}


def guardrail(cls: type[Guardrail]) -> type[Guardrail]:
    if cls.id in REGISTRY:
        raise ValueError(f"duplicate guardrail id {cls.id}")
    REGISTRY[cls.id] = cls
    return cls


# -- value helpers ---------------------------------------------------------------
def refers_to(value: Any, *prefixes: str) -> bool:
    """True if ``value`` is (known after apply from) an attribute of one of ``prefixes``."""
    return isinstance(value, Unknown) and any(value.ref.startswith(p + ".") for p in prefixes)


def is_cmk(value: Any) -> bool:
    """The project CMK: a reference to the aws_kms_key (or its alias) of this config, or its ARN."""
    if isinstance(value, str):
        return value.startswith("arn:") and ":kms:" in value
    return isinstance(value, Unknown) and value.ref.startswith(("aws_kms_key.", "aws_kms_alias."))


def structure(value: Any) -> Any:
    """A jsonencode()'d document as data, also when parts are known only after apply."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    if isinstance(value, Unknown):
        return value.detail
    return value


def as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def targets(value: Any, bucket: ResourceView) -> bool:
    """Does a companion's ``bucket`` argument point at ``bucket``?"""
    return refers_to(value, bucket.address) or value == bucket.config.get("bucket")


def companions(view: InfraView, rtype: str, bucket: ResourceView) -> list[ResourceView]:
    return [r for r in view.of_type(rtype) if targets(r.config.get("bucket"), bucket)]


def missing(view: InfraView, what: str, where: str) -> Observation:
    return Observation(what, where, False, f"{what} is not declared")


# -- DynamoDB ---------------------------------------------------------------------
def _tables(view: InfraView) -> Iterator[tuple[contract.TableSpec, ResourceView | None]]:
    for spec in contract.TABLES:
        yield spec, view.get(spec.address)


@guardrail
class TablePitr(Guardrail):
    id = "MR-001"
    title = "Point-in-time recovery on every DynamoDB table"

    def inspect(self, view):
        for spec, table in _tables(view):
            if table is None:
                yield missing(view, spec.address, view.tfvars_dir)
                continue
            enabled = table.block("point_in_time_recovery").get("enabled")
            problems = (
                []
                if enabled is True
                else [f"point_in_time_recovery.enabled is {enabled!r}, must be true"]
            )
            yield self.observe(table, problems, "PITR enabled")


@guardrail
class TableEncryption(Guardrail):
    id = "MR-002"
    title = "Every DynamoDB table encrypted with the project CMK"

    def inspect(self, view):
        for spec, table in _tables(view):
            if table is None:
                yield missing(view, spec.address, view.tfvars_dir)
                continue
            sse = table.block("server_side_encryption")
            problems = []
            if sse.get("enabled") is not True:
                problems.append("server_side_encryption.enabled must be true")
            if not is_cmk(sse.get("kms_key_arn")):
                problems.append(
                    "server_side_encryption.kms_key_arn must name the project CMK (aws_kms_key)"
                )
            yield self.observe(table, problems, "SSE with the project CMK")


@guardrail
class TableSchema(Guardrail):
    id = "MR-003"
    title = "Table names, keys, GSI, TTL and billing as the Oracle expects"

    def inspect(self, view):
        env = view.env
        for spec, table in _tables(view):
            if table is None:
                yield missing(view, spec.address, view.tfvars_dir)
                continue
            c = table.config
            problems = []
            if c.get("name") != spec.name(env):
                problems.append(f"name is {c.get('name')!r}, expected {spec.name(env)!r}")
            if c.get("billing_mode") != "PAY_PER_REQUEST":
                problems.append("billing_mode must be PAY_PER_REQUEST")
            if c.get("hash_key") != spec.hash_key:
                problems.append(f"hash_key must be {spec.hash_key!r}")
            if c.get("range_key") != spec.range_key:
                problems.append(f"range_key must be {spec.range_key!r}")
            types = {a.get("name"): a.get("type") for a in as_list(c.get("attribute"))}
            keys = [spec.hash_key, spec.range_key, *(spec.gsi[1:] if spec.gsi else ())]
            for key in filter(None, keys):
                if types.get(key) != "S":
                    problems.append(f"attribute {key!r} must be declared with type S")
            ttl = table.block("ttl")
            if spec.ttl_attribute and (
                ttl.get("enabled") is not True or ttl.get("attribute_name") != spec.ttl_attribute
            ):
                problems.append(f"ttl must be enabled on {spec.ttl_attribute!r}")
            if spec.gsi:
                gsis = {g.get("name"): g for g in as_list(c.get("global_secondary_index"))}
                gsi = gsis.get(spec.gsi[0])
                if gsi is None:
                    problems.append(f"global secondary index {spec.gsi[0]} is missing")
                elif (gsi.get("hash_key"), gsi.get("range_key"), gsi.get("projection_type")) != (
                    spec.gsi[1],
                    spec.gsi[2],
                    "ALL",
                ):
                    problems.append(
                        f"{spec.gsi[0]} must be {spec.gsi[1]}/{spec.gsi[2]} with projection ALL"
                    )
            yield self.observe(table, problems, f"{spec.name(env)} matches the contract")


# -- KMS ------------------------------------------------------------------------------
def _key(view: InfraView) -> ResourceView | None:
    keys = view.of_type("aws_kms_key")
    return keys[0] if len(keys) == 1 else None


@guardrail
class KeyRotation(Guardrail):
    id = "MR-004"
    title = "KMS key rotation on and an explicit key policy"

    def inspect(self, view):
        key = _key(view)
        if key is None:
            yield Observation(
                "aws_kms_key",
                view.tfvars_dir,
                False,
                f"expected exactly one aws_kms_key, found {len(view.of_type('aws_kms_key'))}",
            )
            return
        problems = []
        if key.config.get("enable_key_rotation") is not True:
            problems.append("enable_key_rotation must be true")
        if structure(key.config.get("policy")) is None:
            problems.append("an explicit key policy (policy = jsonencode(...)) is required")
        yield self.observe(key, problems, "rotation on, explicit key policy")


@guardrail
class KeyDeletionWindow(Guardrail):
    id = "MR-005"
    title = "KMS deletion window: 7 days in staging, 30 in production"

    def inspect(self, view):
        key = _key(view)
        if key is None:
            yield Observation(
                "aws_kms_key", view.tfvars_dir, False, "no single aws_kms_key to inspect"
            )
            return
        expected = contract.kms_deletion_window_days(view.env)
        window = key.config.get("deletion_window_in_days")
        problems = (
            []
            if window == expected
            else [
                f"deletion_window_in_days is {window!r} for {view.env}, expected {expected} (set kms_deletion_window_days in {view.env}.tfvars)"
            ]
        )
        yield self.observe(key, problems, f"{window} days")


@guardrail
class KeyAlias(Guardrail):
    id = "MR-006"
    title = "KMS alias alias/mirror-dissonance-{env} on the project key"

    def inspect(self, view):
        expected = f"alias/{contract.PREFIX}-{view.env}"
        aliases = view.of_type("aws_kms_alias")
        if not aliases:
            yield missing(view, "aws_kms_alias", view.tfvars_dir)
        for alias in aliases:
            problems = []
            if alias.config.get("name") != expected:
                problems.append(f"name is {alias.config.get('name')!r}, expected {expected!r}")
            if not is_cmk(alias.config.get("target_key_id")):
                problems.append("target_key_id must name the project key")
            yield self.observe(alias, problems, expected)


# -- nonce ------------------------------------------------------------------------------
def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, Unknown) and value.detail is not None:
        yield from _strings(value.detail)


def _nonce_parameters(view: InfraView) -> list[ResourceView]:
    return [
        p
        for p in view.of_type("aws_ssm_parameter")
        if "nonce" in str(p.config.get("name", "")) or "nonce" in p.address
    ]


@guardrail
class NonceName(Guardrail):
    id = "MR-010"
    title = "Nonce parameter named /guardian/{env}/redaction_nonce_v{N}"

    def inspect(self, view):
        params = _nonce_parameters(view)
        if not params:
            yield missing(view, "aws_ssm_parameter (redaction nonce)", view.tfvars_dir)
        for param in params:
            name = param.config.get("name")
            match = contract.NONCE_NAME.match(name) if isinstance(name, str) else None
            problems = []
            if isinstance(name, str) and contract.NONCE_LEGACY_NAME.search(name):
                problems.append(
                    f"{name!r} uses the retired guardian/{{env}}/redaction/nonce/vN form; use {contract.nonce_parameter(view.env, 1)}"
                )
            elif match is None or match["env"] != view.env:
                problems.append(f"name {name!r} must be {contract.nonce_parameter(view.env, 1)}")
            yield self.observe(param, problems, str(name))


@guardrail
class NonceStorage(Guardrail):
    id = "MR-011"
    title = "Nonce is a SecureString under the project CMK, value ignored by Terraform"

    def inspect(self, view):
        params = _nonce_parameters(view)
        if not params:
            yield missing(view, "aws_ssm_parameter (redaction nonce)", view.tfvars_dir)
        for param in params:
            problems = []
            if param.config.get("type") != "SecureString":
                problems.append(f"type is {param.config.get('type')!r}, must be SecureString")
            if not is_cmk(param.config.get("key_id")):
                problems.append("key_id must name the project CMK")
            if "value" not in param.lifecycle.ignore_changes:
                problems.append(
                    "lifecycle.ignore_changes must include value (the pipeline writes real values)"
                )
            yield self.observe(param, problems, "SecureString, CMK, ignore_changes = [value]")


@guardrail
class NonceNotInTerraform(Guardrail):
    id = "MR-012"
    title = "No nonce generated or stored by Terraform (write-only placeholder)"

    def inspect(self, view):
        for generator in [r for r in view.aws if r.type.startswith("random_")]:
            yield Observation(
                generator.address,
                generator.location,
                False,
                f"{generator.type} would put a secret into Terraform state; the pipeline generates nonces",
            )
        params = _nonce_parameters(view)
        if not params:
            yield missing(view, "aws_ssm_parameter (redaction nonce)", view.tfvars_dir)
        for param in params:
            problems = []
            if "value" in param.config:
                problems.append(
                    "value is stored in state and re-read on every refresh; "
                    "use value_wo (write-only) so the real nonce never reaches state"
                )
            value = param.config.get("value_wo", param.config.get("value"))
            if isinstance(value, Unknown):
                problems.append(
                    f"value comes from {value.ref or 'another resource'}; it must be a literal placeholder"
                )
            elif not isinstance(value, str) or contract.NONCE_VALUE.match(value.lower()):
                problems.append("value must be a placeholder, not a nonce")
            yield self.observe(param, problems, f"write-only placeholder {value!r}")
        for resource in view.aws:
            for text in _strings(resource.config):
                if contract.NONCE_VALUE.match(text) and resource.type != "aws_ssm_parameter":
                    yield Observation(
                        resource.address,
                        resource.location,
                        False,
                        "contains a 64-hex literal that looks like a nonce",
                    )


# -- alarms and SNS ----------------------------------------------------------------
def _alarms(view: InfraView) -> dict[str, ResourceView]:
    return {str(a.config.get("alarm_name")): a for a in view.of_type("aws_cloudwatch_metric_alarm")}


def _topic(view: InfraView) -> ResourceView | None:
    expected = contract.name(view.env, "ops-alerts")
    return next(
        (t for t in view.of_type("aws_sns_topic") if t.config.get("name") == expected), None
    )


def _missing_topic(view: InfraView) -> Observation:
    return missing(view, f"aws_sns_topic {contract.name(view.env, 'ops-alerts')}", view.tfvars_dir)


@guardrail
class AlarmInventory(Guardrail):
    id = "MR-020"
    title = "Exactly the 8 alarms of the contract"

    def inspect(self, view):
        env = view.env
        alarms = _alarms(view)
        expected = {spec.full_name(env) for spec in contract.ALARMS}
        for name in sorted(expected - alarms.keys()):
            yield Observation(name, view.tfvars_dir, False, f"alarm {name} is missing")
        for name in sorted(alarms.keys() - expected):
            yield Observation(
                alarms[name].address,
                alarms[name].location,
                False,
                f"alarm {name} is not in the contract",
            )
        for name in sorted(expected & alarms.keys()):
            yield self.observe(alarms[name], [], name)


@guardrail
class AlarmDefinition(Guardrail):
    id = "MR-021"
    title = (
        "Each alarm's metric, namespace, dimensions, statistic, threshold, comparison and period"
    )

    def inspect(self, view):
        env = view.env
        alarms = _alarms(view)
        for spec in contract.ALARMS:
            alarm = alarms.get(spec.full_name(env))
            if alarm is None:
                continue  # MR-020 reports missing alarms
            c = alarm.config
            want = {
                "namespace": spec.namespace(env),
                "metric_name": spec.metric,
                "statistic": spec.statistic,
                "threshold": spec.threshold,
                "comparison_operator": spec.comparison,
                "period": spec.period,
                "evaluation_periods": spec.evaluation_periods,
            }
            problems = [
                f"{k} is {c.get(k)!r}, expected {v!r}" for k, v in want.items() if c.get(k) != v
            ]
            dims = c.get("dimensions") or {}
            if dims != spec.dimensions(env):
                problems.append(f"dimensions are {dims!r}, expected {spec.dimensions(env)!r}")
            yield self.observe(alarm, problems, f"{spec.metric} > {spec.threshold:g}")


@guardrail
class AlarmActions(Guardrail):
    id = "MR-022"
    title = "Every alarm notifies the ops SNS topic"

    def inspect(self, view):
        topic = _topic(view)
        if topic is None:
            yield _missing_topic(view)
            return
        alarms = view.of_type("aws_cloudwatch_metric_alarm")
        if not alarms:
            yield missing(view, "aws_cloudwatch_metric_alarm", view.tfvars_dir)
        for alarm in alarms:
            actions = as_list(alarm.config.get("alarm_actions"))
            ok = any(refers_to(a, topic.address) for a in actions)
            yield self.observe(
                alarm,
                [] if ok else [f"alarm_actions must include {topic.address}.arn"],
                "notifies ops topic",
            )


@guardrail
class TopicEncryption(Guardrail):
    id = "MR-023"
    title = "Ops SNS topic encrypted with the project CMK"

    def inspect(self, view):
        topic = _topic(view)
        if topic is None:
            yield _missing_topic(view)
            return
        ok = is_cmk(topic.config.get("kms_master_key_id"))
        yield self.observe(
            topic, [] if ok else ["kms_master_key_id must name the project CMK"], "encrypted"
        )


# -- dashboard -----------------------------------------------------------------------
_SEARCH = re.compile(
    r"\{(?P<namespace>[^,}]+)[^}]*\}.*?MetricName\s*=\s*\\?\"?(?P<metric>[A-Za-z]+)"
)


def dashboard_metrics(body: Any) -> tuple[set[tuple[str, str, str]], list[dict]]:
    """(namespace, metric, TableName or "") of every metric row, and the alarm widgets."""
    rows: set[tuple[str, str, str]] = set()
    alarm_widgets = []
    for widget in as_list((body or {}).get("widgets")):
        props = widget.get("properties") or {}
        if widget.get("type") == "alarm":
            alarm_widgets.append(props)
        previous: list = []
        for row in as_list(props.get("metrics")):
            if not isinstance(row, list):
                continue
            for options in (v for v in row if isinstance(v, dict)):
                # A SEARCH expression row: SEARCH('{Namespace,Dim,...} MetricName="X" ...')
                search = _SEARCH.search(str(options.get("expression", "")))
                if search:
                    rows.add((search["namespace"], search["metric"], ""))
            # "." repeats the previous row's value at that position (CloudWatch shorthand).
            plain = [v for v in row if not isinstance(v, dict)]
            plain = [
                previous[i] if v == "." and i < len(previous) else v for i, v in enumerate(plain)
            ]
            previous = plain
            if len(plain) >= 2:
                dims = dict(zip(plain[2::2], plain[3::2], strict=False))
                rows.add((str(plain[0]), str(plain[1]), str(dims.get("TableName", ""))))
    return rows, alarm_widgets


@guardrail
class DashboardWidgets(Guardrail):
    id = "MR-030"
    title = "Dashboard covers capacity, errors, SSM failures, circuit breaker, alarm status"

    def inspect(self, view):
        env = view.env
        boards = [
            d
            for d in view.of_type("aws_cloudwatch_dashboard")
            if d.config.get("dashboard_name") == contract.name(env, "")[:-1]
        ]
        if not boards:
            yield missing(
                view, f"aws_cloudwatch_dashboard {contract.PREFIX}-{env}", view.tfvars_dir
            )
            return
        board = boards[0]
        rows, alarm_widgets = dashboard_metrics(structure(board.config.get("dashboard_body")))
        problems = []
        for namespace, metric in contract.DASHBOARD_METRICS:
            namespace = namespace.format(env=env)
            if metric.startswith("Consumed"):
                for spec in contract.TABLES:
                    if (namespace, metric, spec.name(env)) not in rows:
                        problems.append(f"no {metric} widget for {spec.name(env)}")
            elif not any(r[0] == namespace and r[1] == metric for r in rows):
                problems.append(f"no {namespace} {metric} widget")
        if not any(len(as_list(w.get("alarms"))) >= len(contract.ALARMS) for w in alarm_widgets):
            problems.append("no alarm-status widget listing the 8 alarms")
        yield self.observe(
            board, problems, f"{len(rows)} metric rows, {len(alarm_widgets)} alarm widget(s)"
        )


# -- S3 --------------------------------------------------------------------------------
def _bucket(view: InfraView, suffix: str) -> ResourceView | None:
    expected = contract.name(view.env, suffix)
    return next(
        (b for b in view.of_type("aws_s3_bucket") if b.config.get("bucket") == expected), None
    )


def versioning_problems(view: InfraView, bucket: ResourceView) -> list[str]:
    configs = companions(view, "aws_s3_bucket_versioning", bucket)
    if not any(c.block("versioning_configuration").get("status") == "Enabled" for c in configs):
        return ["versioning is not Enabled (aws_s3_bucket_versioning)"]
    return []


def encryption_problems(view: InfraView, bucket: ResourceView) -> list[str]:
    for sse in companions(view, "aws_s3_bucket_server_side_encryption_configuration", bucket):
        default = (sse.block("rule").get("apply_server_side_encryption_by_default") or [{}])[0]
        if default.get("sse_algorithm") == "aws:kms" and is_cmk(default.get("kms_master_key_id")):
            return []
    return ["default encryption must be aws:kms with the project CMK"]


PUBLIC_ACCESS_FLAGS = (
    "block_public_acls",
    "block_public_policy",
    "ignore_public_acls",
    "restrict_public_buckets",
)


def public_access_problems(view: InfraView, bucket: ResourceView) -> list[str]:
    blocks = companions(view, "aws_s3_bucket_public_access_block", bucket)
    if not blocks:
        return ["no aws_s3_bucket_public_access_block"]
    return [
        f"{flag} must be true"
        for flag in PUBLIC_ACCESS_FLAGS
        if blocks[0].config.get(flag) is not True
    ]


class _BaselinesBucketCheck(Guardrail):
    aspect: ClassVar[Any]

    def inspect(self, view):
        bucket = _bucket(view, "baselines")
        if bucket is None:
            yield missing(
                view, f"aws_s3_bucket {contract.name(view.env, 'baselines')}", view.tfvars_dir
            )
            return
        yield self.observe(bucket, type(self).aspect(view, bucket), self.title)


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
    title = "CloudTrail audit trail: own private, versioned, encrypted bucket; validated, encrypted logs"

    def inspect(self, view):
        bucket = _bucket(view, "audit-logs")
        trails = view.of_type("aws_cloudtrail")
        if bucket is None:
            yield missing(
                view,
                f"aws_s3_bucket {contract.name(view.env, 'audit-logs')}",
                view.tfvars_dir,
            )
        else:
            problems = (
                versioning_problems(view, bucket)
                + encryption_problems(view, bucket)
                + public_access_problems(view, bucket)
            )
            yield self.observe(bucket, problems, "private, versioned, encrypted")
        if not trails:
            yield missing(view, "aws_cloudtrail", view.tfvars_dir)
        for trail in trails:
            c = trail.config
            problems = []
            if not is_cmk(c.get("kms_key_id")):
                problems.append("kms_key_id must name the project CMK")
            if c.get("enable_log_file_validation") is not True:
                problems.append("enable_log_file_validation must be true")
            if bucket is not None and not targets(c.get("s3_bucket_name"), bucket):
                problems.append(f"s3_bucket_name must be {bucket.address}")
            yield self.observe(trail, problems, "encrypted, validated")


# -- IAM / OIDC --------------------------------------------------------------------------
@guardrail
class OidcProvider(Guardrail):
    id = "MR-050"
    title = "GitHub OIDC provider with audience sts.amazonaws.com"

    def inspect(self, view):
        providers = view.of_type("aws_iam_openid_connect_provider")
        if not providers:
            yield missing(view, "aws_iam_openid_connect_provider", view.tfvars_dir)
        for provider in providers:
            problems = []
            if provider.config.get("url") != contract.OIDC_URL:
                problems.append(f"url must be {contract.OIDC_URL}")
            if as_list(provider.config.get("client_id_list")) != [contract.OIDC_AUDIENCE]:
                problems.append(f"client_id_list must be [{contract.OIDC_AUDIENCE!r}]")
            yield self.observe(provider, problems, contract.OIDC_URL)


def _statements(policy: Any) -> list[dict]:
    return [s for s in as_list((policy or {}).get("Statement")) if isinstance(s, dict)]


def trust_problems(policy: Any, org: str, repo: str) -> list[str]:
    """Why a role trust policy admits more than ``repo:{org}/{repo}:*`` (empty if it does not)."""
    if policy is None:
        return ["assume_role_policy is not a JSON document"]
    problems = []
    allowed = re.compile(rf"^repo:{re.escape(org)}/{re.escape(repo)}:")
    web_identity = [s for s in _statements(policy) if s.get("Effect") == "Allow"]
    if not web_identity:
        problems.append("no Allow statement")
    for statement in web_identity:
        condition = statement.get("Condition") or {}
        subs = [
            v
            for op in condition.values()
            if isinstance(op, dict)
            for k, vals in op.items()
            if k.endswith(":sub")
            for v in as_list(vals)
        ]
        auds = [
            v
            for op in condition.values()
            if isinstance(op, dict)
            for k, vals in op.items()
            if k.endswith(":aud")
            for v in as_list(vals)
        ]
        if not subs:
            problems.append(
                "no token.actions.githubusercontent.com:sub condition: any repository could assume the role"
            )
        for sub in subs:
            head = str(sub).split(":")
            if not allowed.match(str(sub)) or any(ch in ":".join(head[:2]) for ch in "*?"):
                problems.append(f"sub {sub!r} is wider than repo:{org}/{repo}:*")
        if auds and set(auds) != {contract.OIDC_AUDIENCE}:
            problems.append(f"aud must be {contract.OIDC_AUDIENCE}")
        principal = statement.get("Principal")
        if principal == "*" or (
            isinstance(principal, dict) and "*" in as_list(principal.get("AWS"))
        ):
            problems.append("Principal must be the GitHub OIDC provider, not *")
    return problems


@guardrail
class DeployRoleTrust(Guardrail):
    id = "MR-051"
    title = "Deploy role trusted only by repo:{org}/{repo}:*"

    def inspect(self, view):
        org, repo = (
            view.aws_variables.get("github_org", ""),
            view.aws_variables.get("github_repo", ""),
        )
        roles = [r for r in view.of_type("aws_iam_role") if "github" in r.address]
        if not roles:
            yield missing(view, "aws_iam_role for GitHub deploys", view.tfvars_dir)
        for role in roles:
            policy = structure(role.config.get("assume_role_policy"))
            yield self.observe(role, trust_problems(policy, org, repo), f"repo:{org}/{repo}:*")


#: Actions that support no resource-level permissions, so "*" is their only resource.
UNSCOPED_ACTIONS = frozenset(
    {
        "sts:GetCallerIdentity",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:DescribeAlarmHistory",
        "cloudwatch:GetMetricData",
        "cloudwatch:GetMetricStatistics",
        "cloudwatch:ListMetrics",
        "cloudwatch:ListDashboards",
        "cloudwatch:PutMetricData",
        "dynamodb:ListTables",
        "kms:ListAliases",
        "kms:ListKeys",
        "s3:ListAllMyBuckets",
        "sns:ListTopics",
        "ssm:DescribeParameters",
        "backup:ListBackupVaults",
        "backup:ListBackupPlans",
        "cloudtrail:DescribeTrails",
        "iam:ListOpenIDConnectProviders",
    }
)


def policy_problems(policy: Any) -> list[str]:
    problems = []
    for statement in _statements(policy):
        if statement.get("Effect") != "Allow":
            continue
        actions = [str(a) for a in as_list(statement.get("Action"))]
        resources = as_list(statement.get("Resource"))
        if any(a == "*" or a.endswith(":*") for a in actions):
            problems.append(
                f"statement {statement.get('Sid', '?')} allows wildcard actions {actions}"
            )
        if "*" in resources:
            wide = [a for a in actions if a not in UNSCOPED_ACTIONS]
            if wide:
                problems.append(
                    f"statement {statement.get('Sid', '?')} grants {wide} on every resource (*)"
                )
    return problems


@guardrail
class IamLeastPrivilege(Guardrail):
    id = "MR-052"
    title = "IAM policies: no * resource for restrictable actions, no wildcard actions"

    def inspect(self, view):
        policies = view.of_type("aws_iam_role_policy") + view.of_type("aws_iam_policy")
        if not policies:
            yield missing(view, "aws_iam_role_policy", view.tfvars_dir)
        for policy in policies:
            document = structure(policy.config.get("policy"))
            problems = (
                policy_problems(document)
                if document is not None
                else ["policy is not a JSON document"]
            )
            yield self.observe(policy, problems, "least privilege")


# -- state, variables, backup ------------------------------------------------------------
@guardrail
class StateBackend(Guardrail):
    id = "MR-060"
    title = "S3 state backend encrypted, locked, with a workspace key prefix"

    def inspect(self, view):
        if view.backend is None:
            yield Observation(
                "terraform.backend",
                view.backend_file,
                False,
                "no backend block: state would be local",
            )
            return
        kind, config = view.backend
        problems = []
        if kind != "s3":
            problems.append(f"backend is {kind!r}, expected s3")
        if config.get("encrypt") is not True:
            problems.append("encrypt must be true")
        if not (config.get("dynamodb_table") or config.get("use_lockfile") is True):
            problems.append("a lock (dynamodb_table or use_lockfile) is required")
        if not config.get("workspace_key_prefix"):
            problems.append(
                "workspace_key_prefix must be set so each environment has its own state"
            )
        for key in ("bucket", "key", "region"):
            if not config.get(key):
                problems.append(f"{key} must be set")
        yield Observation(
            f'backend "{kind}"',
            view.backend_file,
            not problems,
            "; ".join(problems)
            or f"s3://{config.get('bucket')}/{config.get('workspace_key_prefix')}/…",
        )


#: Variables whose value is allowed to differ between staging and production.
PER_ENVIRONMENT = frozenset(
    {"environment", "kms_deletion_window_days", "alert_email", "tags", "backup_retention_days"}
)


@guardrail
class TfvarsConsistency(Guardrail):
    id = "MR-061"
    title = "staging.tfvars and production.tfvars valid and differing only where they should"

    def inspect(self, view):
        files = {
            f"{env}.tfvars": view.tfvars.get(f"{env}.tfvars")
            for env in contract.KMS_DELETION_WINDOW_DAYS
        }
        for name, values in files.items():
            location = f"{view.tfvars_dir}/{name}"
            if values is None:
                yield Observation(name, location, False, f"{name} is missing")
                continue
            env = name.removesuffix(".tfvars")
            problems = (
                []
                if values.get("environment") == env
                else [f"environment = {values.get('environment')!r}, expected {env!r}"]
            )
            yield Observation(name, location, not problems, "; ".join(problems) or "valid")
        staging, production = files["staging.tfvars"], files["production.tfvars"]
        if staging is not None and production is not None:
            differing = sorted(
                k
                for k in staging.keys() | production.keys()
                if staging.get(k) != production.get(k) and k not in PER_ENVIRONMENT
            )
            message = (
                f"differ in {differing}, which must be the same in both"
                if differing
                else f"differ only in {sorted(PER_ENVIRONMENT & (staging.keys() | production.keys()))}"
            )
            yield Observation(
                "staging.tfvars ↔ production.tfvars", view.tfvars_dir, not differing, message
            )


@guardrail
class BackupCoverage(Guardrail):
    id = "MR-062"
    title = "AWS Backup: encrypted vault, a plan, and a selection of the three tables"

    def inspect(self, view):
        vaults, plans, selections = (
            view.of_type(t) for t in ("aws_backup_vault", "aws_backup_plan", "aws_backup_selection")
        )
        for what, found in (
            ("aws_backup_vault", vaults),
            ("aws_backup_plan", plans),
            ("aws_backup_selection", selections),
        ):
            if not found:
                yield missing(view, what, view.tfvars_dir)
        for vault in vaults:
            yield self.observe(
                vault,
                []
                if is_cmk(vault.config.get("kms_key_arn"))
                else ["kms_key_arn must name the project CMK"],
                "encrypted vault",
            )
        for plan in plans:
            yield self.observe(
                plan,
                [] if plan.config.get("rule") else ["the plan has no rule"],
                f"{len(as_list(plan.config.get('rule')))} rule(s)",
            )
        for selection in selections:
            chosen = as_list(selection.config.get("resources"))
            lacking = [
                s.address
                for s in contract.TABLES
                if not any(refers_to(v, s.address) for v in chosen)
            ]
            yield self.observe(
                selection, [f"does not select {a}" for a in lacking], "all three tables"
            )


# -- GCP ----------------------------------------------------------------------------
class GcpGuardrail(Guardrail):
    cloud = "gcp"
    resource_type: ClassVar[str]

    def inspect(self, view):
        found = view.of_type(self.resource_type, "gcp")
        if not found:
            yield Observation(
                self.resource_type, "infra/gcp", False, f"{self.resource_type} is not declared"
            )
        for resource in found:
            yield self.observe(resource, self.problems(view, resource), self.title)

    def problems(self, view: InfraView, resource: ResourceView) -> list[str]:
        raise NotImplementedError


@guardrail
class FirestorePitr(GcpGuardrail):
    id = "MR-070"
    title = "GCP: Firestore point-in-time recovery on"
    resource_type = "google_firestore_database"

    def problems(self, view, resource):
        value = resource.config.get("point_in_time_recovery_enablement")
        return (
            []
            if value == "POINT_IN_TIME_RECOVERY_ENABLED"
            else [f"point_in_time_recovery_enablement is {value!r}"]
        )


@guardrail
class GcsBucketProtection(GcpGuardrail):
    id = "MR-071"
    title = "GCP: baselines bucket versioned, uniform access, public access prevention enforced"
    resource_type = "google_storage_bucket"

    def problems(self, view, resource):
        c = resource.config
        problems = []
        if resource.block("versioning").get("enabled") is not True:
            problems.append("versioning.enabled must be true")
        if c.get("uniform_bucket_level_access") is not True:
            problems.append("uniform_bucket_level_access must be true")
        if c.get("public_access_prevention") != "enforced":
            problems.append('public_access_prevention must be "enforced"')
        return problems


@guardrail
class GcsCmek(GcpGuardrail):
    id = "MR-072"
    title = "GCP: baselines bucket encrypted with the project Cloud KMS key"
    resource_type = "google_storage_bucket"

    def problems(self, view, resource):
        key = resource.block("encryption").get("default_kms_key_name")
        return (
            []
            if refers_to(key, *[k.address for k in view.of_type("google_kms_crypto_key", "gcp")])
            else ["encryption.default_kms_key_name must name the project crypto key"]
        )


@guardrail
class GcpKeyRotation(GcpGuardrail):
    id = "MR-073"
    title = "GCP: Cloud KMS key rotates at least every 90 days"
    resource_type = "google_kms_crypto_key"

    def problems(self, view, resource):
        period = str(resource.config.get("rotation_period") or "")
        seconds = int(period[:-1]) if period.endswith("s") and period[:-1].isdigit() else None
        return (
            []
            if seconds is not None and seconds <= 90 * 86400
            else [f"rotation_period {period!r} must be set and at most 7776000s"]
        )


@guardrail
class GcpWorkloadIdentity(GcpGuardrail):
    id = "MR-074"
    title = "GCP: workload identity federation restricted to the repository"
    resource_type = "google_iam_workload_identity_pool_provider"

    def problems(self, view, resource):
        org, repo = (
            view.gcp_variables.get("github_org", ""),
            view.gcp_variables.get("github_repo", ""),
        )
        condition = str(resource.config.get("attribute_condition") or "")
        problems = []
        if not re.search(
            rf"assertion\.repository\s*==\s*['\"]{re.escape(org)}/{re.escape(repo)}['\"]", condition
        ):
            problems.append(
                f"attribute_condition must require assertion.repository == '{org}/{repo}'"
            )
        issuer = resource.block("oidc").get("issuer_uri")
        if issuer != contract.OIDC_URL:
            problems.append(f"oidc.issuer_uri must be {contract.OIDC_URL}")
        for member in view.of_type("google_service_account_iam_member", "gcp"):
            text = str(member.config.get("member", ""))
            if "principalSet" in text and not text.endswith(f"attribute.repository/{org}/{repo}"):
                problems.append(f"{member.address} grants {text}, wider than the repository")
        return problems


@guardrail
class GcpNonceSecret(GcpGuardrail):
    id = "MR-075"
    title = "GCP: nonce secret exists, CMEK-encrypted, with no value in Terraform"
    resource_type = "google_secret_manager_secret"

    def problems(self, view, resource):
        problems = [
            f"{v.address} writes a secret value into Terraform state"
            for v in view.of_type("google_secret_manager_secret_version", "gcp")
        ]
        problems += [
            f"{r.address} generates a secret in Terraform"
            for r in view.gcp
            if r.type.startswith("random_")
        ]
        if "kms_key_name" not in json.dumps(resource.config, default=str):
            problems.append("replication must use customer_managed_encryption with the project key")
        return problems


# -- running -------------------------------------------------------------------------
def run_checks(view: InfraView, only: Iterable[str] | None = None) -> list[CheckResult]:
    """Run every registered guardrail (or ``only`` those ids) and return typed results."""
    selected = [REGISTRY[i] for i in sorted(REGISTRY) if only is None or i in set(only)]
    results: list[CheckResult] = []
    for cls in selected:
        check = cls()
        observations = list(check.inspect(view))
        if not observations:
            observations = [Observation(cls.id, "", False, "nothing to inspect")]
        failures = [o for o in observations if not o.ok]
        evidence = [
            Evidence(
                source=o.location, observed={"subject": o.subject, "ok": o.ok, "detail": o.message}
            )
            for o in observations
        ]
        if failures:
            results.extend(
                CheckResult(
                    check_id=cls.id,
                    title=cls.title,
                    status=Status.FAIL,
                    severity=cls.severity,
                    subject=f.subject,
                    location=f.location,
                    message=f.message,
                    evidence=evidence,
                )
                for f in failures
            )
        else:
            subjects = ", ".join(o.subject for o in observations)
            results.append(
                CheckResult(
                    check_id=cls.id,
                    title=cls.title,
                    status=Status.PASS,
                    severity=cls.severity,
                    subject=subjects,
                    location=observations[0].location,
                    message="; ".join(o.message for o in observations)[:500],
                    evidence=evidence,
                )
            )
    return results


def evaluate_guardrails(environment: str, root: Path | None = None) -> list[CheckResult]:
    """Load infra/ for ``environment`` and run every guardrail (no Prefect involved)."""
    from mirror_rollout import PROJECT_ROOT
    from mirror_rollout.environments import parse_environment
    from tasks.guardrails.view import load_view

    base = Path(root or PROJECT_ROOT)
    return run_checks(load_view(parse_environment(environment, base), base))
