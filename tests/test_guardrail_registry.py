"""Every registered guardrail has a passing and a failing fixture, and each gives its outcome.

Static checks read small HCL pieces (tests/fixtures/guardrails): the pieces a check reads
pass it; the same pieces with one edit fail it, with the message the edit provokes. Plan
checks read small ``terraform show -json`` documents built here from planned resources,
passing as built and failing with one change. Each fixture runs its check alone, so a
fixture holds only what its check reads.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mirror_rollout import PROJECT_ROOT, contract
from mirror_rollout.results import CheckResult, Status
from tasks.guardrails.checks import REGISTRY, run_static_checks
from tasks.guardrails.common import GUARDRAILS
from tasks.guardrails.plan_checks import PLAN_REGISTRY, read_plan, run_plan_checks
from tasks.guardrails.view import load_view

PIECES = Path(__file__).parent / "fixtures" / "guardrails"
ENV = "staging"


# -- static fixtures: pieces of HCL and one edit --------------------------------------
@dataclass(frozen=True)
class StaticCase:
    pieces: tuple[str, ...]  # terraform/<piece>.tf, or "gcp" for infra/gcp/main.tf
    edit: tuple[str, str, str]  # (piece, text, replacement) that breaks the check
    says: str  # part of the failure's message


AWS = ("variables", "key")
TABLES = (*AWS, "tables")
POLICIES = (*AWS, "tables", "oidc", "deploy_policy")

STATIC: dict[str, StaticCase] = {
    "MR-001": StaticCase(
        TABLES,
        (
            "tables",
            "enabled = true\n  }\n\n  server_side_encryption",
            "enabled = false\n  }\n\n  server_side_encryption",
        ),
        "point_in_time_recovery.enabled is false, must be true",
    ),
    "MR-002": StaticCase(
        TABLES,
        ("tables", "kms_key_arn = aws_kms_key.main.arn", "kms_key_arn = null"),
        "kms_key_arn must refer to the project CMK",
    ),
    "MR-004": StaticCase(
        AWS,
        ("key", "enable_key_rotation = true", "enable_key_rotation = false"),
        "enable_key_rotation must be true",
    ),
    "MR-009": StaticCase(
        TABLES,
        ("tables", 'hash_key     = "bucketKey"', 'hash_key     = "counterId"'),
        "counterId",
    ),
    "MR-010": StaticCase(
        (*AWS, "ssm"),
        ("ssm", '"/mirror/staging/app-config"', '"/guardian/staging/redaction_nonce_v1"'),
        "are runtime data owned by the nonce-bootstrap and nonce-rotation flows",
    ),
    "MR-011": StaticCase(
        (*AWS, "ssm"),
        ("ssm", 'value = "{}"', 'value = "guardian/staging/redaction/nonce/v1"'),
        "uses the retired guardian/{env}/redaction/nonce/vN form",
    ),
    "MR-012": StaticCase(
        (*AWS, "ssm"),
        ("ssm", 'value = "{}"', f'value = "{"ab" * 32}"'),
        "holds a 64-hex literal that looks like a nonce",
    ),
    "MR-022": StaticCase(
        (*AWS, "alerts"),
        ("alerts", "alarm_actions = [aws_sns_topic.ops_alerts.arn]", "alarm_actions = []"),
        "alarm_actions must include aws_sns_topic.ops_alerts.arn",
    ),
    "MR-023": StaticCase(
        (*AWS, "alerts"),
        (
            "alerts",
            "kms_master_key_id = aws_kms_key.main.arn",
            'kms_master_key_id = "alias/aws/sns"',
        ),
        "kms_master_key_id must refer to the project CMK",
    ),
    "MR-030": StaticCase(
        (*TABLES, "alerts", "dashboard"),
        ("dashboard", '["AWS/DynamoDB", "UserErrors"],', ""),
        "no AWS/DynamoDB UserErrors widget",
    ),
    "MR-040": StaticCase(
        (*AWS, "buckets"),
        ("buckets", 'status = "Enabled"', 'status = "Suspended"'),
        "versioning status is 'Suspended', must be Enabled",
    ),
    "MR-041": StaticCase(
        (*AWS, "buckets"),
        ("buckets", 'sse_algorithm     = "aws:kms"', 'sse_algorithm     = "AES256"'),
        "sse_algorithm is 'AES256', must be aws:kms",
    ),
    "MR-042": StaticCase(
        (*AWS, "buckets"),
        ("buckets", "ignore_public_acls      = true", "ignore_public_acls      = false"),
        "ignore_public_acls must be true",
    ),
    "MR-043": StaticCase(
        (*AWS, "audit"),
        ("audit", "enable_log_file_validation = true", "enable_log_file_validation = false"),
        "enable_log_file_validation must be true",
    ),
    "MR-051": StaticCase(
        (*AWS, "oidc"),
        ("oidc", '"repo:PhaseMirror/Phase-Mirror:*"', '"repo:PhaseMirror/*"'),
        "is wider than repo:PhaseMirror/Phase-Mirror:*",
    ),
    "MR-052": StaticCase(
        POLICIES,
        ("deploy_policy", 'Action   = ["ssm:GetParameter"]', 'Action   = ["ssm:*"]'),
        "allows wildcard actions ['ssm:*']",
    ),
    "MR-053": StaticCase(
        POLICIES,
        ("deploy_policy", "parameter/guardian/staging/redaction_nonce_v*", "parameter/other/*"),
        "no policy allows ssm:GetParameter on /guardian/staging/redaction_nonce_v1",
    ),
    "MR-057": StaticCase(
        POLICIES,
        ("deploy_policy", "table/mirror-dissonance-staging-*-drill-*", "table/*"),
        "allows deleting '*', not only drill copies",
    ),
    "MR-060": StaticCase(
        (*AWS, "backend"),
        ("backend", "encrypt              = true", "encrypt              = false"),
        "encrypt must be true",
    ),
    "MR-061": StaticCase(
        AWS,
        (
            "staging.tfvars",
            'environment = "staging"',
            'environment = "staging"\nregoin = "us-east-1"',
        ),
        "regoin is not a variable of infra/terraform (typo?)",
    ),
    "MR-062": StaticCase(
        (*AWS, "backup"),
        ("backup", "delete_after = 35", "cold_storage_after = 35"),
        "rule 'daily': lifecycle.delete_after is required",
    ),
    "MR-063": StaticCase(
        (*AWS, "lifecycle"),
        ("lifecycle", "ignore_changes = [tags]", "ignore_changes = [tags, policy]"),
        "ignore_changes hides drift of ['policy']",
    ),
    "MR-070": StaticCase(
        (*AWS, "gcp"),
        ("gcp", '"POINT_IN_TIME_RECOVERY_ENABLED"', '"POINT_IN_TIME_RECOVERY_DISABLED"'),
        "point_in_time_recovery_enablement is 'POINT_IN_TIME_RECOVERY_DISABLED'",
    ),
    "MR-071": StaticCase(
        (*AWS, "gcp"),
        ("gcp", "uniform_bucket_level_access = true", "uniform_bucket_level_access = false"),
        "uniform_bucket_level_access must be true",
    ),
    "MR-072": StaticCase(
        (*AWS, "gcp"),
        (
            "gcp",
            "default_kms_key_name = google_kms_crypto_key.main.id",
            'default_kms_key_name = "x"',
        ),
        "encryption.default_kms_key_name must refer to the project crypto key",
    ),
    "MR-073": StaticCase(
        (*AWS, "gcp"),
        ("gcp", '"7776000s"', '"31536000s"'),
        "rotation_period '31536000s' must be set and at most 7776000s",
    ),
    "MR-074": StaticCase(
        (*AWS, "gcp"),
        ("gcp", "'PhaseMirror/Phase-Mirror'", "'PhaseMirror/other'"),
        "attribute_condition must require assertion.repository == 'PhaseMirror/Phase-Mirror'",
    ),
    "MR-075": StaticCase(
        (*AWS, "gcp"),
        ("gcp", "  kms_key_name = google_kms_crypto_key.main.id", '  kms_key_name = "x"'),
        "replication must use customer_managed_encryption with the project key",
    ),
}

TFVARS = {
    "staging.tfvars": 'environment = "staging"\n',
    "production.tfvars": 'environment = "production"\n',
}


def write_infra(root: Path, case: StaticCase, broken: bool) -> Path:
    """infra/ of ``case``'s pieces under ``root`` (with its edit when ``broken``)."""
    texts = {
        p: (PIECES / ("gcp/main.tf" if p == "gcp" else f"terraform/{p}.tf")).read_text()
        for p in case.pieces
    }
    texts.update(TFVARS)
    if broken:
        piece, old, new = case.edit
        assert old in texts[piece], f"the edit of {piece} finds no {old!r}"
        texts[piece] = texts[piece].replace(old, new, 1)
    terraform = root / "infra" / "terraform"
    terraform.mkdir(parents=True)
    for piece, text in texts.items():
        if piece == "gcp":
            (root / "infra" / "gcp").mkdir()
            (root / "infra" / "gcp" / "main.tf").write_text(text)
        else:
            (terraform / (piece if piece.endswith(".tfvars") else f"{piece}.tf")).write_text(text)
    # MR-009 reads the Oracle's access patterns next to the Terraform.
    shutil.copy(PROJECT_ROOT / "infra" / "data-plane.yaml", root / "infra" / "data-plane.yaml")
    return root


