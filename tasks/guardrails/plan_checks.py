"""Plan guardrails: pure checks over the JSON of ``terraform show -json <planfile>`` (format 1.x).

Terraform has evaluated everything here: names, thresholds, windows, tags are the
values it will apply (``planned_values``, with every module). Which resource an
argument refers to comes from Terraform's own ``configuration`` section
(``expressions.<arg>.references``), not from reading strings. A value known only
after apply (an ARN, a document that embeds one) is absent from ``planned_values``
and flagged in ``resource_changes[*].change.after_unknown``: an observation about it
is "not shown" (SKIPPED when a check sees nothing else), never PASS on its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror_rollout import contract
from mirror_rollout.errors import ConfigError
from mirror_rollout.results import CheckResult
from tasks.guardrails.common import (
    NONCE_OWNERSHIP,
    Check,
    Observation,
    Registry,
    as_list,
    dashboard_metrics,
    declares_nonce_version,
    drill_grant_problems,
    open_principal_problems,
    policy_problems,
    run_checks,
    trust_problems,
)

PLAN_REGISTRY = Registry()
plan_guardrail = PLAN_REGISTRY.register

AFTER_APPLY = "known only after apply"


# -- the plan document ----------------------------------------------------------------
@dataclass
class Planned:
    """One resource instance of ``planned_values`` with what Terraform knows about it."""

    address: str
    type: str
    name: str
    config_address: str  # its configuration block: module path + type.name, no instance keys
    values: dict[str, Any]
    unknown: dict[str, Any] = field(default_factory=dict)  # its change's after_unknown

    def known(self, key: str) -> bool:
        return key in self.values and self.unknown.get(key) is not True

    def where(self, key: str = "") -> str:
        return f"planned_values {self.address}" + (f".{key}" if key else "")


@dataclass
class PlanView:
    env: str
    resources: list[Planned]
    config: dict[str, dict[str, Any]]  # configuration resources by config address
    variables: dict[str, Any]
    deleted: list[dict[str, Any]]  # resource_changes that delete (without re-creating)
    #: Attributes the backend does not keep, by address (the sandbox's declared moto gaps).
    not_kept: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def of_type(self, rtype: str) -> list[Planned]:
        return [r for r in self.resources if r.type == rtype]

    def get(self, address: str) -> Planned | None:
        return next((r for r in self.resources if r.address == address), None)

    def expression(self, resource: Planned, path: str) -> dict[str, Any] | None:
        """The configuration expression of ``path`` ("rule.apply_...by_default.kms_master_key_id")."""
        node: Any = (self.config.get(resource.config_address) or {}).get("expressions")
        for step in path.split("."):
            if isinstance(node, list):  # a nested block: Terraform lists one entry per block
                node = node[0] if node else None
            node = node.get(step) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else None

    def references(self, resource: Planned, path: str) -> list[str]:
        expression = self.expression(resource, path) or {}
        return [str(r) for r in as_list(expression.get("references"))]

    def refers_to(self, resource: Planned, path: str, target: Planned) -> bool:
        """Does ``path`` of ``resource`` refer to ``target`` (Terraform's references)?"""
        own = resource.config_address.rpartition(resource.type + ".")[0]
        wanted = target.config_address.removeprefix(own) if own else target.config_address
        return any(
            r == wanted or r.startswith(wanted + ".") for r in self.references(resource, path)
        )


def _without_keys(address: str) -> str:
    return re.sub(r"\[[^\]]*\]", "", address)


def _walk_planned(module: dict[str, Any], unknown: dict[str, dict]) -> Iterator[Planned]:
    for r in as_list(module.get("resources")):
        if r.get("mode", "managed") != "managed":
            continue
        module_path = _without_keys(r["address"].rpartition(f"{r['type']}.{r['name']}")[0])
        yield Planned(
            address=r["address"],
            type=r["type"],
            name=r["name"],
            config_address=f"{module_path}{r['type']}.{r['name']}",
            values=r.get("values") or {},
            unknown=unknown.get(r["address"]) or {},
        )
    for child in as_list(module.get("child_modules")):
        yield from _walk_planned(child, unknown)


def _walk_config(module: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict]]:
    for r in as_list((module or {}).get("resources")):
        yield prefix + r["address"], r
    for name, call in ((module or {}).get("module_calls") or {}).items():
        yield from _walk_config(call.get("module") or {}, f"{prefix}module.{name}.")


