"""The Terraform CLI provisioner: its pure parts, and the real Terraform on the sandbox.

The pure parts (argv, parsing of Terraform's output, version checks, the
sandbox override) need no binary. The rest runs the real Terraform and
provider against moto on tests/fixtures/roots/small (see tests/tf_roots.py) and
reads the outcome back from moto: the state object in S3, the lock table, the
resources.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from mirror_rollout.errors import ConfigError, RolloutError
from mirror_rollout.provisioners import sandbox_override as so
from mirror_rollout.provisioners.base import ApplyRefused, PlanResult, StateLocked
from mirror_rollout.provisioners.document import PlanDocument, StateDocument
from mirror_rollout.provisioners.terraform_binary import (
    check_version,
    cli_config,
    find_terraform,
    parse_version,
    plugin_mirror,
)
from mirror_rollout.provisioners.terraform_cli import TerraformCli
from mirror_rollout.provisioners.terraform_commands import (
    command_lines,
    redact_argv,
    render_backend_value,
)
from mirror_rollout.provisioners.terraform_output import (
    Paragraphs,
    applied_addresses,
    failed_addresses,
    first_error_line,
    parse_apply_timings,
    parse_duration,
)
from mirror_rollout.provisioners.terraform_plan import meta_path
from mirror_rollout.provisioners.terraform_run import TERRAFORM_GOGC
from mirror_rollout.provisioners.terraform_state import parse_outputs, parse_state_header
from tests.tf_roots import Root, mirror_rollout

FIXTURES = Path(__file__).parent / "fixtures" / "terraform"
CREDENTIALS_ERROR = "Error: No valid credential sources found"
MOTO = "http://127.0.0.1:5055"


def fixture_json(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


# ================================================================ pure parts


def test_command_lines() -> None:
    lines = command_lines(
        "terraform",
        workspace="staging",
        var_file="staging.tfvars",
        plan_file="/out/staging.tfplan",
        backend_config={"bucket": "alt-state", "encrypt": True},
        lock_id="9db590f1",
    )
    plan = ["terraform", "plan", "-input=false", "-no-color"]
    plan += ["-var-file=staging.tfvars", "-out=/out/staging.tfplan"]
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
        "workspace select or create": [
            "terraform",
            "workspace",
            "select",
            "-or-create",
            "-no-color",
            "staging",
        ],
        "state pull": ["terraform", "state", "pull", "-no-color"],
        "plan": plan,
        # The same plan, with the exit code that tells whether anything would change.
        "re-plan": [*plan[:4], "-detailed-exitcode", *plan[4:]],
        "show": ["terraform", "show", "-json", "-no-color", "/out/staging.tfplan"],
        "apply": ["terraform", "apply", "-input=false", "-no-color", "/out/staging.tfplan"],
        "output": ["terraform", "output", "-json", "-no-color"],
        "force-unlock": ["terraform", "force-unlock", "-force", "-no-color", "9db590f1"],
        "version": ["terraform", "version", "-json"],
        "validate": ["terraform", "validate", "-no-color"],
    }
    bare = command_lines("/usr/bin/terraform", workspace="w", var_file="v", plan_file="p")
    # No backend config: init's own flags alone.
    assert bare["init"] == ["/usr/bin/terraform", *lines["init"][1:5]]


def test_backend_values_and_redaction() -> None:
    assert render_backend_value("http://127.0.0.1:5055") == "http://127.0.0.1:5055"
    assert render_backend_value(False) == "false"
    assert render_backend_value(3) == "3"
    endpoints = {"s3": MOTO, "dynamodb": MOTO}
    assert render_backend_value(endpoints) == f'{{s3="{MOTO}",dynamodb="{MOTO}"}}'
    assert render_backend_value(["a", "${x}", "%{y}"]) == '["a","$${x}","%%{y}"]'
    with pytest.raises(ConfigError, match="unsupported type"):
        render_backend_value(object())
    assert redact_argv(
        [
            "t",
            "init",
            "-backend-config=secret_key=abc",
            "-backend-config=token=t0k",
            "-backend-config=bucket=b",
        ]
    ) == [
        "t",
        "init",
        "-backend-config=secret_key=***",
        "-backend-config=token=***",
        "-backend-config=bucket=b",
    ]


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


APPLY_STDOUT = (
    "aws_dynamodb_table.fp_events: Destroying... [id=t]\n"
    "aws_dynamodb_table.fp_events: Destruction complete after 4s\n"
    "aws_dynamodb_table.fp_events: Creation complete after 1m2s [id=t]\n"
    'aws_cloudwatch_metric_alarm.table_throttle["a b"]: Modifications complete after 0s [id=a]\n'
    "aws_s3_bucket.baselines: Still creating... [10s elapsed]\n"
)


PLAN_STDOUT = (
    "data.aws_caller_identity.current: Reading...\n"
    'module.audit.aws_s3_bucket.logs["a b"]: Refreshing state... [id=logs]\n'
    "\n"
    "Terraform will perform the following actions:\n"
    "\n"
    "  # aws_sns_topic.alarms will be created\n"
    '  + resource "aws_sns_topic" "alarms" {\n'
    '      + name = "alarms"\n'
    "    }\n"
    "\n"
    "Plan: 1 to add, 0 to change, 0 to destroy.\n"
    "aws_sns_topic.alarms: Creating...\n"
    "Saved the plan to: staging.tfplan"
)


def test_output_is_logged_a_progress_line_alone_the_rest_by_paragraph() -> None:
    paragraphs = Paragraphs()
    messages = [m for line in PLAN_STDOUT.splitlines(True) for m in paragraphs.feed(line)]
    assert messages == [
        "data.aws_caller_identity.current: Reading...",
        'module.audit.aws_s3_bucket.logs["a b"]: Refreshing state... [id=logs]',
        "Terraform will perform the following actions:",
        "  # aws_sns_topic.alarms will be created\n"
        '  + resource "aws_sns_topic" "alarms" {\n'
        '      + name = "alarms"\n'
        "    }",
        "Plan: 1 to add, 0 to change, 0 to destroy.",  # a progress line ends a paragraph
        "aws_sns_topic.alarms: Creating...",
    ]
    assert paragraphs.flush() == ["Saved the plan to: staging.tfplan"]
    assert paragraphs.flush() == []


def test_apply_timings_and_addresses() -> None:
    assert parse_duration("1h2m3s") == 3723
    assert parse_duration("45s") == 45
    assert parse_apply_timings(APPLY_STDOUT) == {
        "aws_dynamodb_table.fp_events": 66.0,
        'aws_cloudwatch_metric_alarm.table_throttle["a b"]': 0.0,
    }
    assert applied_addresses(APPLY_STDOUT) == [  # a replace's two completions count once
        "aws_dynamodb_table.fp_events",
        'aws_cloudwatch_metric_alarm.table_throttle["a b"]',
    ]
    stderr = (
        "╷\n│ Error: creating S3 Bucket Logging: operation error S3: PutBucketLogging, 500\n│ \n"
        "│   with aws_s3_bucket_logging.audit,\n│   on main.tf line 40, in resource …:\n╵\n"
        "╷\n│ Error: creating Backup Selection: 500\n│ \n"
        '│   with aws_backup_selection.tables["x"],\n╵\n'
        "╷\n│ Error: again\n│   with aws_s3_bucket_logging.audit,\n╵\n"
    )
    assert failed_addresses(stderr) == [
        "aws_s3_bucket_logging.audit",
        'aws_backup_selection.tables["x"]',
    ]
    assert failed_addresses("") == []


def test_document_models_round_trip() -> None:
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
    raw_state = fixture_json("state.json")
    state = StateDocument.model_validate(raw_state)
    state.check_version()
    assert state.model_dump(mode="json", exclude_unset=True) == raw_state
    assert 'aws_cloudwatch_metric_alarm.table_throttle["consent-read-throttle"]' in (
        state.instances()
    )
    with pytest.raises(ConfigError, match=r"format_version 2\.0"):
        PlanDocument.model_validate({**raw_plan, "format_version": "2.0"}).check_version()


# ---------------------------------------------------------------- terraform_binary


def test_parse_and_check_version() -> None:
    assert parse_version('{"terraform_version":"1.11.4","platform":"linux_amd64"}') == (1, 11, 4)
    assert parse_version("Terraform v1.5.7\non linux_amd64\n") == (1, 5, 7)
    assert parse_version('{"platform":"linux_amd64"}') is None
    assert parse_version("") is None
    check_version((1, 11, 0), "/bin/terraform")
    check_version((2, 0, 1), "/bin/terraform")
    with pytest.raises(ConfigError) as old:
        check_version((1, 10, 5), "/bin/terraform")
    assert old.value.problem == (
        "/bin/terraform is Terraform 1.10.5; mirror-rollout needs 1.11 or newer "
        "(write-only arguments)"
    )
    assert "install Terraform 1.11 or newer" in old.value.fix
    assert "https://developer.hashicorp.com/terraform/install" in old.value.fix
    with pytest.raises(ConfigError, match="cannot tell the version of /bin/terraform"):
        check_version(None, "/bin/terraform")


def test_cli_config_and_plugin_mirror(tmp_path: Path) -> None:
    text = cli_config(Path("/opt/tf-plugins"))
    assert 'path    = "/opt/tf-plugins"' in text
    assert 'include = ["registry.terraform.io/hashicorp/*"]' in text
    assert 'exclude = ["registry.terraform.io/hashicorp/*"]' in text
    assert text.index("filesystem_mirror") < text.index("direct")

    mirror = tmp_path / "plugins"
    (mirror / "registry.terraform.io").mkdir(parents=True)
    assert plugin_mirror({"MIRROR_ROLLOUT_TF_PLUGINS": str(mirror)}) == mirror
    with pytest.raises(ConfigError, match=r"holds no registry\.terraform\.io/ provider tree"):
        plugin_mirror({"MIRROR_ROLLOUT_TF_PLUGINS": str(tmp_path / "empty")})


def version_stub(directory: Path, version: str) -> Path:
    """A ``terraform`` on ``directory`` that only answers ``version -json`` (as ``version``)."""
    directory.mkdir(parents=True, exist_ok=True)
    stub = directory / "terraform"
    stub.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = version ]; then\n'
        f'  echo \'{{"terraform_version":"{version}"}}\'\n'
        "  exit 0\n"
        "fi\n"
        'echo "version probe stub: only answers version -json" >&2\n'
        "exit 1\n"
    )
    stub.chmod(0o755)
    return stub


@pytest.fixture
def small_root(tmp_path: Path) -> Root:
    return Root("small", tmp_path)


def test_too_old_terraform_is_one_clear_error(
    tmp_path: Path, small_root: Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = version_stub(tmp_path / "bin", "1.5.7")
    monkeypatch.setenv("PATH", str(stub.parent))
    monkeypatch.delenv("MIRROR_ROLLOUT_TERRAFORM", raising=False)
    with pytest.raises(ConfigError) as raised:
        find_terraform()
    assert raised.value.problem == (
        f"{stub} is Terraform 1.5.7; mirror-rollout needs 1.11 or newer (write-only arguments)"
    )
    assert raised.value.fix == (
        "install Terraform 1.11 or newer (https://developer.hashicorp.com/terraform/install) "
        "and put `terraform` on PATH"
    )
    with pytest.raises(ConfigError, match=r"Terraform 1\.5\.7; mirror-rollout needs 1\.11"):
        TerraformCli("staging", root=small_root.path, work_dir=tmp_path / "work")
    # the command line: one line, no traceback, exit 2
    done = mirror_rollout(None, "doctor", env={"PATH": str(stub.parent)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {raised.value.problem} — {raised.value.fix}"
    ]


def test_missing_terraform_is_one_clear_error(
    tmp_path: Path, small_root: Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("MIRROR_ROLLOUT_TERRAFORM", raising=False)
    with pytest.raises(ConfigError) as raised:
        TerraformCli("staging", root=small_root.path, work_dir=tmp_path / "work")
    assert raised.value.problem == (
        "Terraform 1.11 or newer is needed and 'terraform' is not on PATH"
    )
    assert "https://developer.hashicorp.com/terraform/install" in raised.value.fix
    monkeypatch.setenv("MIRROR_ROLLOUT_TERRAFORM", "/nowhere/terraform")
    with pytest.raises(ConfigError, match="'/nowhere/terraform' is not on PATH"):
        find_terraform()


def test_configuration_errors(tmp_path: Path, small_root: Root) -> None:
    work = tmp_path / "work"
    with pytest.raises(ConfigError, match="workspace name"):
        TerraformCli("staging", root=small_root.path, work_dir=work, workspace="../prod")
    with pytest.raises(ConfigError, match="unknown environment 'qa'"):
        TerraformCli("qa", root=small_root.path, work_dir=work)
    (small_root.tf_dir / "production.tfvars").unlink()
    with pytest.raises(ConfigError, match=r"unknown environment 'production'.*use one of: staging"):
        TerraformCli("production", root=small_root.path, work_dir=work)
    with pytest.raises(ConfigError, match="infra/terraform does not exist"):
        TerraformCli("staging", root=tmp_path / "elsewhere", work_dir=work)


def test_force_unlock_command_names_root_and_backend(tmp_path: Path, small_root: Root) -> None:
    work = tmp_path / "work"
    on_aws = TerraformCli("staging", work_dir=work, backend="aws")
    assert on_aws.force_unlock_command("9db5") == (
        "mirror-rollout force-unlock 9db5 --env staging --backend aws"
    )
    elsewhere = TerraformCli("staging", root=small_root.path, work_dir=work, backend="sandbox")
    assert elsewhere.force_unlock_command("9db5") == (
        f"mirror-rollout force-unlock 9db5 --env staging --root {small_root.path}"
    )


# ---------------------------------------------------------------- sandbox_override

ROOT_TF = """
provider "aws" {
  region = "us-east-1"
}

