"""Every registered guardrail has a passing and a failing fixture, and each gives its outcome.

Static checks read a copy of the real infra/ (infra/terraform with its tfvars, infra/gcp):
the copy as shipped passes each of them; the copy with one edit to one real file fails
the check, with the message the edit provokes. An edit asserts that the text it replaces
is there (once, or the first after a named line), so a change to infra/ fails here
instead of leaving a fixture that tests nothing. Plan checks read small
``terraform show -json`` documents built here from planned resources, passing as built
and failing with one change. Each fixture runs its check alone.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mirror_rollout import PROJECT_ROOT, contract
from mirror_rollout.results import CheckResult, Status
from tasks.guardrails import view
from tasks.guardrails.checks import REGISTRY, run_static_checks
from tasks.guardrails.common import GUARDRAILS
from tasks.guardrails.families.alarms import contract_values
from tasks.guardrails.plan_checks import PLAN_REGISTRY, read_plan, run_plan_checks
from tasks.guardrails.view import InfraView, load_view

ENV = "staging"


# -- static fixtures: the real infra/ and one edit --------------------------------------
@dataclass(frozen=True)
class Edit:
    """Replace ``old`` by ``new`` in infra/``file``: its only occurrence, or the first after
    the line ``within`` (which must occur once)."""

    file: str
    old: str
    new: str
    says: str  # part of the failure's message
    within: str | None = None

    def apply(self, text: str) -> str:
        anchor = self.within if self.within is not None else self.old
        assert text.count(anchor) == 1, (
            f"{anchor!r} occurs {text.count(anchor)} times in {self.file}"
        )
        at = text.find(self.old, text.index(anchor))
        assert at >= 0, f"no {self.old!r} after {anchor!r} in {self.file}"
        return text[:at] + self.new + text[at + len(self.old) :]


MAIN, OIDC, GCP = "terraform/main.tf", "terraform/github-oidc.tf", "gcp/main.tf"


def resource(rtype: str, name: str) -> str:
    return f'resource "{rtype}" "{name}"'


CONSENT = resource("aws_dynamodb_table", "consent")
COUNTER = resource("aws_dynamodb_table", "block_counter")
TOPIC_BLOCK = resource("aws_sns_topic", "ops_alerts") + " {\n"
NONCE_NAME = '"/guardian/${var.environment}/redaction_nonce_v1"'


def ssm_parameter(name: str, value: str) -> str:
    return f'{resource("aws_ssm_parameter", name)} {{\n  name = {value}\n  type = "String"\n}}\n'


def adding(block: str, says: str) -> Edit:
    """An edit that adds ``block`` to main.tf (before the ops topic) for a check the real
    infra gives nothing to break."""
    return Edit(MAIN, TOPIC_BLOCK, block + TOPIC_BLOCK, says)


STATIC: dict[str, Edit] = {
    "MR-001": Edit(
        MAIN,
        "enabled = var.pitr_enabled",
        "enabled = false",
        "point_in_time_recovery.enabled is false, must be true",
        within=CONSENT,
    ),
    "MR-002": Edit(
        MAIN,
        "kms_key_arn = aws_kms_key.main.arn",
        "kms_key_arn = null",
        "kms_key_arn must refer to the project CMK",
        within=COUNTER,
    ),
    "MR-004": Edit(
        MAIN,
        "enable_key_rotation     = true",
        "enable_key_rotation     = false",
        "enable_key_rotation must be true",
    ),
    "MR-009": Edit(MAIN, '"bucketKey"', '"counterId"', "table keys counterId", within=COUNTER),
    "MR-010": adding(
        ssm_parameter("first", NONCE_NAME),
        "are runtime data owned by the nonce-bootstrap and nonce-rotation flows",
    ),
    "MR-011": Edit(
        MAIN,
        NONCE_NAME,
        '"guardian/${var.environment}/redaction/nonce/v1"',
        "uses the retired guardian/{env}/redaction/nonce/vN form",
    ),
    "MR-012": adding(
        ssm_parameter("app_config", f'"/mirror/{"ab" * 32}"'),
        "holds a 64-hex literal that looks like a nonce",
    ),
    "MR-022": Edit(
        MAIN,
        "alarm_actions       = [aws_sns_topic.ops_alerts.arn]",
        "alarm_actions       = []",
        "alarm_actions must include aws_sns_topic.ops_alerts.arn",
        within=resource("aws_cloudwatch_metric_alarm", "circuit_breaker_triggered"),
    ),
    "MR-023": Edit(
        MAIN,
        "kms_master_key_id = aws_kms_key.main.arn",
        'kms_master_key_id = "alias/aws/sns"',
        "kms_master_key_id must refer to the project CMK",
        within=TOPIC_BLOCK,
    ),
    "MR-030": Edit(
        "terraform/cloudwatch-dashboard.tf",
        '["AWS/DynamoDB", "UserErrors", { label = "UserErrors" }],',
        "",
        "no AWS/DynamoDB UserErrors widget",
    ),
    "MR-040": Edit(
        MAIN,
        'status = "Enabled"',
        'status = "Suspended"',
        "versioning status is 'Suspended', must be Enabled",
        within=resource("aws_s3_bucket_versioning", "baselines"),
    ),
    "MR-041": Edit(
        MAIN,
        'sse_algorithm     = "aws:kms"',
        'sse_algorithm     = "AES256"',
        "sse_algorithm is 'AES256', must be aws:kms",
        within=resource("aws_s3_bucket_server_side_encryption_configuration", "baselines"),
    ),
    "MR-042": Edit(
        MAIN,
        "ignore_public_acls      = true",
        "ignore_public_acls      = false",
        "ignore_public_acls must be true",
        within=resource("aws_s3_bucket_public_access_block", "baselines"),
    ),
    "MR-043": Edit(
        MAIN,
        "enable_log_file_validation    = true",
        "enable_log_file_validation    = false",
        "enable_log_file_validation must be true",
    ),
    "MR-051": Edit(
        OIDC,
        '"repo:${var.github_org}/${var.github_repo}:*"',
        '"repo:${var.github_org}/*"',
        "is wider than repo:PhaseMirror/Phase-Mirror:*",
    ),
    "MR-052": Edit(
        OIDC,
        '"cloudwatch:GetDashboard"',
        '"cloudwatch:*"',
        "statement ProjectDashboard allows wildcard actions ['cloudwatch:*']",
    ),
    "MR-053": Edit(
        OIDC,
        "parameter/guardian/${var.environment}/*",
        "parameter/other/*",
        "no policy allows ssm:GetParameter on /guardian/staging/redaction_nonce_v1",
    ),
    "MR-057": Edit(
        OIDC,
        "table/${local.prefix}-*-drill-*",
        "table/*",
        "statement RestoreDrillCopies allows deleting '*', not only drill copies",
    ),
    "MR-060": Edit(
        "terraform/backend.tf",
        "encrypt              = true",
        "encrypt              = false",
        "encrypt must be true",
    ),
    "MR-061": Edit(
        "terraform/staging.tfvars",
        "pitr_enabled ",
        "pitr_enabed  ",
        "pitr_enabed is not a variable of infra/terraform (typo?)",
    ),
    "MR-062": Edit(
        MAIN,
        "delete_after = local.backup_retention_days",
        "cold_storage_after = local.backup_retention_days",
        "rule 'daily': lifecycle.delete_after is required",
    ),
    "MR-063": Edit(
        MAIN,
        "kms_master_key_id = aws_kms_key.main.arn\n",
        "kms_master_key_id = aws_kms_key.main.arn\n  lifecycle {\n    ignore_changes = [tags, policy]\n  }\n",
        "ignore_changes hides drift of ['policy']",
        within=TOPIC_BLOCK,
    ),
    "MR-070": Edit(
        GCP,
        '"POINT_IN_TIME_RECOVERY_ENABLED"',
        '"POINT_IN_TIME_RECOVERY_DISABLED"',
        "point_in_time_recovery_enablement is 'POINT_IN_TIME_RECOVERY_DISABLED'",
    ),
    "MR-071": Edit(
        GCP,
        "uniform_bucket_level_access = true",
        "uniform_bucket_level_access = false",
        "uniform_bucket_level_access must be true",
    ),
    "MR-072": Edit(
        GCP,
        "default_kms_key_name = google_kms_crypto_key.main.id",
        'default_kms_key_name = "x"',
        "encryption.default_kms_key_name must refer to the project crypto key",
    ),
    "MR-073": Edit(
        GCP,
        '"7776000s"',
        '"31536000s"',
        "rotation_period '31536000s' must be set and at most 7776000s",
    ),
    "MR-074": Edit(
        GCP,
        '== \\"${local.repository}\\"',
        '== \\"${var.github_org}/other\\"',
        "attribute_condition must require assertion.repository == 'PhaseMirror/Phase-Mirror'",
    ),
    "MR-075": Edit(
        GCP,
        "kms_key_name = google_kms_crypto_key.main.id",
        'kms_key_name = "x"',
        "replication must use customer_managed_encryption with the project key",
        within="customer_managed_encryption {",
    ),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the real infra/ per module: the root every static fixture starts from."""
    root = tmp_path_factory.mktemp("shipped")
    shutil.copytree(PROJECT_ROOT / "infra", root / "infra")
    return root