def read_plan(
    plan: Any, environment: str, not_kept: dict[str, tuple[str, ...]] | None = None
) -> PlanView:
    """The parts of a ``terraform show -json`` document the checks read; ConfigError if it is none."""
    fix = "pass the output of `terraform show -json <planfile>`"
    if not isinstance(plan, dict) or "planned_values" not in plan:
        raise ConfigError("the plan document has no planned_values: it is not a plan JSON", fix)
    version = str(plan.get("format_version", ""))
    if version.split(".")[0] != "1":
        raise ConfigError(f"plan JSON format_version {version!r} is not 1.x", fix)
    if plan.get("errored"):
        raise ConfigError("the plan errored, so it plans nothing", "fix the plan's errors first")
    variables = {k: (v or {}).get("value") for k, v in (plan.get("variables") or {}).items()}
    planned_env = variables.get("environment")
    if planned_env is not None and planned_env != environment:
        raise ConfigError(
            f"the plan is for environment {planned_env!r}, not {environment!r}",
            f"check it with --env {planned_env}, or pass the plan of {environment}",
        )
    changes = [c for c in as_list(plan.get("resource_changes")) if isinstance(c, dict)]
    unknown = {c.get("address"): (c.get("change") or {}).get("after_unknown") for c in changes}
    unknown = {k: v for k, v in unknown.items() if isinstance(v, dict)}
    deleted = [
        c
        for c in changes
        if (c.get("change") or {}).get("actions") == ["delete"] and c.get("mode") == "managed"
    ]
    root = (plan.get("planned_values") or {}).get("root_module") or {}
    config_root = (plan.get("configuration") or {}).get("root_module") or {}
    return PlanView(
        env=environment,
        resources=list(_walk_planned(root, unknown)),
        config=dict(_walk_config(config_root)),
        not_kept=dict(not_kept or {}),
        variables=variables,
        deleted=deleted,
    )


# -- helpers -----------------------------------------------------------------------------
class PlanGuardrail(Check[PlanView]):
    @staticmethod
    def observe(
        resource: Planned, problems: list[tuple[str, str]], ok: str
    ) -> Iterator[Observation]:
        if not problems:
            yield Observation(resource.address, resource.where(), True, ok)
        for key, problem in problems:
            yield Observation(resource.address, resource.where(key), False, problem)


def not_planned(plan: PlanView, what: str) -> Observation:
    return Observation(what, "planned_values", False, f"{what} is not in the plan")


def first(value: Any) -> dict[str, Any]:
    """The first entry of a nested block list (planned values list every block)."""
    items = as_list(value)
    return items[0] if items and isinstance(items[0], dict) else {}


def named(plan: PlanView, rtype: str, key: str, expected: str) -> Planned | None:
    return next((r for r in plan.of_type(rtype) if r.values.get(key) == expected), None)


def _key(plan: PlanView) -> Planned | None:
    keys = plan.of_type("aws_kms_key")
    return keys[0] if len(keys) == 1 else None