def static_results(tmp_path: Path, check_id: str, broken: bool) -> list[CheckResult]:
    root = write_infra(tmp_path, STATIC[check_id], broken)
    return run_static_checks(load_view(ENV, root), only=[check_id])


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
            "namespace": spec.namespace(ENV),
            "metric_name": spec.metric,
            "statistic": spec.statistic,
            "threshold": spec.threshold,
            "comparison_operator": spec.comparison,
            "period": spec.period,
            "evaluation_periods": spec.evaluation_periods,
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
def test_static_guardrail_passes_its_fixture(tmp_path, check_id):
    assert_passes(static_results(tmp_path, check_id, broken=False), check_id)


@pytest.mark.parametrize("check_id", sorted(REGISTRY))
def test_static_guardrail_fails_its_broken_fixture(tmp_path, check_id):
    assert_fails(static_results(tmp_path, check_id, broken=True), check_id, STATIC[check_id].says)


@pytest.mark.parametrize("check_id", sorted(PLAN_REGISTRY))
def test_plan_guardrail_passes_its_fixture(check_id):
    assert_passes(plan_results(check_id, broken=False), check_id)


@pytest.mark.parametrize("check_id", sorted(PLAN_REGISTRY))
def test_plan_guardrail_fails_its_broken_fixture(check_id):
    assert_fails(plan_results(check_id, broken=True), check_id, PLAN[check_id].says)