@pytest.fixture(scope="module")
def shipped(template: Path) -> InfraView:
    """The copy as shipped, read once: the passing fixture of every static check."""
    return load_view(ENV, template)


@pytest.fixture(scope="module", autouse=True)
def parse_each_text_once() -> Iterator[None]:
    """Parse each distinct file text once, so an edited copy re-parses only the file its
    edit changed (what load_view reads is the same; only the parser's work is shared)."""
    parse, trees = view.parse_file, {}

    def parse_once(path: Path, shown: str) -> Any:
        key = (shown, path.read_bytes())
        if key not in trees:
            trees[key] = parse(path, shown)
        return trees[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(view, "parse_file", parse_once)
        yield


def broken_results(template: Path, tmp_path: Path, check_id: str) -> list[CheckResult]:
    edit = STATIC[check_id]
    shutil.copytree(template / "infra", tmp_path / "infra")
    path = tmp_path / "infra" / edit.file
    path.write_text(edit.apply(path.read_text()))
    return run_static_checks(load_view(ENV, tmp_path), only=[check_id])


# -- plan fixtures: planned resources and one change ------------------------------------
@dataclass(frozen=True)
class Planned:
    address: str
    values: dict[str, Any]
    refs: tuple[tuple[str, str], ...] = ()  # (argument path, address it refers to)


def plan_document(resources: list[Planned]) -> dict[str, Any]:
    """A ``terraform show -json`` document of ``resources`` (what read_plan reads of one)."""
    planned, configured = [], []
    for r in resources:
        rtype, _, name = r.address.partition(".")
        planned.append(
            {
                "address": r.address,
                "mode": "managed",
                "type": rtype,
                "name": name,
                "values": r.values,
            }
        )
        expressions: dict[str, Any] = {k: {"constant_value": v} for k, v in r.values.items()}
        for path, target in r.refs:
            node = expressions
            *blocks, argument = path.split(".")
            for block in blocks:  # a nested block: Terraform lists one entry per block
                if not isinstance(node.get(block), list):
                    node[block] = [{}]
                node = node[block][0]
            node[argument] = {"references": [f"{target}.arn", target]}
        configured.append({"address": r.address, "expressions": expressions})
    return {
        "format_version": "1.2",
        "variables": {
            "environment": {"value": ENV},
            "github_org": {"value": "PhaseMirror"},
            "github_repo": {"value": "Phase-Mirror"},
        },
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": [],
        "configuration": {"root_module": {"resources": configured}},
    }


def values_of(document: dict, address: str) -> dict[str, Any]:
    resources = document["planned_values"]["root_module"]["resources"]
    return next(r for r in resources if r["address"] == address)["values"]


def expressions_of(document: dict, address: str) -> dict[str, Any]:
    resources = document["configuration"]["root_module"]["resources"]
    return next(r for r in resources if r["address"] == address)["expressions"]


ACCOUNT = "111122223333"
KEY = Planned(
    "aws_kms_key.main",
    {"deletion_window_in_days": 7, "enable_key_rotation": True},
)
TOPIC = Planned(
    "aws_sns_topic.ops_alerts",
    {
        "name": contract.name(ENV, "ops-alerts"),
        "tags_all": {"Project": contract.PREFIX, "Environment": ENV, "ManagedBy": "terraform"},
    },
    (("kms_master_key_id", "aws_kms_key.main"),),
)


def table_arn(key: str) -> str:
    return f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{contract.name(ENV, key)}"


def planned_table(spec: contract.TableSpec) -> Planned:
    keys = [spec.hash_key, spec.range_key, *(spec.gsi[1:] if spec.gsi else ())]
    return Planned(
        spec.address,
        {
            "name": spec.name(ENV),
            "billing_mode": "PAY_PER_REQUEST",
            "hash_key": spec.hash_key,
            "range_key": spec.range_key,
            "attribute": [{"name": k, "type": "S"} for k in keys if k],
            "ttl": [{"enabled": True, "attribute_name": spec.ttl_attribute}]
            if spec.ttl_attribute
            else [],
            "global_secondary_index": [
                {
                    "name": spec.gsi[0],
                    "hash_key": spec.gsi[1],
                    "range_key": spec.gsi[2],
                    "projection_type": "ALL",
                }
            ]
            if spec.gsi
            else [],
            "point_in_time_recovery": [{"enabled": True}],
            "server_side_encryption": [{"enabled": True}],
        },
        (("server_side_encryption.kms_key_arn", "aws_kms_key.main"),),
    )


def planned_alarm(spec: contract.AlarmSpec) -> Planned:
    return Planned(
        f"aws_cloudwatch_metric_alarm.{spec.name.replace('-', '_')}",
        {
            "alarm_name": spec.full_name(ENV),
            **contract_values(spec, ENV),
            "dimensions": spec.dimensions(ENV),
        },
        (("alarm_actions", TOPIC.address),),
    )


def planned_buckets(suffix: str) -> list[Planned]:
    name = contract.name(ENV, suffix)
    flags = dict.fromkeys(
        (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        ),
        True,
    )
    address = suffix.replace("-", "_")
    default = {"sse_algorithm": "aws:kms"}
    return [
        Planned(f"aws_s3_bucket.{address}", {"bucket": name}),
        Planned(
            f"aws_s3_bucket_versioning.{address}",
            {"bucket": name, "versioning_configuration": [{"status": "Enabled"}]},
        ),
        Planned(
            f"aws_s3_bucket_server_side_encryption_configuration.{address}",
            {"bucket": name, "rule": [{"apply_server_side_encryption_by_default": [default]}]},
        ),
        Planned(f"aws_s3_bucket_public_access_block.{address}", {"bucket": name, **flags}),
    ]


def dashboard_body() -> str:
    tables = [spec.name(ENV) for spec in contract.TABLES]
    rows = [
        ["AWS/DynamoDB", metric, "TableName", table]
        for metric in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits")
        for table in tables
    ]
    rows += [
        ["AWS/DynamoDB", "UserErrors"],
        ["AWS/DynamoDB", "SystemErrors", "TableName", tables[0]],
    ]
    rows += [
        [f"MirrorDissonance/{ENV}", m] for m in ("SSMParameterFailures", "CircuitBreakerTriggers")
    ]
    alarms = [
        f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{a.full_name(ENV)}" for a in contract.ALARMS
    ]
    return json.dumps(
        {
            "widgets": [
                {"type": "metric", "properties": {"metrics": rows}},
                {"type": "alarm", "properties": {"alarms": alarms}},
            ]
        }
    )


OIDC_PROVIDER = Planned(
    "aws_iam_openid_connect_provider.github",
    {"url": contract.OIDC_URL, "client_id_list": [contract.OIDC_AUDIENCE]},
)
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "GitHubActions",
            "Effect": "Allow",
            "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/x"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {"token.actions.githubusercontent.com:aud": contract.OIDC_AUDIENCE},
                "StringLike": {
                    "token.actions.githubusercontent.com:sub": "repo:PhaseMirror/Phase-Mirror:*"
                },
            },
        }
    ],
}
DEPLOY_ROLE = Planned("aws_iam_role.github_deploy", {"assume_role_policy": json.dumps(TRUST)})
DEPLOY_GRANTS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "RestoreFromTheTables",
            "Effect": "Allow",
            "Action": ["dynamodb:RestoreTableToPointInTime"],
            "Resource": [table_arn(spec.key) for spec in contract.TABLES],
        },
        {
            "Sid": "DrillCopies",
            "Effect": "Allow",
            "Action": ["dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:DeleteTable"],
            "Resource": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{contract.name(ENV, '*-drill-*')}",
        },
    ],
}
DEPLOY_POLICY = Planned(
    "aws_iam_role_policy.deploy",
    {"policy": json.dumps(DEPLOY_GRANTS)},
    (("role", DEPLOY_ROLE.address),),
)