# -- DynamoDB ---------------------------------------------------------------------------
@plan_guardrail
class TableSchema(PlanGuardrail):
    id = "MR-003"
    title = "Table names, keys, GSI, TTL and billing as the Oracle expects"

    def inspect(self, plan):
        env = plan.env
        for spec in contract.TABLES:
            table = plan.get(spec.address)
            if table is None:
                yield not_planned(plan, spec.address)
                continue
            v = table.values
            problems = []
            if v.get("name") != spec.name(env):
                problems.append(("name", f"name is {v.get('name')!r}, expected {spec.name(env)!r}"))
            if v.get("billing_mode") != "PAY_PER_REQUEST":
                problems.append(("billing_mode", "billing_mode must be PAY_PER_REQUEST"))
            if v.get("hash_key") != spec.hash_key:
                problems.append(
                    ("hash_key", f"hash_key is {v.get('hash_key')!r}, expected {spec.hash_key!r}")
                )
            if v.get("range_key") != spec.range_key:
                problems.append(
                    (
                        "range_key",
                        f"range_key is {v.get('range_key')!r}, expected {spec.range_key!r}",
                    )
                )
            types = {a.get("name"): a.get("type") for a in as_list(v.get("attribute"))}
            for key in filter(
                None, [spec.hash_key, spec.range_key, *(spec.gsi[1:] if spec.gsi else ())]
            ):
                if types.get(key) != "S":
                    problems.append(
                        ("attribute", f"attribute {key!r} must be declared with type S")
                    )
            ttl = first(v.get("ttl"))
            if spec.ttl_attribute and (
                ttl.get("enabled") is not True or ttl.get("attribute_name") != spec.ttl_attribute
            ):
                problems.append(("ttl", f"ttl must be enabled on {spec.ttl_attribute!r}"))
            if spec.gsi:
                gsis = {g.get("name"): g for g in as_list(v.get("global_secondary_index"))}
                gsi = gsis.get(spec.gsi[0])
                if gsi is None:
                    problems.append(("global_secondary_index", f"index {spec.gsi[0]} is missing"))
                elif (gsi.get("hash_key"), gsi.get("range_key"), gsi.get("projection_type")) != (
                    spec.gsi[1],
                    spec.gsi[2],
                    "ALL",
                ):
                    problems.append(
                        (
                            "global_secondary_index",
                            f"{spec.gsi[0]} must be {spec.gsi[1]}/{spec.gsi[2]} with projection ALL",
                        )
                    )
            yield from self.observe(table, problems, f"{spec.name(env)} matches the contract")


@plan_guardrail
class TableProtection(PlanGuardrail):
    id = "MR-008"
    title = "Every table planned with PITR on and server-side encryption on"

    def inspect(self, plan):
        for spec in contract.TABLES:
            table = plan.get(spec.address)
            if table is None:
                yield not_planned(plan, spec.address)
                continue
            problems = []
            if first(table.values.get("point_in_time_recovery")).get("enabled") is not True:
                problems.append(
                    ("point_in_time_recovery", "point_in_time_recovery.enabled is not true")
                )
            if first(table.values.get("server_side_encryption")).get("enabled") is not True:
                problems.append(
                    ("server_side_encryption", "server_side_encryption.enabled is not true")
                )
            yield from self.observe(table, problems, "PITR on, SSE on")


# -- KMS ---------------------------------------------------------------------------------
@plan_guardrail
class KeyDeletionWindow(PlanGuardrail):
    id = "MR-005"
    title = "KMS key rotating, deletion window 7 days (30 in production)"

    def inspect(self, plan):
        key = _key(plan)
        if key is None:
            yield not_planned(plan, "exactly one aws_kms_key")
            return
        expected = contract.kms_deletion_window_days(plan.env)
        window = key.values.get("deletion_window_in_days")
        problems = []
        if window != expected:
            problems.append(
                (
                    "deletion_window_in_days",
                    f"deletion_window_in_days is {window!r} for {plan.env}, expected {expected} "
                    f"(set kms_deletion_window_days in {plan.env}.tfvars)",
                )
            )
        if key.values.get("enable_key_rotation") is not True:
            problems.append(("enable_key_rotation", "enable_key_rotation is not true"))
        yield from self.observe(key, problems, f"rotating, {window} days")


@plan_guardrail
class KeyAlias(PlanGuardrail):
    id = "MR-006"
    title = "KMS alias alias/mirror-dissonance-{env} on the project key"

    def inspect(self, plan):
        expected = f"alias/{contract.PREFIX}-{plan.env}"
        aliases = plan.of_type("aws_kms_alias")
        key = _key(plan)
        if not aliases:
            yield not_planned(plan, "aws_kms_alias")
        for alias in aliases:
            problems = []
            if alias.values.get("name") != expected:
                problems.append(
                    ("name", f"name is {alias.values.get('name')!r}, expected {expected!r}")
                )
            if key is None or not plan.refers_to(alias, "target_key_id", key):
                problems.append(("target_key_id", "target_key_id must refer to the project key"))
            yield from self.observe(alias, problems, expected)