provider "aws" {
  alias  = "west"
  region = "us-west-2"
}

provider "aws" {
  alias  = "replica"
  region = "eu-west-1"
}

resource "aws_sns_topic" "alerts" {
  name = "alerts"
}

resource "aws_s3_bucket_logging" "audit" {
  bucket        = "audit"
  target_bucket = "logs"
  target_prefix = "audit/"
}

resource "aws_backup_selection" "tables" {
  for_each     = toset(["a"])
  name         = each.key
  plan_id      = "p"
  iam_role_arn = "arn:aws:iam::123456789012:role/backup"
}

resource "aws_backup_vault" "main" {
  name = "main"

  lifecycle {
    ignore_changes = [force_destroy]
  }
}
"""


def test_read_root(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(ROOT_TF)
    (tmp_path / "more.tf").write_text(
        'resource "aws_backup_plan" "daily" {\n  count = 1\n  name = "daily"\n'
        "  lifecycle {\n    ignore_changes = all\n  }\n}\n"
    )
    # Override files are Terraform's to merge, never read as the root's own.
    (tmp_path / "sandbox_override.tf").write_text('resource "aws_sqs_queue" "x" {}\n')
    (tmp_path / "override.tf").write_text('provider "aws" {\n  alias = "ignored"\n}\n')

    raw = so.read_root(tmp_path)

    assert raw.aws_aliases == ("west", "replica")
    assert {(r.address, r.file, r.repetition, r.ignore_changes) for r in raw.resources} == {
        ("aws_sns_topic.alerts", "main.tf", None, ()),
        ("aws_s3_bucket_logging.audit", "main.tf", None, ()),
        ("aws_backup_selection.tables", "main.tf", "for_each", ()),
        ("aws_backup_vault.main", "main.tf", None, ("force_destroy",)),
        ("aws_backup_plan.daily", "more.tf", "count", ("all",)),
    }
    gaps = {g.address: g for g in so.sandbox_gaps(raw)}
    assert {a: g.kind for a, g in gaps.items()} == {
        "aws_s3_bucket_logging.audit": "exclude",
        "aws_backup_selection.tables": "exclude",
        "aws_backup_vault.main": "ignore",
        "aws_backup_plan.daily": "ignore",
    }
    assert gaps["aws_backup_vault.main"].attributes == ["tags", "tags_all"]
    assert "PutBucketLogging" in gaps["aws_s3_bucket_logging.audit"].moto_behaviour
    assert so.excluded(gaps.values()) == {
        "aws_s3_bucket_logging.audit": gaps["aws_s3_bucket_logging.audit"].moto_behaviour,
        "aws_backup_selection.tables": gaps["aws_backup_selection.tables"].moto_behaviour,
    }


def test_render_override(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(ROOT_TF)
    raw = so.read_root(tmp_path)
    role = "arn:aws:iam::222222222222:role/mirror-rollout-sandbox"
    text = so.render_override(raw, MOTO, assume_role_arn=role)

    blocks = text.split('provider "aws" {')[1:]
    assert len(blocks) == 3  # the default provider and each alias
    assert [b.split("\n")[1].strip() for b in blocks[1:]] == [
        'alias = "west"',
        'alias = "replica"',
    ]
    for block in blocks:
        body = block.split("\n}\n")[0]
        assert "region =" not in body  # each provider keeps the root's region
        assert f'role_arn     = "{role}"' in body
        assert f"max_retries                 = {so.SANDBOX_MAX_RETRIES}" in body
        for service in so.ENDPOINT_SERVICES:
            assert f'{service} = "{MOTO}"' in " ".join(body.split())
        for setting in ("s3_use_path_style", "skip_credentials_validation"):
            assert f"{setting}" in body
    assert "access_key" not in text and "secret_key" not in text
    # exactly the gaps: count = 0 / for_each = {} / ignore_changes merged with the root's own
    assert 'resource "aws_s3_bucket_logging" "audit" {\n  count = 0\n}' in text
    assert 'resource "aws_backup_selection" "tables" {\n  for_each = {}\n}' in text
    assert (
        'resource "aws_backup_vault" "main" {\n  lifecycle {\n'
        "    ignore_changes = [force_destroy, tags, tags_all]\n  }\n}"
    ) in text
    assert 'resource "aws_sns_topic"' not in text
    assert "# moto gap: moto's PutBucketLogging answers HTTP 500" in text

    staging = so.render_override(so.RawRoot((), ()), MOTO)
    assert "assume_role" not in staging and staging.count('provider "aws"') == 1
    with pytest.raises(ConfigError, match="loopback moto endpoint"):
        so.render_override(raw, "https://sns.us-east-1.amazonaws.com")
    config = so.backend_config(MOTO)
    assert config["endpoints"] == {"s3": MOTO, "dynamodb": MOTO, "sts": MOTO, "iam": MOTO}
    assert config["use_path_style"] is True


# ================================================================ real Terraform on the sandbox


def moto_parameter(name: str) -> dict[str, Any] | None:
    ssm = boto3.client("ssm")
    found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])
    if not found["Parameters"]:
        return None
    return {
        "value": ssm.get_parameter(Name=name)["Parameter"]["Value"],
        "version": found["Parameters"][0]["Version"],
        "modified": found["Parameters"][0]["LastModifiedDate"],
    }


def set_marker(root: Root, value: str) -> None:
    (root.tf_dir / "staging.tfvars").write_text(
        f'environment = "staging"\nmarker      = "{value}"\n'
    )


@dataclass
class Reviewed:
    """The small root applied, then a reviewed (not applied) plan changing its marker."""

    root: Root
    planned: PlanResult
    flow_run_id: str
    terraform_log_records: list[logging.LogRecord]

    @property
    def marker(self) -> str:
        return f"/{self.root.prefix()}/marker"

    def outcome(self) -> tuple[Any, ...]:
        """What an apply would change, read from moto: state serial, marker, locks."""
        return self.root.serial(), moto_parameter(self.marker), self.root.lock_items()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def reviewed(prefect_api, tmp_path_factory) -> Reviewed:
    """Applied once; then the change is planned inside a Prefect flow run, as the rollout does."""
    from prefect import flow
    from prefect.runtime import flow_run

    from mirror_rollout.provisioners import terraform_for

    base = tmp_path_factory.mktemp("reviewed")
    root = Root("small", base)
    terraform = root.terraform()
    first = terraform.plan(base / "first")
    terraform.apply(Path(first.plan_file), first.sha256)
    set_marker(root, "second")

    @flow(name="terraform-cli-test-plan", persist_result=False)
    def plan_in_a_run(root_path: str, out: str) -> dict[str, Any]:
        terraform = terraform_for("staging", "sandbox", Path(root_path), Path(out) / "terraform")
        return {"run": str(flow_run.id), "plan": terraform.plan(Path(out)).model_dump(mode="json")}

    records = _Records()
    library_log = logging.getLogger("mirror_rollout.terraform")
    library_log.addHandler(records)
    try:
        done = plan_in_a_run(str(root.path), str(base / "reviewed"))
    finally:
        library_log.removeHandler(records)
    planned = PlanResult.model_validate(done["plan"])
    assert planned.summary.counts == {"update": 1, "no-op": 1}
    return Reviewed(root, planned, done["run"], records.records)


def staged_copy(planned: PlanResult, directory: Path) -> Path:
    """The reviewed plan's files (plan, JSON, sidecar) copied to ``directory``: a test's own."""
    directory.mkdir(parents=True)
    plan_file = Path(planned.plan_file)
    for source in plan_file.parent.glob(plan_file.name + "*"):
        (directory / source.name).write_bytes(source.read_bytes())
    return directory / plan_file.name


def _wrong_hash(plan: Path, sha: str) -> str:
    return ("0" if sha[0] != "0" else "1") + sha[1:]


def _tampered(plan: Path, sha: str) -> str:
    with open(plan, "ab") as handle:
        handle.write(b"\x00")
    return sha


def _no_sidecar(plan: Path, sha: str) -> str:
    meta_path(plan).unlink()
    return sha


def _sidecar_of_another_plan(plan: Path, sha: str) -> str:
    meta = json.loads(meta_path(plan).read_text())
    meta_path(plan).write_text(json.dumps({**meta, "sha256": "ab" * 32}))
    return sha


REFUSALS = {
    "missing sha256": (lambda plan, sha: None, "staging", "needs the sha256 of the reviewed plan"),
    "empty sha256": (lambda plan, sha: "", "staging", "needs the sha256 of the reviewed plan"),
    "wrong sha256": (_wrong_hash, "staging", "the approval is for"),
    "malformed sha256": (
        lambda plan, sha: sha[:12] + "…",
        "staging",
        "is not 64 hexadecimal digits",
    ),
    "tampered plan file": (_tampered, "staging", "the approval is for"),
    "no sidecar": (_no_sidecar, "staging", "staging.tfplan.meta.json is missing"),
    "sidecar of another plan": (_sidecar_of_another_plan, "staging", "belongs to another plan"),
    "plan of another environment": (
        lambda plan, sha: sha,
        "production",
        r"staging.tfplan was made for staging \(workspace staging\), not production",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_apply_refuses_anything_but_the_reviewed_plan(
    case: str, reviewed: Reviewed, tmp_path: Path
) -> None:
    prepare, env, message = REFUSALS[case]
    plan_file = staged_copy(reviewed.planned, tmp_path / "plan")
    approved = prepare(plan_file, reviewed.planned.sha256)
    before = reviewed.outcome()
    assert before[1] is not None and before[1]["value"] == "first"

    terraform = reviewed.root.terraform(env, work=tmp_path / "work")
    with pytest.raises(ApplyRefused, match=message):
        terraform.apply(plan_file, approved)

    assert reviewed.outcome() == before  # same serial, same marker (value, version), no lock
    assert reviewed.root.state("production") is None
    assert not list((tmp_path / "work").rglob("apply/*.tfplan"))


def test_apply_refuses_a_stale_plan(sandbox, small_root: Root, tmp_path: Path) -> None:
    """Two plans of the same state; once one is applied, the other is stale."""
    older = small_root.terraform().plan(tmp_path / "older")
    set_marker(small_root, "newer")
    terraform = small_root.terraform()
    newer = terraform.plan(tmp_path / "newer")
    assert older.prior_serial == newer.prior_serial is not None
    terraform.apply(Path(newer.plan_file), newer.sha256)
    marker = f"/{small_root.prefix()}/marker"
    applied = small_root.serial(), moto_parameter(marker)
    assert applied[0] is not None and applied[0] > older.prior_serial
    assert applied[1] is not None and applied[1]["value"] == "newer"

    # The state the apply left is kept for the orphan scan (no `state pull` of its own):
    # private, and the same as the backend's.
    kept = terraform.data_dir / "applied.tfstate"
    assert kept.stat().st_mode & 0o077 == 0
    ran = dict(terraform.timings)
    kept_state = terraform.applied_state_document()
    assert terraform.timings == ran  # read from the file: no Terraform command ran
    assert kept_state["serial"] == applied[0]
    assert kept_state == terraform.state_document()
    with pytest.raises(ApplyRefused) as raised:
        terraform.apply(Path(older.plan_file), older.sha256)
    assert not kept.exists()  # a refused apply leaves no state of an apply behind
    assert raised.value.problem == (
        f"the plan is stale: the staging state is now serial {applied[0]} of lineage "
        f"{older.prior_lineage}, the plan was made against serial {older.prior_serial} "
        f"of lineage {older.prior_lineage}"
    )
    assert (small_root.serial(), moto_parameter(marker)) == applied
    assert small_root.lock_items() == []


def test_a_held_lock_is_reported_and_force_unlock_releases_it(
    sandbox, small_root: Root, tmp_path: Path
) -> None:
    # A plan that dies holding the lock: Terraform killed (with its provider) mid-plan.
    terraform = small_root.terraform()
    terraform._prepare()  # init, and the workspace with its empty state
    assert terraform.state_serial() is not None
    argv = terraform.commands(tmp_path / "dying.tfplan")["plan"]
    # Started as the provisioner starts it, in a session of its own to kill it with its provider.
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    dying = terraform.start(argv, **quiet, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not small_root.lock_items():
            assert dying.poll() is None, "the plan ended before it was seen holding the lock"
            assert time.monotonic() < deadline, "the plan never took the lock"
            time.sleep(0.1)
    finally:
        os.killpg(dying.pid, signal.SIGKILL)
        dying.wait()
    (lock,) = small_root.lock_items()
    lock_id = json.loads(lock["Info"]["S"])["ID"]

    with pytest.raises(StateLocked) as raised:
        small_root.terraform().plan(tmp_path / "blocked")
    assert raised.value.problem.startswith(
        "terraform plan failed (exit 1): Error: Error acquiring the state lock"
    )
    # the fix names the lock and the exact command; that command, as given, releases it
    command = raised.value.fix.split("`")[1]
    unlock = ["mirror-rollout", "force-unlock", lock_id, "--env", "staging"]
    assert command == shlex.join([*unlock, "--root", str(small_root.path)])
    assert small_root.lock_items() == [lock]

    done = mirror_rollout(sandbox, *shlex.split(command)[1:])
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"removed lock {lock_id} of the staging state" in done.stdout
    assert small_root.lock_items() == []


def test_inside_a_prefect_run_the_run_logger_gets_terraforms_lines(reviewed: Reviewed) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    run_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[reviewed.flow_run_id]))
    expected = "Plan: 0 to add, 1 to change, 0 to destroy."  # Terraform's own line
    deadline = time.monotonic() + 15
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        while True:
            messages = [log.message for log in client.read_logs(log_filter=run_filter)]
            if expected in messages or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert expected in messages
    assert any(m.startswith("$ terraform plan -input=false -no-color") for m in messages)
    # A resource's paragraph of the plan is one record, its first line the heading.
    marker = "  # aws_ssm_parameter.marker will be updated in-place\n"
    assert [m for m in messages if m.startswith(marker)], messages
    assert any(m.startswith("plan staging.tfplan (") for m in messages)
    # inside the run, the run's logger only (else Prefect's console would print each twice)
    assert reviewed.terraform_log_records == []


# -- a lock the command itself left behind ------------------------------------------------
LOCKED = (
    "Error: Error acquiring the state lock\n"
    "failed to lock s3 state: operation error DynamoDB: PutItem, https response error "
    "StatusCode: 400, ConditionalCheckFailedException: The conditional request failed\n"
    "Lock Info:\n  ID:        1f0c\n  Path:      b/env/staging/k\n  Operation: {op}\n"
    "  Who:       {who}\n  Version:   1.11.4\n  Created:   {created} +0000 UTC\n  Info:\n"
)


def test_own_lock_only_for_this_commands_operation_owner_and_time() -> None:
    from datetime import UTC, datetime

    from mirror_rollout.provisioners.terraform_locks import own_lock

    begun = datetime(2026, 11, 29, 10, 1, 57, tzinfo=UTC)
    mine = LOCKED.format(op="OperationTypePlan", who="me@here", created="2026-11-29 10:01:58.287")
    assert own_lock(mine, "plan", begun, "me@here") == "1f0c"
    assert own_lock(mine, "apply", begun, "me@here") is None  # another operation
    assert own_lock(mine, "plan", begun, "you@there") is None  # another owner
    older = mine.replace("10:01:58.287", "10:01:50.000")
    assert own_lock(older, "plan", begun, "me@here") is None  # held before we started
    assert own_lock(mine.replace("ConditionalCheckFailed", "x"), "plan", begun, "me@here") is None


def test_a_workspace_creation_blocked_by_its_own_lock_recovers(
    sandbox, small_root: Root, tmp_path: Path
) -> None:
    """The stale lock a retried lock write leaves is removed, and the workspace is created."""
    import json
    from datetime import UTC, datetime, timedelta

    import boto3

    from mirror_rollout.provisioners.terraform_locks import lock_owner

    terraform = small_root.terraform("staging")
    spec = small_root.backend
    path = f"{spec.bucket}/{spec.state_key('staging')}"
    # As Terraform writes it, dated just after the command starts (as the retried write was).
    created = (datetime.now(UTC) + timedelta(seconds=3)).isoformat().replace("+00:00", "Z")
    info = {"ID": "7e57-own-lock", "Operation": "init", "Info": "", "Who": lock_owner()}
    info |= {"Version": "1.11.4", "Created": created, "Path": path}
    table = boto3.client("dynamodb", region_name=spec.region)
    table.put_item(
        TableName=spec.lock_table,
        Item={"LockID": {"S": path}, "Info": {"S": json.dumps(info)}},
    )
    planned = terraform.plan(tmp_path / "out")
    assert planned.summary.has_changes
    assert small_root.lock_items() == []
    assert small_root.serial("staging") is not None


def test_later_steps_of_a_run_use_the_copy_its_plan_made(sandbox, infra, tmp_path: Path) -> None:
    """An edit of infra/ during a run changes neither what the re-plan checks nor a copy in use."""
    from mirror_rollout.provisioners import make_provisioner
    from mirror_rollout.settings import RolloutSettings

    settings = RolloutSettings(environment="staging", backend="sandbox", root=infra.root)
    work = tmp_path / "run" / "terraform"
    make_provisioner(settings, work, first_step=True)._working_copy()
    applied = (work / "variables.tf").read_text()
    infra.edit("terraform/variables.tf", "default     = 10", "default     = 20")

    make_provisioner(settings, work)._working_copy()  # apply, re-plan, orphan scan
    assert (work / "variables.tf").read_text() == applied
    make_provisioner(settings, work, first_step=True)._working_copy()  # the next run's plan
    assert "default     = 20" in (work / "variables.tf").read_text()


def test_terraform_collects_garbage_less_often_unless_told(
    tmp_path: Path, small_root: Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terraform and its providers get GOGC=400 (less GC CPU per process); a set GOGC wins."""
    monkeypatch.delenv("GOGC", raising=False)
    terraform = TerraformCli("staging", root=small_root.path, work_dir=tmp_path / "work")
    assert terraform.env()["GOGC"] == TERRAFORM_GOGC == "400"
    monkeypatch.setenv("GOGC", "150")
    assert terraform.env()["GOGC"] == "150"
