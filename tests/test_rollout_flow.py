"""The rollout gate end to end on the sandbox: zero unreviewed applies, each a test."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from mirror_rollout.provisioners.state_backend import BackendSpec
from mirror_rollout.provisioners.terraform_binary import find_terraform
from tests.applied import apply_environment, state_addresses, state_document, state_serial
from tests.aws_inventory import client, inventory
from tests.rollout_run import (
    approve_as,
    approve_by_sandbox_reviewers,
    approve_signed,
    artifacts_of,
    sandbox_key,
    task_names,
)


def nothing_applied(environment: str = "staging", before=None) -> None:
    assert state_addresses(environment) == set()  # (a plan creates the empty workspace)
    if before is not None:
        assert inventory() == before


def message(run) -> str:
    return run.state.message or ""


def test_approved_staging_rollout_applies_and_replans_clean(rollout, tmp_path):
    run = rollout(approve_as("alice", comment="looks right"))
    assert run.state.is_completed(), message(run)
    assert run.pauses == ["approval-1"]
    result = run.state.result()
    assert result["applied"] == 32 and result["approvals"][0]["reviewer"] == "alice"
    assert result["verdict"] == "PASS"  # SKIPPED lines do not fail the run
    artifacts = artifacts_of(run.flow_run_id)
    assert {
        "staging-guardrails",
        "staging-plan",
        "staging-approval",
        "staging-outputs",
        "staging-pitr",
        "staging-nonce",
        "staging-alarms",
        "staging-dashboard",
        "staging-production-checklist",
        "staging-data-plane-contract",
    } <= artifacts.keys()
    checklist = artifacts["staging-production-checklist"]
    assert "- [x] Re-plan after apply is empty" in checklist
    assert "- [x] Data-plane contract: the live tables serve every access pattern" in checklist
    assert "**PASS**" not in checklist
    assert (
        "- [ ] The Oracle's own integration suite passes against the environment — SKIPPED: "
        "APPINT-001: no Oracle checkout configured: set the flow parameters oracle_repo and "
        "oracle_test_command"
    ) in checklist
    assert "- [ ] AWS Backup plan covers the three tables — SKIPPED: " in checklist
    assert "skipped: BACKUP-001: moto does not implement CreateBackupSelection" in checklist
    assert result["plan_sha256"] in artifacts["staging-plan"]
    # What moto shows after the rollout: the tables the Oracle's adapters need, and the
    # block-counter item the E2E left for inspection (its consent items it removed).
    ddb = client("dynamodb")
    consent = ddb.describe_table(TableName="mirror-dissonance-staging-consent")["Table"]
    assert [(k["AttributeName"], k["KeyType"]) for k in consent["KeySchema"]] == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    counter_table = "mirror-dissonance-staging-block-counter"
    ttl = ddb.describe_time_to_live(TableName=counter_table)["TimeToLiveDescription"]
    assert (ttl["AttributeName"], ttl["TimeToLiveStatus"]) == ("ttl", "ENABLED")
    (counter,) = ddb.scan(TableName=counter_table)["Items"]
    assert re.fullmatch(
        r"MD-E2E-001:phase-mirror-test:\d{4}-\d\d-\d\dT\d\d:00:00\.000Z",
        counter["bucketKey"]["S"],
    )
    assert int(counter["ttl"]["N"]) > 0 and counter["count"] == {"N": "1"}
    assert ddb.scan(TableName="mirror-dissonance-staging-consent")["Items"] == []
    assert (
        "alice" in artifacts["staging-approval"] and "looks right" in artifacts["staging-approval"]
    )
    assert len(inventory()["alarms"]) == 8
    # The reviewed document is Terraform's own `show -json` of the installed Terraform.
    document = json.loads(next((tmp_path / "out").rglob("staging.tfplan.json")).read_text())
    assert document["format_version"] == "1.2"
    assert document["terraform_version"] == ".".join(map(str, find_terraform()[1]))
    assert document["configuration"]["root_module"]["resources"]
    assert document["planned_values"]["root_module"]["resources"]
    # State as in production: the S3 backend on moto, under the workspace key prefix.
    assert state_document("staging")["serial"] >= 1
    assert BackendSpec().state_key("staging") == "env/staging/infra/terraform.tfstate"
    # Each moto gap is a SKIPPED line with the moto behaviour; the override is reviewed.
    for address in ("aws_s3_bucket_logging.baselines", "aws_backup_selection.tables"):
        assert address in artifacts["staging-plan"] and address in checklist
    assert (
        "sandbox_override.tf" in artifacts["staging-plan"]
        and "count = 0" in artifacts["staging-plan"]
    )
    assert "PutBucketLogging answers HTTP 500" in checklist
    assert "create_backup_selection action has not been implemented" in checklist
    assert "no hashicorp/google provider" in checklist  # infra/gcp: SKIPPED, with why
    # Recoverability: each table restored to T into a drill copy, compared, the copy deleted.
    drill = "- [x] PITR restore drill: a restored copy matches the source at T — PASS"
    assert drill in checklist and "restore-drill-staging" in task_names(run.flow_run_id)
    assert artifacts["staging-restore-drill"].count("DRILL-001") == 3
    assert "staging-expectations-restore-drill" in artifacts
    assert not [t for t in inventory()["tables"] if "-drill-" in t]


def test_reject_applies_nothing(rollout):
    before = inventory()
    run = rollout(approve_as("bob", approve=False, comment="wrong region"))
    assert run.state.is_failed()
    assert "rejected by bob: wrong region" in message(run)
    nothing_applied(before=before)
    assert not any(name.startswith("apply") for name in task_names(run.flow_run_id))


def test_timeout_applies_nothing(rollout):
    before = inventory()
    run = rollout(None, approval_timeout_seconds=5)
    assert run.state.is_failed()
    assert "no approval within 5 s" in message(run)
    nothing_applied(before=before)


def test_approval_of_another_sha256_applies_nothing(rollout):
    before = inventory()
    run = rollout(approve_as("carol", plan_sha256="ab" * 32))
    assert run.state.is_failed()
    assert "carol approved plan abababababab" in message(run)
    nothing_applied(before=before)


def test_plan_file_changed_after_approval_applies_nothing(rollout, tmp_path):
    before = inventory()
    approve = approve_as("dave")

    def tamper_then_approve(run_id: str, key: str) -> None:
        plan_file = next((tmp_path / "out").rglob("staging.tfplan"))  # Terraform's binary plan
        plan_file.write_bytes(plan_file.read_bytes() + b"\0")
        approve(run_id, key)

    run = rollout(tamper_then_approve)
    assert run.state.is_failed()
    assert "changed after review" in message(run)
    nothing_applied(before=before)


def test_state_changed_between_plan_and_apply_applies_nothing(rollout, tmp_path):
    approve = approve_as("erin")
    seen = {}

    def interfere_then_approve(run_id: str, key: str) -> None:
        apply_environment("staging", tmp_path / "other")  # someone else's rollout lands first
        seen["serial"], seen["inventory"] = state_serial("staging"), inventory()
        approve(run_id, key)

    run = rollout(interfere_then_approve)
    assert run.state.is_failed()
    assert "stale" in message(run)
    assert state_serial("staging") == seen["serial"]
    assert inventory() == seen["inventory"]


def test_destructive_plan_needs_allow_destroy(rollout, infra, tmp_path):
    apply_environment("staging", tmp_path / "base", root=infra.root)
    # Renaming the backup vault replaces it (and every recovery point in it).
    infra.edit("terraform/main.tf", '"${local.prefix}-backup-vault"', '"${local.prefix}-vault"')
    serial, before = state_serial("staging"), inventory()
    run = rollout(approve_as("frank"), root=str(infra.root))
    assert run.state.is_failed()
    assert "allow_destroy" in message(run) and "aws_backup_vault.main" in message(run)
    assert state_serial("staging") == serial and inventory() == before
    artifacts = artifacts_of(run.flow_run_id)
    assert "Destructive changes" in artifacts["staging-plan"]


def test_production_needs_two_distinct_reviewers(rollout):
    before = inventory()
    run = rollout(approve_signed(sandbox_key(1)), environment="production")
    assert run.state.is_failed()
    assert run.pauses == ["approval-1", "approval-2"]
    assert "already approved this plan (as sandbox-auto)" in message(run)
    nothing_applied("production", before)


def test_production_with_one_reviewer_times_out(rollout):
    before = inventory()
    answered = []

    def only_first(run_id: str, key: str) -> None:
        if key == "approval-1":
            approve_signed(sandbox_key(1))(run_id, key)
            answered.append(key)

    run = rollout(only_first, environment="production", approval_timeout_seconds=5)
    assert run.state.is_failed() and answered == ["approval-1"]
    assert "no approval within 5 s" in message(run)
    nothing_applied("production", before)


def test_production_with_two_reviewers_applies(rollout):
    # Two registered keys (the sandbox's auto-reviewers): the unsigned cases are in
    # tests/test_approval_identity.py.
    run = rollout(approve_by_sandbox_reviewers(), environment="production")
    assert run.state.is_completed(), message(run)
    approvals = run.state.result()["approvals"]
    assert [a["reviewer"] for a in approvals] == ["sandbox-auto", "sandbox-auto-2"]
    assert len({a["key_fingerprint"] for a in approvals}) == 2
    # Production drills only when asked: on AWS a restore takes minutes to hours and costs money.
    checklist = artifacts_of(run.flow_run_id)["production-production-checklist"]
    assert "- [ ] PITR restore drill: a restored copy matches the source at T — SKIPPED" in (
        checklist
    )
    assert "restore_drill=true" in checklist


def test_failing_guardrail_stops_before_plan(rollout, infra):
    infra.edit(
        "terraform/main.tf",
        "enabled = var.pitr_enabled",
        "enabled = false",
        within='resource "aws_dynamodb_table" "consent"',
    )
    before = inventory()
    run = rollout(approve_as("mallory"), root=str(infra.root))
    assert run.state.is_failed()
    assert "MR-001" in message(run)
    assert [n for n in task_names(run.flow_run_id) if not n.startswith("guardrails")] == []
    assert run.pauses == []
    nothing_applied(before=before)


def test_rehearse_auto_approve_is_refused_for_aws():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "console.main",
            "rehearse",
            "--auto-approve",
            "--backend",
            "aws",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--auto-approve is refused for backend 'aws'" in done.stderr