#: Where each encrypted resource type names its KMS key.
KMS_ARGUMENTS: dict[str, str] = {
    "aws_dynamodb_table": "server_side_encryption.kms_key_arn",
    "aws_sns_topic": "kms_master_key_id",
    "aws_s3_bucket_server_side_encryption_configuration": (
        "rule.apply_server_side_encryption_by_default.kms_master_key_id"
    ),
    "aws_cloudtrail": "kms_key_id",
    "aws_backup_vault": "kms_key_arn",
    "aws_cloudwatch_log_group": "kms_key_id",
}


@plan_guardrail
class EncryptedWithTheCmk(PlanGuardrail):
    id = "MR-007"
    title = "Every encrypted resource names the project CMK (Terraform's own references)"

    def inspect(self, plan):
        key = _key(plan)
        if key is None:
            yield not_planned(plan, "exactly one aws_kms_key")
            return
        for resource in (r for r in plan.resources if r.type in KMS_ARGUMENTS):
            path = KMS_ARGUMENTS[resource.type]
            expression = plan.expression(resource, path)
            constant = str((expression or {}).get("constant_value") or "")
            ok = plan.refers_to(resource, path, key) or (":kms:" in constant)
            yield from self.observe(
                resource,
                [] if ok else [(path, f"{path} must refer to {key.config_address}")],
                f"{path} -> {key.config_address}",
            )


# -- nonce --------------------------------------------------------------------------------
@plan_guardrail
class NonceNotPlanned(PlanGuardrail):
    id = "MR-013"
    title = "The plan creates, keeps or deletes no nonce version (runtime data of the nonce flows)"

    def inspect(self, plan):
        params = plan.of_type("aws_ssm_parameter")
        for param in params:
            name = param.values.get("name")
            if declares_nonce_version(name, param.name):
                yield Observation(
                    param.address,
                    param.where("name"),
                    False,
                    f"plans {name!r}: {NONCE_OWNERSHIP}; remove the resource from Terraform",
                )
            elif not param.known("name"):
                yield Observation(param.address, param.where("name"), None, f"name {AFTER_APPLY}")
            else:
                yield Observation(param.address, param.where(), True, f"{name!r} is no nonce")
        for change in plan.deleted:
            before = (change.get("change") or {}).get("before") or {}
            if change.get("type") == "aws_ssm_parameter" and declares_nonce_version(
                before.get("name"), str(change.get("name", ""))
            ):
                yield Observation(
                    change["address"],
                    f"resource_changes {change['address']}",
                    False,
                    f"the plan deletes the live nonce version {before.get('name')!r}, which the "
                    "Oracle reads; let Terraform forget it instead: a removed { from = "
                    f"{change['address']} lifecycle {{ destroy = false }} }} block",
                )
        yield Observation(
            "aws_ssm_parameter",
            "planned_values",
            True,
            f"{len(params)} aws_ssm_parameter planned, {len(plan.deleted)} deletions read",
        )


# -- alarms and SNS ---------------------------------------------------------------------
def _alarms(plan: PlanView) -> dict[str, Planned]:
    return {str(a.values.get("alarm_name")): a for a in plan.of_type("aws_cloudwatch_metric_alarm")}


@plan_guardrail
class AlarmInventory(PlanGuardrail):
    id = "MR-020"
    title = "Exactly the 8 alarms of the contract"

    def inspect(self, plan):
        alarms = _alarms(plan)
        expected = {spec.full_name(plan.env) for spec in contract.ALARMS}
        for name in sorted(expected - alarms.keys()):
            yield Observation(name, "planned_values", False, f"alarm {name} is not planned")
        for name in sorted(alarms.keys() - expected):
            yield Observation(
                alarms[name].address,
                alarms[name].where("alarm_name"),
                False,
                f"alarm {name} is not in the contract",
            )
        for name in sorted(expected & alarms.keys()):
            yield from self.observe(alarms[name], [], name)


@plan_guardrail
class AlarmDefinition(PlanGuardrail):
    id = "MR-021"
    title = "Each alarm's metric, namespace, dimensions, statistic, threshold, comparison, period"

    def inspect(self, plan):
        env = plan.env
        alarms = _alarms(plan)
        for spec in contract.ALARMS:
            alarm = alarms.get(spec.full_name(env))
            if alarm is None:
                continue  # MR-020 reports missing alarms
            v = alarm.values
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
                (k, f"{k} is {v.get(k)!r}, expected {w!r}")
                for k, w in want.items()
                if v.get(k) != w
            ]
            dims = v.get("dimensions") or {}
            if dims != spec.dimensions(env):
                problems.append(
                    ("dimensions", f"dimensions are {dims!r}, expected {spec.dimensions(env)!r}")
                )
            yield from self.observe(alarm, problems, f"{spec.metric} > {spec.threshold:g}")