def grants(document: dict, address: str, statement: dict) -> None:
    """Add ``statement`` to the JSON policy of ``address`` (a change for a failing fixture)."""
    values = values_of(document, address)
    key = "policy" if "policy" in values else "assume_role_policy"
    policy = json.loads(values[key])
    policy["Statement"].append(statement)
    values[key] = json.dumps(policy)


@dataclass(frozen=True)
class PlanCase:
    resources: Callable[[], list[Planned]]
    breaks: Callable[[dict], None]  # changes the plan document so that the check fails
    says: str


def tables() -> list[Planned]:
    return [KEY, *(planned_table(spec) for spec in contract.TABLES)]


def alarms() -> list[Planned]:
    return [TOPIC, *(planned_alarm(spec) for spec in contract.ALARMS)]


def buckets() -> list[Planned]:
    return [*planned_buckets("baselines"), *planned_buckets("audit-logs")]


def drop_alarm(document: dict) -> None:
    resources = document["planned_values"]["root_module"]["resources"]
    resources[:] = [
        r for r in resources if r["values"].get("alarm_name") != contract.ALARMS[0].full_name(ENV)
    ]


def no_user_errors(document: dict) -> None:
    values = values_of(document, "aws_cloudwatch_dashboard.main")
    values["dashboard_body"] = values["dashboard_body"].replace('"UserErrors"', '"Other"')


