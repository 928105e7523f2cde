"""Guardrails: the shipped infra and its real plans pass; each broken invariant fails exactly its check.

Static checks read a copy of infra/ broken one edit at a time. Plan checks read
`terraform show -json` documents of real plans (tests/fixtures/plans, made by
regenerate.sh there), mutated one invariant at a time.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.environments import environments
from mirror_rollout.errors import ConfigError
from mirror_rollout.results import Status
from tasks.guardrails.checks import REGISTRY, evaluate_guardrails
from tasks.guardrails.plan_checks import PLAN_REGISTRY, evaluate_plan_guardrails

PLANS = Path(__file__).parent / "fixtures" / "plans"
LOCATION = re.compile(r"^infra/(terraform|gcp)/[\w.-]+:\d+$")


def failing(results) -> set[str]:
    return {r.check_id for r in results if r.status is Status.FAIL}


def line_of(path: Path, marker: str, within: str | None = None) -> int:
    """1-based line of the first ``marker`` (after the line holding ``within``)."""
    text = path.read_text()
    start = text.index(within) if within else 0
    return text.count("\n", 0, text.index(marker, start)) + 1


# -- static: the shipped infra ------------------------------------------------------
def test_static_and_plan_ids_are_distinct():
    assert not set(REGISTRY) & set(PLAN_REGISTRY)


@pytest.mark.parametrize("env", environments())
def test_shipped_infra_passes_every_static_check(env):
    results = evaluate_guardrails(env)
    assert failing(results) == set()
    assert {r.status for r in results} == {Status.PASS}
    assert {r.check_id for r in results} == set(REGISTRY)
    # every PASS carries the evidence it was based on
    assert all(r.evidence for r in results)


def test_guardrails_import_no_hcl_evaluator_nor_sandbox_engine():
    code = (
        "import sys\n"
        "import tasks.guardrails.task, tasks.guardrails.checks, tasks.guardrails.plan_checks\n"
        "from tasks.guardrails.checks import evaluate_guardrails\n"
        "evaluate_guardrails('staging')\n"
        "gone = ('mirror_rollout.hcl', 'mirror_rollout.provisioners.sandbox')\n"
        "print(sorted(m for m in sys.modules if m in gone or m.startswith(tuple(g + '.' for g in gone))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    sources = " ".join(p.read_text() for p in (PROJECT_ROOT / "tasks" / "guardrails").glob("*.py"))
    assert "mirror_rollout.hcl" not in sources and "provisioners.sandbox." not in sources


# -- static: one broken invariant at a time -------------------------------------------
NONCE_PARAMETER = """
resource "aws_ssm_parameter" "redaction_nonce" {
  name     = local.nonce_parameter_name
  type     = "SecureString"
  key_id   = aws_kms_key.main.arn
  value_wo = "PLACEHOLDER-set-by-nonce-bootstrap"
}
"""

# case: ((file under infra/, old, new, within), expected id, (blamed file, marker on that line))
BREAKS = {
    "pitr-off-on-consent": (
        (
            "terraform/main.tf",
            "enabled = var.pitr_enabled",
            "enabled = false",
            'resource "aws_dynamodb_table" "consent"',
        ),
        "MR-001",
        ("terraform/main.tf", "enabled = false", None),
    ),
    "sse-without-cmk": (
        (
            "terraform/main.tf",
            "kms_key_arn = aws_kms_key.main.arn",
            "kms_key_arn = null",
            'resource "aws_dynamodb_table" "block_counter"',
        ),
        "MR-002",
        ("terraform/main.tf", "kms_key_arn = null", None),
    ),
    "consent-keyed-on-orgId": (
        (
            "terraform/main.tf",
            'hash_key                    = "pk"',
            'hash_key                    = "orgId"',
            'resource "aws_dynamodb_table" "consent"',
        ),
        "MR-009",
        ("terraform/main.tf", '"orgId"', 'resource "aws_dynamodb_table" "consent"'),
    ),
    "block-counter-ttl-on-expiresAt": (
        (
            "terraform/main.tf",
            'attribute_name = "ttl"',
            'attribute_name = "expiresAt"',
            'resource "aws_dynamodb_table" "block_counter"',
        ),
        "MR-009",
        ("terraform/main.tf", "ttl {", 'resource "aws_dynamodb_table" "block_counter"'),
    ),
    "kms-rotation-off": (
        (
            "terraform/main.tf",
            "enable_key_rotation     = true",
            "enable_key_rotation     = false",
            None,
        ),
        "MR-004",
        ("terraform/main.tf", "enable_key_rotation     = false", None),
    ),
    "legacy-nonce-path": (
        (
            "terraform/main.tf",
            '"/guardian/${var.environment}/redaction_nonce_v1"',
            '"guardian/${var.environment}/redaction/nonce/v1"',
            None,
        ),
        "MR-011",
        ("terraform/main.tf", "redaction/nonce/v1", None),
    ),
    "alarm-without-topic": (
        (
            "terraform/main.tf",
            "alarm_actions       = [aws_sns_topic.ops_alerts.arn]",
            "alarm_actions       = []",
            'resource "aws_cloudwatch_metric_alarm" "circuit_breaker_triggered"',
        ),
        "MR-022",
        ("terraform/main.tf", "alarm_actions       = []", None),
    ),
    "topic-not-on-the-cmk": (
        (
            "terraform/main.tf",
            "kms_master_key_id = aws_kms_key.main.arn",
            'kms_master_key_id = "alias/aws/sns"',
            'resource "aws_sns_topic" "ops_alerts"',
        ),
        "MR-023",
        ("terraform/main.tf", 'kms_master_key_id = "alias/aws/sns"', None),
    ),
    "dashboard-without-circuit-breaker": (
        (
            "terraform/cloudwatch-dashboard.tf",
            '"CircuitBreakerTriggers", { label',
            '"CircuitBreakerTrips", { label',
            None,
        ),
        "MR-030",
        ("terraform/cloudwatch-dashboard.tf", "dashboard_body", None),
    ),
    "baselines-versioning-suspended": (
        (
            "terraform/main.tf",
            'status = "Enabled"',
            'status = "Suspended"',
            'resource "aws_s3_bucket_versioning" "baselines"',
        ),
        "MR-040",
        ("terraform/main.tf", 'status = "Suspended"', None),
    ),
    "baselines-aes256": (
        (
            "terraform/main.tf",
            'sse_algorithm     = "aws:kms"',
            'sse_algorithm     = "AES256"',
            'resource "aws_s3_bucket_server_side_encryption_configuration" "baselines"',
        ),
        "MR-041",
        ("terraform/main.tf", '"AES256"', None),
    ),
    "missing-public-access-flag": (
        (
            "terraform/main.tf",
            "block_public_policy     = true\n",
            "",
            'resource "aws_s3_bucket_public_access_block" "baselines"',
        ),
        "MR-042",
        (
            "terraform/main.tf",
            'resource "aws_s3_bucket_public_access_block" "baselines"',
            None,
        ),
    ),
    "trail-log-validation-off": (
        (
            "terraform/main.tf",
            "enable_log_file_validation    = true",
            "enable_log_file_validation    = false",
            None,
        ),
        "MR-043",
        ("terraform/main.tf", "enable_log_file_validation    = false", None),
    ),
    "oidc-trust-star": (
        ("terraform/github-oidc.tf", '"repo:${var.github_org}/${var.github_repo}:*"', '"*"', None),
        "MR-051",
        ("terraform/github-oidc.tf", "assume_role_policy", None),
    ),
    "iam-star-resource": (
        (
            "terraform/github-oidc.tf",
            'Resource = concat(local.table_arns, ["${aws_dynamodb_table.fp_events.arn}/index/*"])',
            'Resource = "*"',
            None,
        ),
        "MR-052",
        ("terraform/github-oidc.tf", "  policy = jsonencode", 'resource "aws_iam_role_policy"'),
    ),
    "no-nonce-read-access": (
        (
            "terraform/github-oidc.tf",
            "parameter/guardian/${var.environment}/*",
            "parameter/baselines/${var.environment}/*",
            None,
        ),
        "MR-053",
        ("terraform/github-oidc.tf", "  policy = jsonencode", 'resource "aws_iam_role_policy"'),
    ),
    "backend-unencrypted": (
        (
            "terraform/backend.tf",
            "encrypt              = true",
            "encrypt              = false",
            None,
        ),
        "MR-060",
        ("terraform/backend.tf", "encrypt              = false", None),
    ),
    "tfvars-region-differs": (
        ("terraform/production.tfvars", '"us-east-1"', '"us-west-2"', None),
        "MR-061",
        ("terraform/staging.tfvars", "region", None),
    ),
    "tfvars-typo": (
        ("terraform/staging.tfvars", "pitr_enabled ", "pitr_enabed  ", None),
        "MR-061",
        ("terraform/staging.tfvars", "pitr_enabed", None),
    ),
    "backup-without-retention": (
        (
            "terraform/main.tf",
            "    lifecycle {\n      delete_after = local.backup_retention_days\n    }\n",
            "",
            None,
        ),
        "MR-062",
        ("terraform/main.tf", "rule {", 'resource "aws_backup_plan" "main"'),
    ),
    "ignore-changes-hides-pitr": (
        (
            "terraform/main.tf",
            '  range_key                   = "sk"\n',
            '  range_key                   = "sk"\n'
            "  lifecycle {\n    ignore_changes = [point_in_time_recovery]\n  }\n",
            'resource "aws_dynamodb_table" "consent"',
        ),
        "MR-063",
        ("terraform/main.tf", "ignore_changes = [point_in_time_recovery]", None),
    ),
    "gcp-firestore-pitr-off": (
        (
            "gcp/main.tf",
            '"POINT_IN_TIME_RECOVERY_ENABLED"',
            '"POINT_IN_TIME_RECOVERY_DISABLED"',
            None,
        ),
        "MR-070",
        ("gcp/main.tf", "POINT_IN_TIME_RECOVERY_DISABLED", None),
    ),
    "gcp-bucket-without-versioning": (
        ("gcp/main.tf", "enabled = true", "enabled = false", "versioning {"),
        "MR-071",
        ("gcp/main.tf", "enabled = false", None),
    ),
    "gcp-bucket-google-managed-key": (
        (
            "gcp/main.tf",
            "default_kms_key_name = google_kms_crypto_key.main.id",
            'default_kms_key_name = "projects/p/locations/l/keyRings/r/cryptoKeys/k"',
            None,
        ),
        "MR-072",
        ("gcp/main.tf", "encryption {", 'resource "google_storage_bucket" "baselines"'),
    ),
    "gcp-key-rotation-yearly": (
        ("gcp/main.tf", '"7776000s"', '"31536000s"', None),
        "MR-073",
        ("gcp/main.tf", '"31536000s"', None),
    ),
    "gcp-wif-wider-than-repository": (
        (
            "gcp/main.tf",
            'attribute_condition = "assertion.repository == \\"${local.repository}\\""',
            'attribute_condition = "assertion.repository_owner == \\"${var.github_org}\\""',
            None,
        ),
        "MR-074",
        ("gcp/main.tf", "assertion.repository_owner ==", None),
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_each_broken_invariant_fails_exactly_its_check(infra, case):
    (relative, old, new, within), expected, (blamed, marker, marker_within) = BREAKS[case]
    infra.edit(relative, old, new, within=within)
    results = evaluate_guardrails("staging", infra.root)
    assert failing(results) == {expected}
    failures = [r for r in results if r.status is Status.FAIL]
    assert all(LOCATION.match(r.location) and r.subject for r in failures), failures
    if marker is not None:
        line = line_of(infra.path(blamed), marker, marker_within)
        assert f"infra/{blamed}:{line}" in {r.location for r in failures}, failures


def test_pitr_variable_false_is_blamed_on_the_tfvars_line(infra):
    for env in ("staging", "production"):  # both, so the environments stay consistent (MR-061)
        infra.edit(
            f"terraform/{env}.tfvars", "pitr_enabled              = true", "pitr_enabled = false"
        )
    results = evaluate_guardrails("staging", infra.root)
    assert failing(results) == {"MR-001"}
    line = line_of(infra.path("terraform/staging.tfvars"), "pitr_enabled = false")
    locations = {r.location for r in results if r.status is Status.FAIL}
    assert locations == {f"infra/terraform/staging.tfvars:{line}"}
    assert len([r for r in results if r.status is Status.FAIL]) == 3  # one per table


NONCE_DECLARATIONS = {
    "via-local": NONCE_PARAMETER,
    "literal-name": NONCE_PARAMETER.replace('"redaction_nonce"', '"bootstrap"').replace(
        "local.nonce_parameter_name", '"/guardian/staging/redaction_nonce_v2"'
    ),
    "via-variable": NONCE_PARAMETER.replace('"redaction_nonce"', '"first"').replace(
        "local.nonce_parameter_name", 'var.nonce_name\n  description = "v1"'
    )
    + 'variable "nonce_name" {\n  type    = string\n  default = "/guardian/staging/redaction_nonce_v1"\n}\n',
    "resource-named-nonce": NONCE_PARAMETER.replace('"redaction_nonce"', '"nonce_seed"').replace(
        "local.nonce_parameter_name", '"/guardian/staging/seed"'
    ),
}


@pytest.mark.parametrize("case", sorted(NONCE_DECLARATIONS))
def test_any_ssm_parameter_declaring_a_nonce_version_fails(infra, case):
    infra.append("terraform/main.tf", NONCE_DECLARATIONS[case])
    results = evaluate_guardrails("staging", infra.root)
    assert failing(results) == {"MR-010"}
    [failure] = [r for r in results if r.status is Status.FAIL]
    assert failure.subject.startswith("aws_ssm_parameter.")
    assert "runtime data owned by the nonce-bootstrap and nonce-rotation flows" in failure.message
    anchor = 'resource "aws_ssm_parameter"'
    line = line_of(infra.path("terraform/main.tf"), "name     =", anchor)
    assert failure.location == f"infra/terraform/main.tf:{line}"


def test_an_ordinary_ssm_parameter_passes_the_nonce_rule(infra):
    infra.append(
        "terraform/main.tf",
        NONCE_PARAMETER.replace('"redaction_nonce"', '"feature_flags"').replace(
            "local.nonce_parameter_name", '"/guardian/${var.environment}/feature_flags"'
        ),
    )
    results = evaluate_guardrails("staging", infra.root)
    assert failing(results) == set()
    [nonce] = [r for r in results if r.check_id == "MR-010"]
    assert "aws_ssm_parameter.feature_flags" in nonce.subject


def test_random_id_nonce_is_flagged(infra):
    infra.append("terraform/main.tf", 'resource "random_id" "nonce" {\n  byte_length = 32\n}\n')
    results = evaluate_guardrails("staging", infra.root)
    assert failing(results) == {"MR-012"}
    [failure] = [r for r in results if r.status is Status.FAIL]
    assert failure.subject == "random_id.nonce" and "state" in failure.message


def test_gcp_secret_version_in_terraform_fails(infra):
    infra.append(
        "gcp/main.tf",
        'resource "google_secret_manager_secret_version" "v1" {\n'
        "  secret      = google_secret_manager_secret.redaction_nonce.id\n"
        '  secret_data = "x"\n}\n',
    )
    results = evaluate_guardrails("staging", infra.root)
    assert failing(results) == {"MR-075"}
    assert any("google_secret_manager_secret_version.v1" in r.message for r in results)


# -- static: bad input ------------------------------------------------------------------
def test_the_old_consent_schema_fails_naming_the_adapter_and_the_table(infra):
    within = 'resource "aws_dynamodb_table" "consent"'
    infra.edit(
        "terraform/main.tf",
        'hash_key                    = "pk"\n  range_key                   = "sk"',
        'hash_key                    = "orgId"',
        within=within,
    )
    infra.edit("terraform/main.tf", 'name = "pk"', 'name = "orgId"', within=within)
    results = evaluate_guardrails("staging", infra.root)
    assert failing(results) == {"MR-009"}
    (failure,) = [r for r in results if r.status is Status.FAIL]
    assert failure.subject == "aws_dynamodb_table.consent"
    assert failure.message == "consent adapter keys pk/sk; table keys orgId"


def test_a_broken_access_pattern_file_fails_its_guardrail_with_the_fix(infra):
    infra.edit("data-plane.yaml", "operation: UpdateItem", "operation: Increment")
    results = evaluate_guardrails("staging", infra.root)
    assert failing(results) == {"MR-009"}
    (failure,) = [r for r in results if r.status is Status.FAIL]
    assert failure.location == "infra/data-plane.yaml"
    assert failure.message.startswith("infra/data-plane.yaml: patterns.4.operation: ")
    assert "see the comment at the top of infra/data-plane.yaml" in failure.message


def test_malformed_tf_is_one_config_error_with_file_line_and_fix(infra):
    infra.append("terraform/main.tf", 'resource "aws_sns_topic" "broken" {\n  name = \n}\n')
    with pytest.raises(ConfigError) as raised:
        evaluate_guardrails("staging", infra.root)
    line = line_of(
        infra.path("terraform/main.tf"), "name = \n", 'resource "aws_sns_topic" "broken"'
    )
    assert re.match(rf"infra/terraform/main\.tf:{line}:\d+: syntax error", raised.value.problem)
    assert raised.value.fix


def test_malformed_tfvars_is_one_config_error(infra):
    infra.append("terraform/staging.tfvars", 'region = "us-east-1\n')
    with pytest.raises(ConfigError) as raised:
        evaluate_guardrails("staging", infra.root)
    assert raised.value.problem.startswith("infra/terraform/staging.tfvars:")
    assert "syntax error" in raised.value.problem and raised.value.fix


def test_region_typo_names_the_tfvars_line_and_the_region(infra):
    infra.edit(
        "terraform/staging.tfvars", 'region                    = "us-east-1"', 'region = "us-est-1"'
    )
    with pytest.raises(ConfigError) as raised:
        evaluate_guardrails("staging", infra.root)
    line = line_of(infra.path("terraform/staging.tfvars"), "us-est-1")
    assert (
        raised.value.problem
        == f"infra/terraform/staging.tfvars:{line}: unknown AWS region 'us-est-1'"
    )
    assert "us-east-1" in raised.value.fix


# -- plan checks ----------------------------------------------------------------------
def load_plan(env: str) -> dict:
    return json.loads((PLANS / f"{env}.json").read_text())


@pytest.fixture(scope="module")
def plans() -> dict[str, dict]:
    return {env: load_plan(env) for env in ("staging", "production")}


#: Parts of a first plan Terraform cannot know before apply (they embed new ARNs).
KNOWN_AFTER_APPLY = {"MR-054", "MR-055", "MR-058"}


@pytest.mark.parametrize("env", ["staging", "production"])
def test_real_plans_pass_every_plan_check(plans, env):
    results = evaluate_plan_guardrails(plans[env], env)
    assert failing(results) == set()
    assert {r.check_id for r in results} == set(PLAN_REGISTRY)
    skipped = {r.check_id: r.message for r in results if r.status is Status.SKIPPED}
    assert set(skipped) == KNOWN_AFTER_APPLY
    assert all("known only after apply" in m for m in skipped.values())
    assert all(r.evidence for r in results)


def test_fixtures_are_real_current_and_hold_no_secret(plans):
    from tasks.guardrails.view import load_module

    declared = {
        b.address for b in load_module(PROJECT_ROOT / "infra" / "terraform", PROJECT_ROOT).resources
    }
    for env, plan in plans.items():
        assert (plan["format_version"], plan["terraform_version"]) == ("1.2", "1.11.4")
        assert plan["variables"]["environment"]["value"] == env
        configured = {r["address"] for r in plan["configuration"]["root_module"]["resources"]}
        assert configured - {a for a in configured if a.startswith("data.")} == declared, (
            "the fixtures no longer match infra/terraform: run tests/fixtures/plans/regenerate.sh"
        )
        text = (PLANS / f"{env}.json").read_text()
        assert not re.search(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])", text)
        assert set(re.findall(r"AKIA[0-9A-Z]{16}", text)) == {"AKIAIOSFODNN7EXAMPLE"}
        assert "redaction_nonce_v" not in json.dumps(plan["planned_values"]["root_module"])


def resources(plan: dict) -> list[dict]:
    return plan["planned_values"]["root_module"]["resources"]


def planned(plan: dict, address: str) -> dict:
    return next(r for r in resources(plan) if r["address"] == address)["values"]


def configured(plan: dict, address: str) -> dict:
    return next(
        r for r in plan["configuration"]["root_module"]["resources"] if r["address"] == address
    )["expressions"]


def change(plan: dict, address: str) -> dict:
    return next(c for c in plan["resource_changes"] if c["address"] == address)["change"]


def make_known(plan: dict, address: str, key: str, value) -> None:
    """What a re-plan after the first apply shows: the value is known."""
    planned(plan, address)[key] = value
    change(plan, address)["after_unknown"].pop(key, None)


def trust(sub: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {
                        "Federated": "arn:aws:iam::123456789012:oidc-provider/"
                        "token.actions.githubusercontent.com"
                    },
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"
                        },
                        "StringLike": {"token.actions.githubusercontent.com:sub": sub},
                    },
                }
            ],
        }
    )


def add_nonce_parameter(plan: dict) -> None:
    resources(plan).append(
        {
            "address": "aws_ssm_parameter.bootstrap",
            "mode": "managed",
            "type": "aws_ssm_parameter",
            "name": "bootstrap",
            "values": {"name": "/guardian/staging/redaction_nonce_v1", "type": "SecureString"},
        }
    )


def delete_nonce_parameter(plan: dict) -> None:
    plan["resource_changes"].append(
        {
            "address": "aws_ssm_parameter.redaction_nonce",
            "mode": "managed",
            "type": "aws_ssm_parameter",
            "name": "redaction_nonce",
            "change": {
                "actions": ["delete"],
                "before": {"name": "/guardian/staging/redaction_nonce_v1", "type": "SecureString"},
                "after": None,
            },
        }
    )


def drop_alarm(plan: dict) -> None:
    address = 'aws_cloudwatch_metric_alarm.table_throttle["consent-read-throttle"]'
    plan["planned_values"]["root_module"]["resources"] = [
        r for r in resources(plan) if r["address"] != address
    ]


def dashboard_without_alarm_widget(plan: dict) -> None:
    body = {
        "widgets": [
            {"type": "metric", "properties": {"metrics": [[ns, m, "TableName", t]]}}
            for ns, m in (
                ("AWS/DynamoDB", "ConsumedReadCapacityUnits"),
                ("AWS/DynamoDB", "ConsumedWriteCapacityUnits"),
            )
            for t in (
                "mirror-dissonance-staging-fp-events",
                "mirror-dissonance-staging-consent",
                "mirror-dissonance-staging-block-counter",
            )
        ]
        + [
            {"type": "metric", "properties": {"metrics": [[ns, m]]}}
            for ns, m in (
                ("AWS/DynamoDB", "UserErrors"),
                ("AWS/DynamoDB", "SystemErrors"),
                ("MirrorDissonance/staging", "SSMParameterFailures"),
                ("MirrorDissonance/staging", "CircuitBreakerTriggers"),
            )
        ]
    }
    make_known(plan, "aws_cloudwatch_dashboard.main", "dashboard_body", json.dumps(body))


def wide_deploy_policy(plan: dict) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Tables", "Effect": "Allow", "Action": ["dynamodb:PutItem"], "Resource": "*"}
        ],
    }
    make_known(plan, "aws_iam_role_policy.github_deploy", "policy", json.dumps(policy))


def open_key_policy(plan: dict) -> None:
    values = planned(plan, "aws_kms_key.main")
    policy = json.loads(values["policy"])
    policy["Statement"][0]["Principal"] = "*"
    values["policy"] = json.dumps(policy)


def set_(address: str, path: str, value):
    def mutate(plan: dict) -> None:
        node = planned(plan, address)
        *steps, last = path.split(".")
        for step in steps:
            node = node[step][0] if isinstance(node[step], list) else node[step]
        node[last] = value

    return mutate


def drop_reference(address: str, argument: str):
    def mutate(plan: dict) -> None:
        configured(plan, address)[argument] = {"references": []}

    return mutate


# case: (environment of the fixture, mutation, expected id)
PLAN_BREAKS = {
    "consent-hash-key": (
        "staging",
        set_("aws_dynamodb_table.consent", "hash_key", "orgId"),
        "MR-003",
    ),
    "gsi-keys-only": (
        "staging",
        set_("aws_dynamodb_table.fp_events", "global_secondary_index.projection_type", "KEYS_ONLY"),
        "MR-003",
    ),
    "block-counter-ttl-attribute": (
        "staging",
        set_("aws_dynamodb_table.block_counter", "ttl.attribute_name", "expiresAt"),
        "MR-003",
    ),
    "production-window-7": (
        "production",
        set_("aws_kms_key.main", "deletion_window_in_days", 7),
        "MR-005",
    ),
    "staging-window-30": (
        "staging",
        set_("aws_kms_key.main", "deletion_window_in_days", 30),
        "MR-005",
    ),
    "alias-name": ("staging", set_("aws_kms_alias.main", "name", "alias/other"), "MR-006"),
    "alias-target-not-the-key": (
        "staging",
        drop_reference("aws_kms_alias.main", "target_key_id"),
        "MR-006",
    ),
    "topic-not-on-the-cmk": (
        "staging",
        drop_reference("aws_sns_topic.ops_alerts", "kms_master_key_id"),
        "MR-007",
    ),
    "pitr-off": (
        "production",
        set_("aws_dynamodb_table.consent", "point_in_time_recovery.enabled", False),
        "MR-008",
    ),
    "nonce-parameter-planned": ("staging", add_nonce_parameter, "MR-013"),
    "nonce-parameter-deleted": ("staging", delete_nonce_parameter, "MR-013"),
    "alarm-missing": ("staging", drop_alarm, "MR-020"),
    "throttle-threshold-100": (
        "staging",
        set_(
            'aws_cloudwatch_metric_alarm.table_throttle["fp-events-read-throttle"]',
            "threshold",
            100,
        ),
        "MR-021",
    ),
    "ssm-alarm-period-60": (
        "production",
        set_("aws_cloudwatch_metric_alarm.ssm_parameter_failures", "period", 60),
        "MR-021",
    ),
    "alarm-actions-without-topic": (
        "staging",
        drop_reference("aws_cloudwatch_metric_alarm.circuit_breaker_triggered", "alarm_actions"),
        "MR-024",
    ),
    "dashboard-renamed": (
        "staging",
        set_("aws_cloudwatch_dashboard.main", "dashboard_name", "ops"),
        "MR-031",
    ),
    "dashboard-without-alarm-widget": ("staging", dashboard_without_alarm_widget, "MR-031"),
    "baselines-versioning-suspended": (
        "staging",
        set_("aws_s3_bucket_versioning.baselines", "versioning_configuration.status", "Suspended"),
        "MR-044",
    ),
    "audit-bucket-public-policy": (
        "production",
        set_("aws_s3_bucket_public_access_block.audit_logs", "block_public_policy", False),
        "MR-044",
    ),
    "oidc-audience": (
        "staging",
        set_("aws_iam_openid_connect_provider.github", "client_id_list", ["sts.example.com"]),
        "MR-050",
    ),
    "trust-any-repository-of-the-org": (
        "staging",
        lambda p: make_known(
            p, "aws_iam_role.github_deploy", "assume_role_policy", trust("repo:PhaseMirror/*")
        ),
        "MR-054",
    ),
    "deploy-policy-star-resource": ("staging", wide_deploy_policy, "MR-055"),
    "key-policy-open-principal": ("production", open_key_policy, "MR-056"),
    "tags-of-another-environment": (
        "staging",
        set_(
            "aws_sns_topic.ops_alerts",
            "tags_all",
            {"Project": "mirror-dissonance", "Environment": "production", "ManagedBy": "terraform"},
        ),
        "MR-064",
    ),
}


@pytest.mark.parametrize("case", sorted(PLAN_BREAKS))
def test_each_broken_plan_invariant_fails_exactly_its_check(plans, case):
    env, mutate, expected = PLAN_BREAKS[case]
    plan = copy.deepcopy(plans[env])
    mutate(plan)
    results = evaluate_plan_guardrails(plan, env)
    assert failing(results) == {expected}
    assert all(r.subject and r.location for r in results if r.status is Status.FAIL)


def test_nonce_in_the_plan_says_who_owns_it(plans):
    plan = copy.deepcopy(plans["staging"])
    add_nonce_parameter(plan)
    delete_nonce_parameter(plan)
    failures = [r for r in evaluate_plan_guardrails(plan, "staging") if r.status is Status.FAIL]
    messages = {r.subject: r.message for r in failures}
    assert "nonce-bootstrap and nonce-rotation" in messages["aws_ssm_parameter.bootstrap"]
    assert "removed {" in messages["aws_ssm_parameter.redaction_nonce"]


def test_a_known_trust_policy_of_the_repository_passes(plans):
    plan = copy.deepcopy(plans["staging"])
    make_known(
        plan,
        "aws_iam_role.github_deploy",
        "assume_role_policy",
        trust("repo:PhaseMirror/Phase-Mirror:*"),
    )
    [result] = [r for r in evaluate_plan_guardrails(plan, "staging") if r.check_id == "MR-054"]
    assert result.status is Status.PASS and "repo:PhaseMirror/Phase-Mirror:*" in result.message


@pytest.mark.parametrize(
    ("document", "expect"),
    [
        ({}, "no planned_values"),
        ({"format_version": "2.0", "planned_values": {}}, "format_version '2.0'"),
        ("not a dict", "no planned_values"),
    ],
)
def test_a_document_that_is_no_plan_is_one_config_error(document, expect):
    with pytest.raises(ConfigError) as raised:
        evaluate_plan_guardrails(document, "staging")
    assert expect in raised.value.problem and raised.value.fix


def test_a_plan_of_another_environment_is_refused(plans):
    with pytest.raises(ConfigError) as raised:
        evaluate_plan_guardrails(plans["production"], "staging")
    assert "'production', not 'staging'" in raised.value.problem


def test_plan_task_publishes_its_artifact_and_fails_on_blocking_results(plans, prefect_api):
    """On the sandbox's Prefect server: the table artifact, and a failed task on MR-005."""
    from prefect import flow

    from tasks.guardrails.task import plan_guardrails
    from tests.rollout_run import artifacts_of

    @flow(name="plan-guardrails-check")
    def check(plan: dict, environment: str) -> list:
        return plan_guardrails(plan, environment)

    good = check(plans["production"], "production", return_state=True)
    assert good.is_completed(), good.message
    assert failing(good.result()) == set()
    plan = copy.deepcopy(plans["production"])
    set_("aws_kms_key.main", "deletion_window_in_days", 7)(plan)
    bad = check(plan, "production", return_state=True)
    assert bad.is_failed() and "MR-005" in (bad.message or ""), bad.message
    table = artifacts_of(str(bad.state_details.flow_run_id))["production-plan-guardrails"]
    assert "MR-005" in table and "FAIL" in table