@plan_guardrail
class AlarmsNotifyOpsTopic(PlanGuardrail):
    id = "MR-024"
    title = "Ops topic mirror-dissonance-{env}-ops-alerts planned; every alarm's actions name it"

    def inspect(self, plan):
        expected = contract.name(plan.env, "ops-alerts")
        topic = named(plan, "aws_sns_topic", "name", expected)
        if topic is None:
            yield not_planned(plan, f"aws_sns_topic {expected}")
            return
        alarms = plan.of_type("aws_cloudwatch_metric_alarm")
        if not alarms:
            yield not_planned(plan, "aws_cloudwatch_metric_alarm")
        for alarm in alarms:
            ok = plan.refers_to(alarm, "alarm_actions", topic)
            yield from self.observe(
                alarm,
                []
                if ok
                else [("alarm_actions", f"alarm_actions must name {topic.config_address}")],
                f"alarm_actions -> {topic.config_address} ({expected})",
            )


# -- dashboard --------------------------------------------------------------------------
@plan_guardrail
class Dashboard(PlanGuardrail):
    id = "MR-031"
    title = "Dashboard mirror-dissonance-{env} planned (its widgets too when the plan knows them)"

    def inspect(self, plan):
        env = plan.env
        expected = f"{contract.PREFIX}-{env}"
        board = named(plan, "aws_cloudwatch_dashboard", "dashboard_name", expected)
        if board is None:
            yield not_planned(plan, f"aws_cloudwatch_dashboard {expected}")
            return
        yield from self.observe(board, [], f"named {expected}")
        if not board.known("dashboard_body"):
            yield Observation(
                board.address,
                board.where("dashboard_body"),
                None,
                f"dashboard_body is {AFTER_APPLY} (it lists the alarms' ARNs): MR-030 read its "
                "widgets as written, the dashboard check reads the live one",
            )
            return
        try:
            body = json.loads(board.values["dashboard_body"])
        except (TypeError, ValueError):
            body = None
        rows, alarm_widgets = dashboard_metrics(body if isinstance(body, dict) else {})
        problems = []
        for namespace, metric in contract.DASHBOARD_METRICS:
            namespace = namespace.format(env=env)
            if metric.startswith("Consumed"):
                for spec in contract.TABLES:
                    if (namespace, metric, spec.name(env)) not in rows:
                        problems.append(("dashboard_body", f"no {metric} row for {spec.name(env)}"))
            elif not any(r[:2] == (namespace, metric) for r in rows):
                problems.append(("dashboard_body", f"no {namespace} {metric} widget"))
        if not any(len(as_list(w.get("alarms"))) >= len(contract.ALARMS) for w in alarm_widgets):
            problems.append(("dashboard_body", "no alarm-status widget listing the 8 alarms"))
        yield from self.observe(board, problems, f"{len(rows)} metric rows")


# -- S3 ---------------------------------------------------------------------------------
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


PUBLIC_ACCESS_FLAGS = (
    "block_public_acls",
    "block_public_policy",
    "ignore_public_acls",
    "restrict_public_buckets",
)


def bucket_problems(plan: PlanView, bucket: Planned) -> list[tuple[str, str]]:
    problems = []
    versioning = _companion(plan, "aws_s3_bucket_versioning", bucket)
    status = first((versioning.values if versioning else {}).get("versioning_configuration"))
    if status.get("status") != "Enabled":
        problems.append(("bucket", "versioning is not Enabled (aws_s3_bucket_versioning)"))
    sse = _companion(plan, "aws_s3_bucket_server_side_encryption_configuration", bucket)
    default = first(
        first((sse.values if sse else {}).get("rule")).get(
            "apply_server_side_encryption_by_default"
        )
    )
    if default.get("sse_algorithm") != "aws:kms":
        problems.append(("bucket", "default encryption is not aws:kms"))
    block = _companion(plan, "aws_s3_bucket_public_access_block", bucket)
    if block is None:
        problems.append(("bucket", "no aws_s3_bucket_public_access_block"))
    else:
        problems += [
            ("bucket", f"{block.address}.{flag} is not true")
            for flag in PUBLIC_ACCESS_FLAGS
            if block.values.get(flag) is not True
        ]
    return problems