ALARM = planned_alarm(contract.ALARMS[0]).address
PLAN: dict[str, PlanCase] = {
    "MR-003": PlanCase(
        tables,
        lambda d: values_of(d, "aws_dynamodb_table.consent").update(billing_mode="PROVISIONED"),
        "billing_mode must be PAY_PER_REQUEST",
    ),
    "MR-005": PlanCase(
        lambda: [KEY],
        lambda d: values_of(d, KEY.address).update(deletion_window_in_days=30),
        "deletion_window_in_days is 30 for staging, expected 7",
    ),
    "MR-006": PlanCase(
        lambda: [
            KEY,
            Planned(
                "aws_kms_alias.main",
                {"name": f"alias/{contract.PREFIX}-{ENV}"},
                (("target_key_id", KEY.address),),
            ),
        ],
        lambda d: expressions_of(d, "aws_kms_alias.main").pop("target_key_id"),
        "target_key_id must refer to the project key",
    ),
    "MR-007": PlanCase(
        lambda: [KEY, TOPIC],
        lambda d: expressions_of(d, TOPIC.address).update(
            kms_master_key_id={"constant_value": "alias/aws/sns"}
        ),
        "kms_master_key_id must refer to aws_kms_key.main",
    ),
    "MR-008": PlanCase(
        tables,
        lambda d: values_of(d, "aws_dynamodb_table.consent").update(
            point_in_time_recovery=[{"enabled": False}]
        ),
        "point_in_time_recovery.enabled is not true",
    ),
    "MR-013": PlanCase(
        lambda: [Planned("aws_ssm_parameter.app_config", {"name": "/mirror/staging/app-config"})],
        lambda d: values_of(d, "aws_ssm_parameter.app_config").update(
            name=contract.nonce_parameter(ENV, 1)
        ),
        "are runtime data owned by the nonce-bootstrap and nonce-rotation flows",
    ),
    "MR-020": PlanCase(
        alarms, drop_alarm, f"alarm {contract.ALARMS[0].full_name(ENV)} is not planned"
    ),
    "MR-021": PlanCase(
        alarms,
        lambda d: values_of(d, ALARM).update(threshold=99),
        "threshold is 99, expected 10",
    ),
    "MR-024": PlanCase(
        alarms,
        lambda d: expressions_of(d, ALARM).pop("alarm_actions"),
        "alarm_actions must name aws_sns_topic.ops_alerts",
    ),
    "MR-031": PlanCase(
        lambda: [
            Planned(
                "aws_cloudwatch_dashboard.main",
                {"dashboard_name": f"{contract.PREFIX}-{ENV}", "dashboard_body": dashboard_body()},
            )
        ],
        no_user_errors,
        "no AWS/DynamoDB UserErrors widget",
    ),
    "MR-044": PlanCase(
        buckets,
        lambda d: values_of(d, "aws_s3_bucket_versioning.audit_logs").update(
            versioning_configuration=[{"status": "Suspended"}]
        ),
        "versioning is not Enabled (aws_s3_bucket_versioning)",
    ),
    "MR-050": PlanCase(
        lambda: [OIDC_PROVIDER],
        lambda d: values_of(d, OIDC_PROVIDER.address).update(client_id_list=["other"]),
        "client_id_list must be ['sts.amazonaws.com']",
    ),
    "MR-054": PlanCase(
        lambda: [OIDC_PROVIDER, DEPLOY_ROLE],
        lambda d: values_of(d, DEPLOY_ROLE.address).update(
            assume_role_policy=json.dumps(TRUST).replace("Phase-Mirror:*", "*")
        ),
        "is wider than repo:PhaseMirror/Phase-Mirror:*",
    ),
    "MR-055": PlanCase(
        lambda: [DEPLOY_ROLE, DEPLOY_POLICY],
        lambda d: grants(
            d,
            DEPLOY_POLICY.address,
            {"Sid": "All", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        ),
        "statement All allows wildcard actions ['s3:*']",
    ),
    "MR-056": PlanCase(
        lambda: [DEPLOY_ROLE],
        lambda d: grants(
            d,
            DEPLOY_ROLE.address,
            {"Sid": "Anyone", "Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"},
        ),
        "statement Anyone allows any principal (*)",
    ),
    "MR-058": PlanCase(
        lambda: [DEPLOY_ROLE, DEPLOY_POLICY],
        lambda d: grants(
            d,
            DEPLOY_POLICY.address,
            {
                "Sid": "Cleanup",
                "Effect": "Allow",
                "Action": "dynamodb:DeleteTable",
                "Resource": table_arn("consent"),
            },
        ),
        f"statement Cleanup allows deleting '{contract.name(ENV, 'consent')}', not only drill copies",
    ),
    "MR-064": PlanCase(
        lambda: [TOPIC],
        lambda d: values_of(d, TOPIC.address)["tags_all"].update(ManagedBy="console"),
        "tags {'ManagedBy': 'console'} differ from",
    ),
}


def plan_results(check_id: str, broken: bool) -> list[CheckResult]:
    document = copy.deepcopy(plan_document(PLAN[check_id].resources()))
    if broken:
        PLAN[check_id].breaks(document)
    return run_plan_checks(read_plan(document, ENV), only=[check_id])


# -- the tests ---------------------------------------------------------------------------
def test_every_registered_guardrail_has_a_fixture_pair():
    assert set(GUARDRAILS) == set(REGISTRY) | set(PLAN_REGISTRY)
    assert set(STATIC) == set(REGISTRY), "static ids without (or with stale) fixtures"
    assert set(PLAN) == set(PLAN_REGISTRY), "plan ids without (or with stale) fixtures"


def test_every_guardrail_has_an_id_a_title_and_a_severity():
    for check_id, cls in GUARDRAILS.items():
        assert cls.id == check_id and cls.title and cls.severity and cls.reads in ("infra", "plan")


def assert_passes(results: list[CheckResult], check_id: str) -> None:
    assert results, f"{check_id} gave no result"
    assert {r.check_id for r in results} == {check_id}
    assert {r.status for r in results} == {Status.PASS}, [r.message for r in results]


def assert_fails(results: list[CheckResult], check_id: str, says: str) -> None:
    failures = [r for r in results if r.status is Status.FAIL]
    assert failures, f"{check_id} did not fail: {[r.message for r in results]}"
    assert {r.check_id for r in results} == {check_id}
    assert any(says in r.message for r in failures), [r.message for r in failures]


@pytest.mark.parametrize("check_id", sorted(REGISTRY))
def test_static_guardrail_passes_the_shipped_infra(shipped, check_id):
    assert_passes(run_static_checks(shipped, only=[check_id]), check_id)


@pytest.mark.parametrize("check_id", sorted(REGISTRY))
def test_static_guardrail_fails_its_edit_of_the_infra(template, tmp_path, check_id):
    assert_fails(broken_results(template, tmp_path, check_id), check_id, STATIC[check_id].says)


@pytest.mark.parametrize("check_id", sorted(PLAN_REGISTRY))
def test_plan_guardrail_passes_its_fixture(check_id):
    assert_passes(plan_results(check_id, broken=False), check_id)


@pytest.mark.parametrize("check_id", sorted(PLAN_REGISTRY))
def test_plan_guardrail_fails_its_broken_fixture(check_id):
    assert_fails(plan_results(check_id, broken=True), check_id, PLAN[check_id].says)
