"""The Terraform CLI provisioner against a recording stand-in (tests/fixtures/terraform)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import pytest

from mirror_rollout.errors import ConfigError, RolloutError
from mirror_rollout.provisioners.base import ApplyRefused, StateLocked
from mirror_rollout.provisioners.document import PlanDocument, StateDocument, sha256_file
from mirror_rollout.provisioners.terraform_cli import (
    PlanMeta,
    TerraformCli,
    command_lines,
    first_error_line,
    meta_path,
    parse_apply_timings,
    parse_duration,
    parse_outputs,
    parse_state_header,
    redact_argv,
    render_backend_value,
)

FIXTURES = Path(__file__).parent / "fixtures" / "terraform"
FAKE = FIXTURES / "fake-terraform"
FAKE_VARIABLES = (
    "FAKE_TF_FAIL",
    "FAKE_TF_FAIL_KIND",
    "FAKE_TF_NO_STATE",
    "FAKE_TF_NO_WORKSPACE",
    "FAKE_TF_PLAN",
    "FAKE_TF_PLAN_BYTES",
    "FAKE_TF_STATE",
    "TF_WORKSPACE",
)
#: Found before any test narrows PATH; used only by the optional real-binary test.
REAL_TERRAFORM = shutil.which("terraform") or shutil.which("tofu")
CREDENTIALS_ERROR = "Error: No valid credential sources found"


def fixture_json(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


# ---------------------------------------------------------------- pure parts


def test_command_lines() -> None:
    lines = command_lines(
        "terraform",
        workspace="staging",
        var_file="/p/infra/terraform/staging.tfvars",
        plan_file="/out/staging.tfplan",
        backend_config={"bucket": "alt-state", "encrypt": True},
    )
    assert lines == {
        "init": [
            "terraform",
            "init",
            "-input=false",
            "-no-color",
            "-reconfigure",
            "-backend-config=bucket=alt-state",
            "-backend-config=encrypt=true",
        ],
        "workspace select": ["terraform", "workspace", "select", "-no-color", "staging"],
        "workspace new": ["terraform", "workspace", "new", "-no-color", "staging"],
        "state pull": ["terraform", "state", "pull", "-no-color"],
        "plan": [
            "terraform",
            "plan",
            "-input=false",
            "-no-color",
            "-var-file=/p/infra/terraform/staging.tfvars",
            "-out=/out/staging.tfplan",
        ],
        "show": ["terraform", "show", "-json", "-no-color", "/out/staging.tfplan"],
        "apply": ["terraform", "apply", "-input=false", "-no-color", "/out/staging.tfplan"],
        "output": ["terraform", "output", "-json", "-no-color"],
    }
    bare = command_lines("tofu", workspace="w", var_file="v", plan_file="p")
    assert bare["init"] == ["tofu", "init", "-input=false", "-no-color", "-reconfigure"]


def test_backend_values_and_redaction() -> None:
    assert render_backend_value("http://127.0.0.1:5055") == "http://127.0.0.1:5055"
    assert render_backend_value(False) == "false"
    assert render_backend_value(3) == "3"
    endpoints = {"s3": "http://127.0.0.1:5055", "dynamodb": "http://127.0.0.1:5055"}
    assert (
        render_backend_value(endpoints)
        == '{s3="http://127.0.0.1:5055",dynamodb="http://127.0.0.1:5055"}'
    )
    assert render_backend_value(["a", "${x}"]) == '["a","$${x}"]'
    with pytest.raises(ConfigError, match="unsupported type"):
        render_backend_value(object())
    assert redact_argv(
        ["t", "init", "-backend-config=secret_key=abc", "-backend-config=bucket=b"]
    ) == ["t", "init", "-backend-config=secret_key=***", "-backend-config=bucket=b"]


def test_parse_state_header() -> None:
    assert parse_state_header((FIXTURES / "state.json").read_text()) == (
        41,
        "2b5c7f0e-8d1a-4c3b-9e6f-1a2b3c4d5e6f",
    )
    assert parse_state_header("") is None
    assert parse_state_header("\n  \n") is None
    with pytest.raises(RolloutError, match="not a Terraform state"):
        parse_state_header("<html>502 Bad Gateway</html>")
    with pytest.raises(RolloutError, match="not a Terraform state"):
        parse_state_header('{"version": 4}')


def test_parse_outputs_hides_sensitive() -> None:
    outputs = parse_outputs((FIXTURES / "outputs.json").read_text())
    assert "alert_email" not in outputs
    assert outputs["fp_events_table_name"] == "mirror-dissonance-staging-fp-events"
    assert outputs["nonce_grace_period_seconds"] == 3600
    assert outputs["alarm_names"][0] == "mirror-dissonance-staging-consent-read-throttle"
    assert parse_outputs("{}\n") == {}
    assert parse_outputs("") == {}
    with pytest.raises(RolloutError, match="not JSON"):
        parse_outputs("Warning: No outputs found")


def test_first_error_line() -> None:
    boxed = "╷\n│ Error: No valid credential sources found\n│ \n│ Please see …\n╵\n"
    assert first_error_line(boxed) == CREDENTIALS_ERROR
    # Terraform 1.11 in colour (as captured from a real run)
    coloured = (
        "\x1b[31m╷\x1b[0m\x1b[0m\n\x1b[31m│\x1b[0m \x1b[0m\x1b[1m\x1b[31mError: \x1b[0m\x1b[0m"
        "\x1b[1mFailed to read variables file\x1b[0m\n\x1b[31m╵\x1b[0m\x1b[0m\n"
    )
    assert first_error_line(coloured) == "Error: Failed to read variables file"
    no_color = "\nError: Saved plan is stale\n\nThe given plan file can no longer be applied\n"
    assert first_error_line(no_color) == "Error: Saved plan is stale"
    workspace = '\nWorkspace "staging" doesn\'t exist.\n\nYou can create this workspace…\n'
    assert first_error_line(workspace) == 'Workspace "staging" doesn\'t exist.'
    assert first_error_line("") is None
    assert first_error_line("\n ╵\n") is None


def test_apply_timings() -> None:
    assert parse_duration("1h2m3s") == 3723
    assert parse_duration("45s") == 45
    stdout = (
        "aws_dynamodb_table.fp_events: Destroying... [id=t]\n"
        "aws_dynamodb_table.fp_events: Destruction complete after 4s\n"
        "aws_dynamodb_table.fp_events: Creation complete after 1m2s [id=t]\n"
        'aws_cloudwatch_metric_alarm.table_throttle["a b"]: Modifications complete after 0s [id=a]\n'
        "aws_s3_bucket.baselines: Still creating... [10s elapsed]\n"
    )
    assert parse_apply_timings(stdout) == {
        "aws_dynamodb_table.fp_events": 66.0,
        'aws_cloudwatch_metric_alarm.table_throttle["a b"]': 0.0,
    }


def test_fixtures_round_trip_through_the_models() -> None:
    raw_plan = fixture_json("plan.json")
    plan = PlanDocument.model_validate(raw_plan)
    plan.check_version()
    assert plan.model_dump(mode="json", exclude_unset=True) == raw_plan
    actions = {c.address: c.action for c in plan.managed_changes()}
    assert actions == {
        'aws_cloudwatch_metric_alarm.table_throttle["consent-read-throttle"]': "update",
        "aws_dynamodb_table.fp_events": "replace",
        "aws_s3_bucket.baselines": "no-op",
        "aws_sns_topic_subscription.ops_email[0]": "create",
        "aws_ssm_parameter.legacy_nonce": "delete",
    }
    table = next(c for c in plan.resource_changes if c.address == "aws_dynamodb_table.fp_events")
    assert table.change.replace_paths == [["hash_key"]]
    assert table.action_reason == "replace_because_cannot_update"
    assert plan.prior_state is not None
    assert len(plan.prior_state.values.root_module.resources) == 4

    for name in ("state.json", "state-advanced.json"):
        raw_state = fixture_json(name)
        state = StateDocument.model_validate(raw_state)
        state.check_version()
        assert state.model_dump(mode="json", exclude_unset=True) == raw_state
    assert set(state.instances()) == {
        'aws_cloudwatch_metric_alarm.table_throttle["consent-read-throttle"]',
        "aws_dynamodb_table.fp_events",
        "aws_s3_bucket.baselines",
        "aws_ssm_parameter.legacy_nonce",
    }
    assert fixture_json("state-advanced.json")["serial"] == fixture_json("state.json")["serial"] + 1


# ---------------------------------------------------------------- with the stand-in


class FakeTerraform:
    def __init__(self, log: Path, bin_dir: Path):
        self.log = log
        self.bin_dir = bin_dir

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls()]

    def subcommands(self) -> list[str]:
        return [c["argv"][0] for c in self.calls()]

    def reset(self) -> None:
        self.log.unlink(missing_ok=True)


@pytest.fixture
def fake_tf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTerraform:
    """``terraform`` on a PATH that holds only it and python3 (never a real binary)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "terraform").symlink_to(FAKE)
    (bin_dir / "python3").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(bin_dir))
    log = tmp_path / "terraform-calls.jsonl"
    monkeypatch.setenv("FAKE_TF_LOG", str(log))
    for name in FAKE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return FakeTerraform(log, bin_dir)