# -- the CLI --------------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "console.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )


def test_cli_exits_zero_on_shipped_infra_and_its_real_plan():
    done = run_cli("guardrails", "--env", "production", "--plan", str(PLANS / "production.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plan guardrails" in done.stdout and "MR-021" in done.stdout and "MR-001" in done.stdout
    assert "guardrails passed, 3 skipped: MR-054, MR-055, MR-058" in done.stdout


def test_cli_names_the_failing_check(infra):
    infra.edit(
        "terraform/main.tf",
        "enabled = var.pitr_enabled",
        "enabled = false",
        within='resource "aws_dynamodb_table" "consent"',
    )
    done = run_cli("guardrails", "--env", "staging", "--root", str(infra.root))
    assert done.returncode == 1
    assert "MR-001" in done.stdout and "aws_dynamodb_table.consent" in done.stdout


def test_cli_names_the_failing_plan_check(plans, tmp_path):
    plan = copy.deepcopy(plans["staging"])
    set_('aws_cloudwatch_metric_alarm.table_throttle["consent-write-throttle"]', "threshold", 100)(
        plan
    )
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    done = run_cli("guardrails", "--env", "staging", "--plan", str(path))
    assert done.returncode == 1
    assert "1 of" in done.stdout and "guardrails failed: MR-021" in done.stdout


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xff\xfe", "is not text"),
        (b'{"format_version": "1.2",', "plan.json:1:"),
        (b"[]", "holds a JSON list"),
    ],
)
def test_cli_bad_plan_file_is_one_line_without_traceback(tmp_path, content, expect):
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    done = run_cli("guardrails", "--env", "staging", "--plan", str(path))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expect in lines[0] and " — " in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_cli_syntax_error_is_one_line_without_traceback(infra):
    infra.append("terraform/variables.tf", 'variable "x" {\n  type = \n')
    done = run_cli("guardrails", "--root", str(infra.root))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "variables.tf:" in lines[0] and "Traceback" not in done.stderr


def test_cli_unknown_environment_is_one_clear_error():
    done = run_cli("guardrails", "--env", "prod")
    assert done.returncode == 2
    assert "unknown environment 'prod'" in done.stderr and "production, staging" in done.stderr


def test_reading_hcl_from_several_threads_at_once_gives_the_same_values():
    """Concurrent tasks read .tf at once; python-hcl2 shares one serialization context."""
    import threading

    from mirror_rollout import PROJECT_ROOT
    from mirror_rollout.provisioners.sandbox_override import read_root
    from tasks.guardrails.view import read_tfvars

    tfvars = PROJECT_ROOT / "infra" / "terraform" / "staging.tfvars"
    regions: list[str] = []

    def read_tfvars_often() -> None:
        regions.extend(read_tfvars(tfvars, PROJECT_ROOT).values["region"] for _ in range(100))

    def read_roots_often() -> None:
        for _ in range(10):
            read_root(PROJECT_ROOT / "infra" / "terraform")

    threads = [
        threading.Thread(target=f) for f in (read_tfvars_often, read_roots_often, read_roots_often)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert regions == ["us-east-1"] * 100