@plan_guardrail
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


# -- IAM / OIDC ------------------------------------------------------------------------
@plan_guardrail
class OidcProvider(PlanGuardrail):
    id = "MR-050"
    title = "GitHub OIDC provider with audience sts.amazonaws.com"

    def inspect(self, plan):
        providers = plan.of_type("aws_iam_openid_connect_provider")
        if not providers:
            yield not_planned(plan, "aws_iam_openid_connect_provider")
        for provider in providers:
            problems = []
            # AWS answers the URL without its scheme; the provider keeps what it read.
            url = str(provider.values.get("url") or "")
            if url.removeprefix("https://") != contract.OIDC_URL.removeprefix("https://"):
                problems.append(("url", f"url must be {contract.OIDC_URL}"))
            if as_list(provider.values.get("client_id_list")) != [contract.OIDC_AUDIENCE]:
                problems.append(
                    ("client_id_list", f"client_id_list must be [{contract.OIDC_AUDIENCE!r}]")
                )
            yield from self.observe(provider, problems, contract.OIDC_URL)


def _document(resource: Planned, key: str) -> tuple[Any, str | None]:
    """(parsed JSON document, None) or (None, why it cannot be read)."""
    if not resource.known(key):
        return None, f"{key} is {AFTER_APPLY}"
    try:
        return json.loads(resource.values[key]), None
    except (TypeError, ValueError):
        return None, f"{key} is not a JSON document"


@plan_guardrail
class DeployRoleTrust(PlanGuardrail):
    id = "MR-054"
    title = "Deploy role trusted only by repo:{org}/{repo}:* (trust policy as planned)"

    def inspect(self, plan):
        org, repo = plan.variables.get("github_org") or "", plan.variables.get("github_repo") or ""
        providers = plan.of_type("aws_iam_openid_connect_provider")
        roles = [
            r
            for r in plan.of_type("aws_iam_role")
            if "github" in r.address
            or any(plan.refers_to(r, "assume_role_policy", p) for p in providers)
        ]
        if not roles:
            yield not_planned(plan, "aws_iam_role trusted by GitHub OIDC")
        for role in roles:
            policy, why = _document(role, "assume_role_policy")
            if why and why.endswith(AFTER_APPLY):
                yield Observation(
                    role.address,
                    role.where("assume_role_policy"),
                    None,
                    f"{why} (it names the OIDC provider's ARN); MR-051 read it as written",
                )
                continue
            problems = [("assume_role_policy", p) for p in trust_problems(policy, org, repo)]
            yield from self.observe(role, problems, f"repo:{org}/{repo}:*")


IDENTITY_POLICIES = {
    "aws_iam_role_policy": "policy",
    "aws_iam_policy": "policy",
    "aws_iam_user_policy": "policy",
    "aws_iam_group_policy": "policy",
}
RESOURCE_POLICIES = {
    "aws_iam_role": "assume_role_policy",
    "aws_kms_key": "policy",
    "aws_s3_bucket_policy": "policy",
    "aws_sns_topic_policy": "policy",
    "aws_sns_topic": "policy",
}


def policy_observations(
    plan: PlanView, kinds: dict[str, str], judge, ok: str
) -> Iterator[Observation]:
    """Judge every planned document of ``kinds`` (resource type -> argument) that is set."""
    found = 0
    for resource in (r for r in plan.resources if r.type in kinds):
        key = kinds[resource.type]
        if plan.expression(resource, key) is None:
            continue  # not set in the configuration (a provider default, such as a topic's)
        found += 1
        document, why = _document(resource, key)
        if why:
            shown = None if why.endswith(AFTER_APPLY) else False
            yield Observation(resource.address, resource.where(key), shown, why)
            continue
        problems = [(key, p) for p in judge(document)]
        yield from PlanGuardrail.observe(resource, problems, ok)
    if not found:
        yield not_planned(plan, " or ".join(sorted(set(kinds))))


