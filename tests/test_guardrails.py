"""Guardrails: the shipped infra passes every check; each broken invariant fails exactly its check."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mirror_rollout.errors import ConfigError
from mirror_rollout.results import Status
from tasks.guardrails.checks import REGISTRY, evaluate_guardrails


def failing(results) -> set[str]:
    return {r.check_id for r in results if r.status is Status.FAIL}


@pytest.mark.parametrize("env", ["staging", "production"])
def test_shipped_infra_passes_every_check(env):
    results = evaluate_guardrails(env)
    assert failing(results) == set()
    assert {r.check_id for r in results} == set(REGISTRY)
    # every PASS carries the evidence it was based on
    assert all(r.evidence for r in results)


BREAKS = {
    "pitr-off-on-consent": (
        (
            "terraform/main.tf",
            "enabled = var.pitr_enabled",
            "enabled = false",
            'resource "aws_dynamodb_table" "consent"',
        ),
        "MR-001",
    ),
    "throttle-threshold-100": (
        (
            "terraform/main.tf",
            "threshold           = var.throttle_threshold",
            "threshold           = 100",
            None,
        ),
        "MR-021",
    ),
    "missing-public-access-block": (
        (
            "terraform/main.tf",
            "block_public_policy     = true\n",
            "",
            'resource "aws_s3_bucket_public_access_block" "baselines"',
        ),
        "MR-042",
    ),
    "oidc-trust-star": (
        ("terraform/github-oidc.tf", '"repo:${var.github_org}/${var.github_repo}:*"', '"*"', None),
        "MR-051",
    ),
    "legacy-nonce-path": (
        (
            "terraform/main.tf",
            '"/guardian/${var.environment}/redaction_nonce_v1"',
            '"guardian/${var.environment}/redaction/nonce/v1"',
            None,
        ),
        "MR-010",
    ),
    "kms-rotation-off": (
        (
            "terraform/main.tf",
            "enable_key_rotation     = true",
            "enable_key_rotation     = false",
            None,
        ),
        "MR-004",
    ),
    "alarm-without-topic": (
        (
            "terraform/main.tf",
            "alarm_actions       = [aws_sns_topic.ops_alerts.arn]",
            "alarm_actions       = []",
            'resource "aws_cloudwatch_metric_alarm" "circuit_breaker_triggered"',
        ),
        "MR-022",
    ),
    "backend-unencrypted": (
        ("terraform/backend.tf", "encrypt", "encrypt = false\n    # was", None),
        "MR-060",
    ),
    "tfvars-region-differs": (
        ("terraform/production.tfvars", '"us-east-1"', '"us-west-2"', None),
        "MR-061",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_each_broken_invariant_fails_exactly_its_check(infra, case):
    (relative, old, new, within), expected = BREAKS[case]
    infra.edit(relative, old, new, within=within)
    assert failing(evaluate_guardrails("staging", infra.root)) == {expected}


def test_random_id_nonce_is_flagged(infra):
    infra.append("terraform/main.tf", 'resource "random_id" "nonce" {\n  byte_length = 32\n}\n')
    infra.edit("terraform/main.tf", '"PLACEHOLDER-set-by-nonce-bootstrap"', "random_id.nonce.hex")
    results = evaluate_guardrails("staging", infra.root)
    assert failing(results) == {"MR-012"}
    messages = " ".join(r.message for r in results if r.check_id == "MR-012")
    assert "random_id.nonce" in messages


def test_production_deletion_window_must_be_30(infra):
    infra.edit("terraform/production.tfvars", "= 30", "= 7")
    assert failing(evaluate_guardrails("production", infra.root)) == {"MR-005"}


def test_malformed_tf_names_file_and_line(infra):
    infra.append("terraform/main.tf", 'resource "aws_sns_topic" "broken" {\n  name = \n}\n')
    with pytest.raises(ConfigError) as raised:
        evaluate_guardrails("staging", infra.root)
    message = str(raised.value)
    assert "main.tf:" in message and "syntax error" in message


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mirror_rollout.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )


def test_cli_exits_zero_on_shipped_infra():
    done = run_cli("guardrails", "--env", "production")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "guardrails passed" in done.stdout


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


def test_gcp_bucket_without_versioning_fails(infra):
    infra.edit("gcp/main.tf", "enabled = true", "enabled = false", within="versioning {")
    results = evaluate_guardrails("staging", infra.root)
    assert failing(results) == {"MR-071"}
    assert any("versioning" in r.message for r in results if r.check_id == "MR-071")


def test_gcp_workload_identity_wider_than_repository_fails(infra):
    infra.edit(
        "gcp/main.tf",
        'attribute_condition = "assertion.repository == \\"${local.repository}\\""',
        'attribute_condition = "assertion.repository_owner == \\"${var.github_org}\\""',
    )
    assert failing(evaluate_guardrails("staging", infra.root)) == {"MR-074"}