@pytest.fixture
def root(infra) -> Path:
    return infra.root.resolve()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return (tmp_path / "out").resolve()


def test_plan_runs_the_documented_commands(
    fake_tf: FakeTerraform, root: Path, out_dir: Path
) -> None:
    cli = TerraformCli(
        "staging", root=root, backend_config={"bucket": "alt-state", "encrypt": True}
    )
    result = cli.plan(out_dir)

    tf_dir = root / "infra" / "terraform"
    plan_file = out_dir / "staging.tfplan"
    assert fake_tf.argvs() == [
        [
            "init",
            "-input=false",
            "-no-color",
            "-reconfigure",
            "-backend-config=bucket=alt-state",
            "-backend-config=encrypt=true",
        ],
        ["workspace", "select", "-no-color", "staging"],
        ["state", "pull", "-no-color"],
        [
            "plan",
            "-input=false",
            "-no-color",
            f"-var-file={tf_dir / 'staging.tfvars'}",
            f"-out={plan_file}",
        ],
        ["show", "-json", "-no-color", str(plan_file)],
    ]
    for call in fake_tf.calls():
        assert call["cwd"] == str(tf_dir)
        assert call["TF_DATA_DIR"] == str(root / ".terraform-data" / "staging")
        assert (call["TF_IN_AUTOMATION"], call["TF_INPUT"]) == ("1", "0")

    assert result.provisioner == "terraform"
    assert (result.environment, result.workspace) == ("staging", "staging")
    assert result.plan_file == str(plan_file)
    assert result.sha256 == sha256_file(plan_file) == result.summary.sha256
    assert (result.prior_serial, result.prior_lineage) == (
        41,
        "2b5c7f0e-8d1a-4c3b-9e6f-1a2b3c4d5e6f",
    )
    assert result.summary.counts == {
        "create": 1,
        "update": 1,
        "replace": 1,
        "delete": 1,
        "no-op": 1,
    }
    assert result.summary.resource_count == 5
    destructive = {(d.address, d.action) for d in result.summary.destructive}
    assert destructive == {
        ("aws_dynamodb_table.fp_events", "replace"),
        ("aws_ssm_parameter.legacy_nonce", "delete"),
    }
    assert "aws_dynamodb_table.consent" in result.summary.missing_expected
    assert "aws_dynamodb_table.fp_events" not in result.summary.missing_expected
    assert result.document.terraform_version == "1.9.8"

    # the review artifact and the sidecar apply reads back
    artifact = json.loads((out_dir / "staging.tfplan.json").read_text())
    assert artifact == fixture_json("plan.json")
    meta = PlanMeta.model_validate_json(meta_path(plan_file).read_text())
    assert meta.model_dump() == {
        "format": "mirror-rollout-terraform-plan-meta/1",
        "environment": "staging",
        "workspace": "staging",
        "sha256": result.sha256,
        "prior_serial": 41,
        "prior_lineage": "2b5c7f0e-8d1a-4c3b-9e6f-1a2b3c4d5e6f",
        "terraform_version": "1.9.8",
    }