@plan_guardrail
class IdentityPolicies(PlanGuardrail):
    id = "MR-055"
    title = "Planned IAM policies: no * resource for restrictable actions, no wildcard actions"

    def inspect(self, plan):
        yield from policy_observations(plan, IDENTITY_POLICIES, policy_problems, "least privilege")


@plan_guardrail
class RestoreDrillGrants(PlanGuardrail):
    id = "MR-058"
    title = (
        "Deploy role as planned: restores from no other table than the three, deletes no table "
        "but restore-drill copies"
    )

    def inspect(self, plan):
        role = plan.get("aws_iam_role.github_deploy")
        policies = [
            r
            for r in plan.resources
            if r.type in IDENTITY_POLICIES and role is not None and plan.refers_to(r, "role", role)
        ]
        if not policies:
            yield not_planned(plan, "aws_iam_role_policy of aws_iam_role.github_deploy")
        for policy in policies:
            document, why = _document(policy, "policy")
            if why:
                after_apply = why.endswith(AFTER_APPLY)
                note = f"{why} (it names the tables' ARNs); MR-057 read it as written"
                yield Observation(
                    policy.address,
                    policy.where("policy"),
                    None if after_apply else False,
                    note if after_apply else why,
                )
                continue
            # What the drill lacks is MR-057's; evaluated values must never grant more.
            problems = [
                ("policy", p) for p in drill_grant_problems(plan.env, document, require=False)
            ]
            yield from self.observe(policy, problems, "restore drill scoped to its copies")


@plan_guardrail
class ResourcePolicies(PlanGuardrail):
    id = "MR-056"
    title = "Planned trust, key, bucket and topic policies: no Allow to any principal (*)"

    def inspect(self, plan):
        yield from policy_observations(
            plan, RESOURCE_POLICIES, open_principal_problems, "no open principal"
        )


# -- tags ----------------------------------------------------------------------------------
@plan_guardrail
class DefaultTags(PlanGuardrail):
    id = "MR-064"
    title = "Every taggable resource carries Project, Environment and ManagedBy tags"

    def inspect(self, plan):
        wanted = {"Project": contract.PREFIX, "Environment": plan.env, "ManagedBy": "terraform"}
        taggable = [r for r in plan.resources if "tags_all" in r.values or "tags_all" in r.unknown]
        if not taggable:
            yield not_planned(plan, "a taggable resource")
        for resource in taggable:
            tags = resource.values.get("tags_all")
            if not isinstance(tags, dict) or resource.unknown.get("tags_all") is True:
                yield Observation(
                    resource.address, resource.where("tags_all"), None, f"tags_all {AFTER_APPLY}"
                )
                continue
            wrong = {k: tags.get(k) for k, v in wanted.items() if tags.get(k) != v}
            if wrong and "tags_all" in plan.not_kept.get(resource.address, ()):
                yield Observation(
                    resource.address,
                    resource.where("tags_all"),
                    None,
                    "tags_all is not kept by this backend (a declared sandbox gap); checked on AWS",
                )
                continue
            yield from self.observe(
                resource,
                [("tags_all", f"tags {wrong} differ from {wanted}")] if wrong else [],
                "tagged",
            )


# -- running ---------------------------------------------------------------------------
def load_plan_file(path: Path) -> dict:
    """Read a `terraform show -json` file; ConfigError (one line, the fix) if it is not one."""
    fix = "write it with `terraform show -json <planfile> > FILE`"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not text (the binary plan file itself?)", fix) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", fix) from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}", fix) from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path} holds a JSON {type(document).__name__}, not a plan", fix)
    return document


def run_plan_checks(plan: PlanView, only: Iterable[str] | None = None) -> list[CheckResult]:
    return run_checks(PLAN_REGISTRY, plan, only)


def evaluate_plan_guardrails(
    plan: dict, environment: str, not_kept: dict[str, tuple[str, ...]] | None = None
) -> list[CheckResult]:
    """Run every plan guardrail on a ``terraform show -json`` document (a dict) for ``environment``.

    ``not_kept`` names attributes the backend does not keep (address -> attributes): a
    check that finds them wrong says so as SKIPPED instead of failing.
    """
    return run_plan_checks(read_plan(plan, environment, not_kept))