def test_missing_workspace_is_created(
    fake_tf: FakeTerraform, root: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TF_NO_WORKSPACE", "1")
    monkeypatch.setenv("FAKE_TF_NO_STATE", "1")
    monkeypatch.setenv("TF_WORKSPACE", "someone-elses")  # must not leak into the commands
    result = TerraformCli("production", root=root).plan(out_dir)
    assert fake_tf.argvs()[:3] == [
        ["init", "-input=false", "-no-color", "-reconfigure"],
        ["workspace", "select", "-no-color", "production"],
        ["workspace", "new", "-no-color", "production"],
    ]
    assert all(call["TF_WORKSPACE"] is None for call in fake_tf.calls())
    assert (result.prior_serial, result.prior_lineage) == (None, None)
    assert result.plan_file == str(out_dir / "production.tfplan")
    assert f"-var-file={root / 'infra/terraform/production.tfvars'}" in fake_tf.argvs()[4]


def test_workspaces_never_share_a_data_dir(
    fake_tf: FakeTerraform, root: Path, tmp_path: Path
) -> None:
    TerraformCli("staging", root=root).plan(tmp_path / "a")
    TerraformCli("production", root=root).plan(tmp_path / "b")
    TerraformCli("staging", root=root, workspace="staging-canary").plan(tmp_path / "c")
    data_dirs = {call["TF_DATA_DIR"] for call in fake_tf.calls()}
    assert data_dirs == {
        str(root / ".terraform-data" / ws) for ws in ("staging", "production", "staging-canary")
    }
    assert (tmp_path / "c" / "staging-canary.tfplan").is_file()


def test_apply_runs_exactly_the_reviewed_plan(
    fake_tf: FakeTerraform, root: Path, out_dir: Path
) -> None:
    planned = TerraformCli("staging", root=root).plan(out_dir)
    fake_tf.reset()

    result = TerraformCli("staging", root=root).apply(Path(planned.plan_file), planned.sha256)

    reviewed_copy = root / ".terraform-data" / "staging" / "apply" / "staging.tfplan"
    assert fake_tf.argvs() == [
        ["init", "-input=false", "-no-color", "-reconfigure"],
        ["workspace", "select", "-no-color", "staging"],
        ["state", "pull", "-no-color"],
        ["show", "-json", "-no-color", str(reviewed_copy)],
        ["apply", "-input=false", "-no-color", str(reviewed_copy)],
        ["output", "-json", "-no-color"],
        ["state", "pull", "-no-color"],
    ]
    assert not reviewed_copy.exists()
    assert result.sha256 == planned.sha256
    assert {(a.address, a.action, a.seconds) for a in result.applied} == {
        ('aws_cloudwatch_metric_alarm.table_throttle["consent-read-throttle"]', "update", 0.0),
        ("aws_dynamodb_table.fp_events", "replace", 66.0),
        ("aws_sns_topic_subscription.ops_email[0]", "create", 1.0),
        ("aws_ssm_parameter.legacy_nonce", "delete", 1.0),
    }
    assert "alert_email" not in result.outputs
    assert result.outputs["sns_topic_arn"].endswith(":mirror-dissonance-staging-ops-alerts")
    assert result.state_serial == 42
    assert result.seconds > 0


def test_apply_onto_an_empty_workspace(
    fake_tf: FakeTerraform, root: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TF_NO_STATE", "1")
    planned = TerraformCli("staging", root=root).plan(out_dir)
    result = TerraformCli("staging", root=root).apply(Path(planned.plan_file), planned.sha256)
    assert "apply" in fake_tf.subcommands()
    assert result.state_serial is None  # the stand-in keeps printing no state


def _refusal_cases():
    def wrong_hash(plan, env):
        return plan.sha256.replace(plan.sha256[0], "0" if plan.sha256[0] != "0" else "1", 1)

    def tampered(plan, env):
        with open(plan.plan_file, "ab") as handle:
            handle.write(b"\x00")
        return plan.sha256

    def stale(plan, env):
        env.setenv("FAKE_TF_STATE", str(FIXTURES / "state-advanced.json"))
        return plan.sha256

    def no_sidecar(plan, env):
        meta_path(Path(plan.plan_file)).unlink()
        return plan.sha256

    def forged_sidecar(plan, env):
        path = meta_path(Path(plan.plan_file))
        meta = json.loads(path.read_text())
        path.write_text(json.dumps({**meta, "sha256": "ab" * 32}))
        return plan.sha256

    return {
        "missing hash": (lambda plan, env: None, "needs the sha256"),
        "empty hash": (lambda plan, env: "", "needs the sha256"),
        "wrong hash": (wrong_hash, "the approval is for"),
        "tampered file": (tampered, "the approval is for"),
        "stale plan": (stale, "plan is stale: the staging state is now serial 42"),
        "no sidecar": (no_sidecar, "staging.tfplan.meta.json is missing"),
        "sidecar of another plan": (forged_sidecar, "belongs to another plan"),
    }


@pytest.mark.parametrize("case", list(_refusal_cases()))
def test_apply_refuses_anything_but_the_reviewed_current_plan(
    case: str,
    fake_tf: FakeTerraform,
    root: Path,
    out_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prepare, message = _refusal_cases()[case]
    planned = TerraformCli("staging", root=root).plan(out_dir)
    expected = prepare(planned, monkeypatch)
    fake_tf.reset()
    with pytest.raises(ApplyRefused, match=message):
        TerraformCli("staging", root=root).apply(Path(planned.plan_file), expected)
    assert "apply" not in fake_tf.subcommands()
    assert "show" not in fake_tf.subcommands()


def test_apply_refuses_a_plan_of_another_environment(
    fake_tf: FakeTerraform, root: Path, out_dir: Path
) -> None:
    planned = TerraformCli("staging", root=root).plan(out_dir)
    fake_tf.reset()
    with pytest.raises(ApplyRefused, match="made for staging"):
        TerraformCli("production", root=root).apply(Path(planned.plan_file), planned.sha256)
    assert fake_tf.calls() == []


def test_stale_when_state_appeared_after_an_empty_plan(
    fake_tf: FakeTerraform, root: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TF_NO_STATE", "1")
    planned = TerraformCli("staging", root=root).plan(out_dir)
    monkeypatch.delenv("FAKE_TF_NO_STATE")
    with pytest.raises(ApplyRefused, match="made against no state"):
        TerraformCli("staging", root=root).apply(Path(planned.plan_file), planned.sha256)
    assert "apply" not in fake_tf.subcommands()


def test_failing_plan_is_one_line_and_the_full_output_is_logged(
    fake_tf: FakeTerraform,
    root: Path,
    out_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mirror_rollout.terraform")
    cli = TerraformCli("staging", root=root)
    cli.plan(out_dir)  # an earlier plan must not survive a failed one
    monkeypatch.setenv("FAKE_TF_FAIL", "plan")
    with pytest.raises(RolloutError) as raised:
        cli.plan(out_dir)
    assert raised.value.problem == f"terraform plan failed (exit 1): {CREDENTIALS_ERROR}"
    assert "\n" not in raised.value.problem
    assert "plan again" in raised.value.fix
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].name == "mirror_rollout.terraform"
    lines = errors[0].getMessage().splitlines()
    assert lines[0] == raised.value.problem
    assert lines[1:4] == ["╷", f"│ {CREDENTIALS_ERROR}", "│ "]
    assert '│   on backend.tf line 24, in provider "aws":' in lines
    assert "│ error ec2imds: GetMetadata, request canceled, context deadline exceeded" in lines
    assert lines[-1] == "╵"
    assert not (out_dir / "staging.tfplan").exists()
    assert not meta_path(out_dir / "staging.tfplan").exists()
    assert not (out_dir / "staging.tfplan.json").exists()
    # the successful commands went to the log too, the state never does
    messages = [r.getMessage() for r in caplog.records]
    assert "Terraform has been successfully initialized!" in messages
    assert not any("2b5c7f0e" in m for m in messages)


def test_a_held_lock_is_reported_with_its_id(
    fake_tf: FakeTerraform, root: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TF_FAIL", "plan")
    monkeypatch.setenv("FAKE_TF_FAIL_KIND", "lock")
    with pytest.raises(StateLocked) as raised:
        TerraformCli("staging", root=root).plan(out_dir)
    assert raised.value.problem.startswith(
        "terraform plan failed (exit 1): Error: Error acquiring the state lock"
    )
    assert "force-unlock 9db590f1-b6fe-c5f2-2678-8804f089deba" in raised.value.fix


def test_failing_apply(
    fake_tf: FakeTerraform, root: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = TerraformCli("staging", root=root).plan(out_dir)
    monkeypatch.setenv("FAKE_TF_FAIL", "apply")
    with pytest.raises(RolloutError, match=r"terraform apply failed \(exit 1\): Error: No valid"):
        TerraformCli("staging", root=root).apply(Path(planned.plan_file), planned.sha256)
    assert not (root / ".terraform-data" / "staging" / "apply" / "staging.tfplan").exists()


def test_failing_init_names_the_command(
    fake_tf: FakeTerraform, root: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TF_FAIL", "init")
    with pytest.raises(RolloutError, match=r"^terraform init failed \(exit 1\)") as raised:
        TerraformCli("staging", root=root).plan(out_dir)
    assert "backend configuration" in raised.value.fix
    assert fake_tf.subcommands() == ["init"]


def test_outputs_and_state_serial(
    fake_tf: FakeTerraform, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = TerraformCli("staging", root=root)
    outputs = cli.outputs()
    assert "alert_email" not in outputs
    assert outputs["baselines_bucket_name"] == "mirror-dissonance-staging-baselines"
    assert cli.state_serial() == 41
    assert fake_tf.subcommands() == ["init", "workspace", "output", "state"]  # init once
    monkeypatch.setenv("FAKE_TF_NO_STATE", "1")
    assert cli.state_serial() is None


def test_no_binary_on_path(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ConfigError, match="neither terraform nor tofu is on PATH") as raised:
        TerraformCli("staging", root=root)
    assert "--provisioner sandbox" in raised.value.fix
    assert "install" in raised.value.fix.lower()


def test_tofu_is_the_fallback_and_binary_can_be_named(
    fake_tf: FakeTerraform, root: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (fake_tf.bin_dir / "terraform").unlink()
    (fake_tf.bin_dir / "tofu").symlink_to(FAKE)
    cli = TerraformCli("staging", root=root)
    assert cli.binary == str(fake_tf.bin_dir / "tofu")
    monkeypatch.setenv("FAKE_TF_FAIL", "plan")
    with pytest.raises(RolloutError, match=r"^tofu plan failed"):
        cli.plan(out_dir)
    assert TerraformCli("staging", root=root, binary=str(FAKE)).binary == str(FAKE)
    with pytest.raises(ConfigError, match="'terraform' is not an executable on PATH"):
        TerraformCli("staging", root=root, binary="terraform")


def test_configuration_errors(fake_tf: FakeTerraform, root: Path) -> None:
    with pytest.raises(ConfigError, match="workspace name"):
        TerraformCli("staging", root=root, workspace="../prod")
    with pytest.raises(ConfigError, match="unknown environment 'qa'"):
        TerraformCli("qa", root=root)
    (root / "infra" / "terraform" / "production.tfvars").unlink()
    with pytest.raises(ConfigError, match=r"unknown environment 'production'.*use one of: staging"):
        TerraformCli("production", root=root)
    with pytest.raises(ConfigError, match="infra/terraform does not exist"):
        TerraformCli("staging", root=root / "elsewhere")


# ---------------------------------------------------------------- the real binary, if any

REAL_CONFIG = """
terraform {
  backend "local" {}
}
variable "environment" {
  type = string
}
resource "terraform_data" "marker" {
  input = "mirror-${var.environment}"
}
resource "terraform_data" "replica" {
  count            = 2
  triggers_replace = [var.environment]
}
output "marker" {
  value = terraform_data.marker.output
}
output "secret" {
  value     = "s3cr3t"
  sensitive = true
}
"""


@pytest.mark.skipif(REAL_TERRAFORM is None, reason="no terraform or tofu on PATH")
def test_against_the_real_binary(tmp_path: Path) -> None:
    """Built-in ``terraform_data`` and a local backend: no provider download, no cloud."""
    root = tmp_path / "project"
    tf_dir = root / "infra" / "terraform"
    tf_dir.mkdir(parents=True)
    (tf_dir / "main.tf").write_text(REAL_CONFIG)
    (tf_dir / "staging.tfvars").write_text('environment = "staging"\n')
    cli_args = dict(
        root=root,
        binary=REAL_TERRAFORM,
        backend_config={"workspace_dir": str(tmp_path / "states")},
        extra_env={"CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": os.devnull},
    )
    planned = TerraformCli("staging", **cli_args).plan(tmp_path / "out")
    assert planned.summary.counts == {"create": 3}
    assert planned.prior_serial is None

    result = TerraformCli("staging", **cli_args).apply(Path(planned.plan_file), planned.sha256)
    assert {a.address for a in result.applied} == {
        "terraform_data.marker",
        "terraform_data.replica[0]",
        "terraform_data.replica[1]",
    }
    assert result.outputs == {"marker": "mirror-staging"}
    assert result.state_serial is not None
    assert (tmp_path / "states" / "staging" / "terraform.tfstate").is_file()

    again = TerraformCli("staging", **cli_args)
    assert again.state_serial() == result.state_serial
    with pytest.raises(ApplyRefused, match="plan is stale"):
        again.apply(Path(planned.plan_file), planned.sha256)
    replanned = again.plan(tmp_path / "out2")
    assert replanned.summary.counts == {"no-op": 3}
    assert replanned.prior_serial == result.state_serial


def test_inside_a_prefect_run_the_run_logger_gets_the_lines(
    fake_tf: FakeTerraform,
    root: Path,
    out_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import prefect.logging  # noqa: F401  (imported, yet outside any run)

    from mirror_rollout.provisioners import terraform_cli

    assert terraform_cli._run_logger() is None
    run_logger = logging.getLogger("tests.prefect-run")
    monkeypatch.setattr(terraform_cli, "_run_logger", lambda: run_logger)
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("FAKE_TF_FAIL", "plan")
    with pytest.raises(RolloutError):
        TerraformCli("staging", root=root).plan(out_dir)
    assert {r.name for r in caplog.records} == {"tests.prefect-run"}
    assert any(r.levelno == logging.ERROR for r in caplog.records)
