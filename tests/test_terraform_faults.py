"""Faults, now with Terraform: a ``kill -9`` mid-apply, and a create whose response is lost.

The pure orphan checks run on data first. Then the real Terraform and provider
run on the sandbox through a FaultProxy (tests/test_faults.py): AWS_ENDPOINT_URL
points at the proxy, so ``terraform_for`` writes the override with the proxy's
endpoint and every provider and backend request passes through it.

- kill -9: with KMS CreateKey and every IAM call held by the proxy, the apply can
  finish only the S3 resources; once it has, ``terraform apply`` and its provider are
  SIGKILLed. The lock stays: a new plan names it; ``mirror-rollout force-unlock``
  removes it; the re-run is then converged, or refused before review naming each
  resource in AWS that state does not track with its ``mirror-rollout adopt``
  command, which adopt it so that plan + apply converge.
- lost response: the proxy forwards one DynamoDB CreateTable to moto and drops the
  answer; the provider retries into ResourceInUseException and apply fails naming
  the table. The orphan scan lists it (a FAIL with its adopt command, on the
  checklist too), the re-run's plan is refused with the same command, and after
  ``mirror-rollout adopt`` plan + apply converge.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.provisioners import terraform_for
from mirror_rollout.provisioners.base import ApplyInterrupted, StateLocked
from mirror_rollout.provisioners.state_backend import BackendSpec
from mirror_rollout.provisioners.terraform_output import (
    applied_addresses,
    failed_addresses,
    first_error_line,
    in_flight_addresses,
)
from mirror_rollout.provisioners.terraform_run import LOG
from mirror_rollout.results import Status
from mirror_rollout.settings import parse_settings
from tasks.checklist.render import render
from tasks.orphans.checks import (
    LiveResource,
    Orphan,
    adoption_needed,
    blocking_orphans,
    find_orphans,
    orphan_results,
    planned_creates,
)
from tasks.orphans.task import AdoptionNeeded, orphan_scan, scan
from tasks.plan.task import plan, working_copy
from tests.applied import state_document, state_serial
from tests.conftest import reset_moto
from tests.fault_proxy import FaultProxy
from tests.support.targets import sandbox_target

ENV = "staging"
REGION = "us-east-1"
PREFIX = f"mirror-dissonance-{ENV}-"
TEMPLATE = (PROJECT_ROOT / "docs/ops/PRODUCTION_DEPLOYMENT_CHECKLIST.md").read_text()
ADOPT = re.compile(r"mirror-rollout adopt --env staging [^;]+")
# ``.fn`` calls publish their artifact outside a run, which Prefect 3 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")


# -- the pure checks, on data ------------------------------------------------------------------
def managed(rtype: str, label: str, **attributes: str) -> dict[str, Any]:
    return {
        "mode": "managed",
        "type": rtype,
        "name": label,
        "instances": [{"attributes": attributes}],
    }


def planned(rtype: str, label: str, **values: Any) -> dict[str, Any]:
    return {"address": f"{rtype}.{label}", "mode": "managed", "type": rtype, "values": values}


def change(address: str, *actions: str) -> dict[str, Any]:
    return {"address": address, "change": {"actions": list(actions)}}


TOPIC_ARN = f"arn:aws:sns:us-east-1:123456789012:{PREFIX}ops-alerts"
TRAIL_ARN = f"arn:aws:cloudtrail:us-east-1:123456789012:trail/{PREFIX}audit"
OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
STATE = {
    "version": 4,
    "serial": 7,
    "lineage": "l",
    "resources": [
        managed(
            "aws_dynamodb_table", "fp_events", id=f"{PREFIX}fp-events", name=f"{PREFIX}fp-events"
        ),
        managed(
            "aws_sns_topic", "ops_alerts", id=TOPIC_ARN, arn=TOPIC_ARN, name=f"{PREFIX}ops-alerts"
        ),
        # A data source with the name of an orphan tracks nothing.
        {**managed("aws_s3_bucket", "x", id=f"{PREFIX}baselines"), "mode": "data"},
    ],
}
PLAN = {
    "planned_values": {
        "root_module": {
            "resources": [
                planned(
                    "aws_dynamodb_table",
                    "fp_events",
                    name=f"{PREFIX}fp-events",
                    id=f"{PREFIX}fp-events",
                ),
                planned("aws_dynamodb_table", "consent", name=f"{PREFIX}consent"),
                planned("aws_sns_topic", "ops_alerts", name=f"{PREFIX}ops-alerts"),
                planned("aws_s3_bucket", "baselines", bucket=f"{PREFIX}baselines"),
                planned("aws_cloudtrail", "audit", name=f"{PREFIX}audit"),
                planned("aws_backup_plan", "main", name=f"{PREFIX}backup-plan"),
                # No name: a live one of these types can only be the one planned.
                planned("aws_kms_key", "main", description="CMK"),
                planned("aws_iam_openid_connect_provider", "github", url="https://x"),
                # Two unnamed of a type: a live one cannot be told apart.
                planned("aws_iam_role_policy_attachment", "a", role="r"),
                planned("aws_iam_role_policy_attachment", "b", role="r"),
            ],
            "child_modules": [
                {
                    "resources": [
                        {
                            **planned("aws_cloudwatch_metric_alarm", "t", alarm_name=f"{PREFIX}t"),
                            "address": 'module.m.aws_cloudwatch_metric_alarm.t["k"]',
                        }
                    ]
                }
            ],
        }
    },
    "resource_changes": [
        change(f"aws_dynamodb_table.{n}", "create") for n in ("consent", "fp_events")
    ]
    + [
        change("aws_s3_bucket.baselines", "create"),
        change("aws_cloudtrail.audit", "create"),
        change("aws_backup_plan.main", "create"),
        change("aws_kms_key.main", "create"),
        change("aws_iam_openid_connect_provider.github", "create"),
        change('module.m.aws_cloudwatch_metric_alarm.t["k"]', "create"),
        change("aws_sns_topic.ops_alerts", "no-op"),
        change("aws_iam_role_policy_attachment.a", "delete", "create"),
    ],
}
LIVE = [
    LiveResource("aws_dynamodb_table", f"{PREFIX}fp-events"),  # tracked
    LiveResource("aws_sns_topic", TOPIC_ARN, f"{PREFIX}ops-alerts"),  # tracked
    LiveResource("aws_dynamodb_table", f"{PREFIX}consent"),
    LiveResource("aws_s3_bucket", f"{PREFIX}baselines"),
    LiveResource("aws_cloudtrail", TRAIL_ARN, f"{PREFIX}audit"),
    LiveResource("aws_backup_plan", "0d98-plan-id", f"{PREFIX}backup-plan"),
    LiveResource("aws_kms_key", "b038-key-id"),
    LiveResource(
        "aws_iam_openid_connect_provider", OIDC_ARN, "token.actions.githubusercontent.com"
    ),
    LiveResource("aws_iam_role_policy_attachment", "r-123"),
    LiveResource("aws_cloudwatch_metric_alarm", f"{PREFIX}t"),
    LiveResource("aws_dynamodb_table", f"{PREFIX}old"),  # not in the configuration
]


def test_find_orphans_names_each_untracked_resource_with_the_address_that_adopts_it():
    orphans = find_orphans(LIVE, STATE, PLAN)
    assert [(o.live.id, o.address) for o in orphans] == [
        (f"{PREFIX}consent", "aws_dynamodb_table.consent"),
        (f"{PREFIX}baselines", "aws_s3_bucket.baselines"),
        (TRAIL_ARN, "aws_cloudtrail.audit"),  # ARN id, matched by its name
        ("0d98-plan-id", "aws_backup_plan.main"),  # generated id, matched by its name
        ("b038-key-id", "aws_kms_key.main"),  # the only CMK planned
        (OIDC_ARN, "aws_iam_openid_connect_provider.github"),
        ("r-123", None),  # two planned: which one is unknown
        (f"{PREFIX}t", 'module.m.aws_cloudwatch_metric_alarm.t["k"]'),
        (f"{PREFIX}old", None),
    ]
    # Without a plan: the same orphans, no address known.
    assert [o.address for o in find_orphans(LIVE, STATE)] == [None] * 9
    assert find_orphans(LIVE[:2], STATE, PLAN) == []
    assert find_orphans([], {}, None) == []


def test_adopt_commands_are_shell_quoted_and_name_the_environment():
    alarm = Orphan(LiveResource("aws_cloudwatch_metric_alarm", f"{PREFIX}t"), 'a.t["k"]')
    assert alarm.adopt_command(ENV) == (
        f"mirror-rollout adopt --env staging 'a.t[\"k\"]' {PREFIX}t"
    )
    assert shlex.split(alarm.adopt_command(ENV))[-2:] == ['a.t["k"]', f"{PREFIX}t"]
    unknown = Orphan(LiveResource("aws_s3_bucket", "b"), None)
    assert unknown.adopt_command("production") == (
        "mirror-rollout adopt --env production 'aws_s3_bucket.<name>' b"
    )


def test_a_plan_creating_an_orphan_is_refused_with_one_adopt_command_per_resource():
    orphans = find_orphans(LIVE, STATE, PLAN)
    assert planned_creates(PLAN) >= {"aws_dynamodb_table.consent", "aws_kms_key.main"}
    assert "aws_iam_role_policy_attachment.a" not in planned_creates(PLAN)  # a replace
    blocking = blocking_orphans(orphans, PLAN)
    assert [o.address for o in blocking] == [
        "aws_dynamodb_table.consent",
        "aws_s3_bucket.baselines",
        "aws_cloudtrail.audit",
        "aws_backup_plan.main",
        "aws_kms_key.main",
        "aws_iam_openid_connect_provider.github",
        'module.m.aws_cloudwatch_metric_alarm.t["k"]',
    ]
    problem, fix = adoption_needed(ENV, blocking[:2])
    assert problem == (
        "the plan creates what already exists in AWS but not in the staging state (an apply "
        f"was killed, or lost a create's response): aws_dynamodb_table.consent ({PREFIX}consent); "
        f"aws_s3_bucket.baselines ({PREFIX}baselines)"
    )
    assert ADOPT.findall(fix) == [
        f"mirror-rollout adopt --env staging aws_dynamodb_table.consent {PREFIX}consent",
        f"mirror-rollout adopt --env staging aws_s3_bucket.baselines {PREFIX}baselines",
    ]
    assert blocking_orphans(orphans, {"resource_changes": []}) == []


def test_orphan_results_pass_when_all_is_tracked_and_fail_once_per_orphan():
    source = "AWS (us-east-1) vs the staging state"
    [passed] = orphan_results(ENV, LIVE[:2], [], source)
    assert (passed.check_id, passed.status, passed.subject) == (
        "ORPHAN-001",
        Status.PASS,
        "2 resources",
    )
    assert passed.evidence[0].source == source
    orphans = find_orphans(LIVE, STATE, PLAN)[:2]
    failed = orphan_results(ENV, LIVE, orphans, source)
    assert [(r.status, r.subject) for r in failed] == [
        (Status.FAIL, f"aws_dynamodb_table {PREFIX}consent"),
        (Status.FAIL, f"aws_s3_bucket {PREFIX}baselines"),
    ]
    assert all(r.blocking for r in failed)
    assert failed[0].message == (
        f"aws_dynamodb_table {PREFIX}consent exists in AWS but not in the staging state; adopt "
        f"it: mirror-rollout adopt --env staging aws_dynamodb_table.consent {PREFIX}consent"
    )
    assert failed[0].evidence[0].observed["orphans"] == 2
    markdown, lines = render(TEMPLATE, failed, {"environment": ENV})
    [line] = [line for line in lines if line.selectors == ["ORPHAN-"]]
    assert line.status is Status.FAIL and "mirror-rollout adopt" in line.detail
    assert markdown.startswith(
        "# Production deployment checklist — Phase Mirror infrastructure\n\n"
        "**Verdict: FAIL — do not promote to production**"
    )


# -- Terraform's output, as the provisioner reads it -----------------------------------------
APPLY_STDOUT = """\
aws_s3_bucket.audit_logs: Creating...
aws_kms_key.main: Creating...
aws_s3_bucket.audit_logs: Creation complete after 1s [id=mirror-dissonance-staging-audit-logs]
aws_iam_role.backup: Creating...
aws_cloudwatch_metric_alarm.t["a: b"]: Creating...
aws_cloudwatch_metric_alarm.t["a: b"]: Creation complete after 0s [id=x]
aws_dynamodb_table.consent: Destroying... [id=mirror-dissonance-staging-consent]
aws_dynamodb_table.consent: Destruction complete after 2s
aws_dynamodb_table.consent: Creating...
aws_dynamodb_table.consent: Creation complete after 1m3s [id=mirror-dissonance-staging-consent]
aws_kms_key.main: Still creating... [10s elapsed]
"""
APPLY_STDERR = """\
\u2577
\u2502 Error: creating AWS DynamoDB Table (mirror-dissonance-staging-consent): operation error \
DynamoDB: CreateTable, https response error StatusCode: 400, ResourceInUseException: Table \
already exists: mirror-dissonance-staging-consent
\u2502
\u2502   with aws_dynamodb_table.consent,
\u2502   on main.tf line 204, in resource "aws_dynamodb_table" "consent":
\u2502  204: resource "aws_dynamodb_table" "consent" {
\u2502
\u2575
"""


def test_apply_progress_and_errors_are_read_per_address():
    assert applied_addresses(APPLY_STDOUT) == [
        "aws_s3_bucket.audit_logs",
        'aws_cloudwatch_metric_alarm.t["a: b"]',
        "aws_dynamodb_table.consent",  # a replace is one change
    ]
    assert in_flight_addresses(APPLY_STDOUT) == ["aws_kms_key.main", "aws_iam_role.backup"]
    assert failed_addresses(APPLY_STDERR) == ["aws_dynamodb_table.consent"]
    assert first_error_line(APPLY_STDERR).startswith(
        "Error: creating AWS DynamoDB Table (mirror-dissonance-staging-consent)"
    )
    # Progress is no error: without an ``Error:`` line, apply's stdout names none.
    assert first_error_line(APPLY_STDOUT, fallback=False) is None
    assert first_error_line(APPLY_STDOUT) == "aws_s3_bucket.audit_logs: Creating..."


# -- the sandbox, through the fault proxy ------------------------------------------------------
@pytest.fixture(scope="module")
def proxy(sandbox):
    with FaultProxy(sandbox.exports["AWS_ENDPOINT_URL"]) as running:
        yield running


@pytest.fixture
def through_proxy(proxy, prefect_api, monkeypatch):
    """AWS_ENDPOINT_URL at the proxy (so the override is too), no rule left afterwards."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    yield proxy
    proxy.clear()


#: The project resources the orphan scan sees in an applied staging, per type.
LIVE_WHEN_APPLIED = {
    "aws_backup_plan": 1,
    "aws_backup_vault": 1,
    "aws_cloudtrail": 1,
    "aws_cloudwatch_dashboard": 1,
    "aws_cloudwatch_metric_alarm": 8,
    "aws_dynamodb_table": 3,
    "aws_iam_openid_connect_provider": 1,
    "aws_iam_role": 2,
    "aws_kms_alias": 1,
    "aws_kms_key": 1,
    "aws_s3_bucket": 2,
    "aws_sns_topic": 1,
}
#: Serial of the staging state a test left converged (re-plan empty), for the next to reuse.
CONVERGED: dict[str, int | None] = {"serial": None}


def moto(service: str, sandbox) -> Any:
    """A boto3 client straight at moto (past the proxy)."""
    return boto3.client(
        service, region_name=REGION, endpoint_url=sandbox.exports["AWS_ENDPOINT_URL"]
    )


def mirror_rollout(sandbox, *args: str) -> subprocess.CompletedProcess:
    """The `mirror-rollout` CLI of this checkout, in its own process, finding the test sandbox
    as an operator's shell would (MIRROR_ROLLOUT_SANDBOX_DIR and the port variables)."""
    config = sandbox.config
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "MIRROR_ROLLOUT_SANDBOX_DIR": str(config.state_dir),
        "MIRROR_ROLLOUT_MOTO_PORT": str(config.moto_port),
        "MIRROR_ROLLOUT_GCS_PORT": str(config.gcs_port),
        "MIRROR_ROLLOUT_PREFECT_PORT": str(config.prefect_port),
        "COLUMNS": "400",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from console.main import main; main()", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mirror-rollout {shlex.join(args)}:\n{done.stdout}{done.stderr}"
    return done


def adopt_all(sandbox, fix: str) -> list[tuple[str, str]]:
    """Run each `mirror-rollout adopt` command of a refusal's fix, as printed; (address, id)s."""
    adopted = []
    for command in ADOPT.findall(fix):
        argv = shlex.split(command)
        assert argv[:4] == ["mirror-rollout", "adopt", "--env", ENV]
        done = mirror_rollout(sandbox, *argv[1:])
        assert f"adopted {argv[5]} as {argv[4]} in the staging state" in done.stdout
        adopted.append((argv[4], argv[5]))
    return adopted


def converge(settings, run_dir: Path) -> None:
    """Plan (not refused), apply it, and require the refreshing re-plan and the orphan scan empty."""
    planned = plan.fn(settings, run_dir)
    terraform = terraform_for(ENV, "sandbox", PROJECT_ROOT, working_copy(run_dir))
    terraform.apply(Path(planned.plan_file), planned.sha256)
    replanned = terraform.plan(run_dir / "replan", replan=True)
    assert replanned.exit_code == 0, [
        c.address for c in replanned.document.managed_changes() if c.action != "no-op"
    ]
    live, orphans = scan(sandbox_target(ENV, REGION), terraform.state_document())
    assert orphans == []
    # Everything the scan looks for is there (and tracked).
    assert Counter(r.type for r in live) == LIVE_WHEN_APPLIED
    CONVERGED["serial"] = state_serial(ENV)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Progress(logging.Handler):
    """Terraform's output lines as the provisioner logs them (outside a Prefect run)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def completed(self) -> list[str]:
        return applied_addresses("\n".join(self.lines))


def processes() -> dict[int, tuple[int, list[str], str]]:
    """pid -> (parent pid, argv, cwd) of every process this user can read in /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry.name)] = (ppid, [a for a in argv if a], cwd)
    return found


def terraform_apply_of(work_dir: Path) -> tuple[int, list[int]]:
    """The `terraform apply` running in ``work_dir`` (never another engineer's) and its children."""
    table = processes()
    [pid] = [
        pid
        for pid, (_, argv, cwd) in table.items()
        if argv
        and Path(argv[0]).name == "terraform"
        and argv[1:2] == ["apply"]
        and cwd == str(work_dir)
        and argv[-1].startswith(str(work_dir))
    ]
    return pid, [child for child, (ppid, _, _) in table.items() if ppid == pid]


def lock_ids() -> list[str]:
    """Ids of the locks held in the backend's lock table (the -md5 digest rows hold none)."""
    spec = BackendSpec()
    items = boto3.client("dynamodb", region_name=spec.region).scan(TableName=spec.lock_table)
    return [json.loads(i["Info"]["S"])["ID"] for i in items["Items"] if "Info" in i]


# -- kill -9 mid-apply --------------------------------------------------------------------------
#: What the apply can finish while KMS CreateKey and the IAM creates are held: the S3 resources.
S3_FIRST = {
    "aws_s3_bucket.audit_logs",
    "aws_s3_bucket.baselines",
    "aws_s3_bucket_public_access_block.audit_logs",
    "aws_s3_bucket_public_access_block.baselines",
    "aws_s3_bucket_policy.audit_logs",
    "aws_s3_bucket_versioning.audit_logs",
    "aws_s3_bucket_versioning.baselines",
}


# One scenario whose every step acts on what the one before left (a killed apply, its lock,
# the rerun) on one sandbox: split, no part would run alone.
def test_kill_9_mid_apply_then_force_unlock_and_the_rerun_converges_or_names_what_to_adopt(
    sandbox, through_proxy, tmp_path
):
    reset_moto()
    settings = parse_settings(environment=ENV, backend="sandbox")
    run_dir = tmp_path / "run"
    terraform = terraform_for(ENV, "sandbox", PROJECT_ROOT, working_copy(run_dir))
    first = terraform.plan(run_dir)
    assert first.summary.counts["create"] == 32
    killed = kill_9_once_the_s3_resources_exist(through_proxy, terraform, first)
    assert_the_interruption_says_what_to_do(killed)
    assert_the_lock_is_named_then_force_unlocked(sandbox, settings, run_dir)
    rerun_converges_or_names_what_to_adopt(sandbox, settings, run_dir)


def kill_9_once_the_s3_resources_exist(proxy, terraform, first) -> BaseException:
    """Apply ``first`` in a thread and kill -9 its terraform once only held creates remain;
    the error the apply ended with."""
    # Held, never forwarded: nothing that needs the CMK or an IAM create can finish, so the
    # moment of the kill is fixed by what the apply has done, not by a clock.
    held_key = proxy.inject("kms", "stall", None, operation="CreateKey", stall_seconds=300)
    held_iam = [
        proxy.inject("iam", "stall", None, operation=operation, stall_seconds=300)
        for operation in ("CreateRole", "CreateOpenIDConnectProvider")
    ]
    progress = Progress()
    LOG.addHandler(progress)
    level = LOG.level
    LOG.setLevel(logging.INFO)
    outcome: dict[str, BaseException] = {}

    def apply() -> None:
        try:
            terraform.apply(Path(first.plan_file), first.sha256)
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=apply, name="terraform-apply")
    worker.start()
    try:
        wait_for("the S3 resources", lambda: S3_FIRST <= set(progress.completed()))
        held = [held_key, *held_iam]
        wait_for("the creates held", lambda: all(r.injected for r in held), timeout=30)
        pid, children = terraform_apply_of(terraform.workdir)
        os.kill(pid, signal.SIGKILL)
        for child in children:  # the provider plugin
            os.kill(child, signal.SIGKILL)
        worker.join(60)
    finally:
        proxy.clear()  # the held requests are released: closed, never forwarded
        LOG.removeHandler(progress)
        LOG.setLevel(level)
    assert not worker.is_alive()
    assert [rule.injected for rule in held_iam] == [1, 1]  # aws_iam_role.backup, the provider
    assert set(progress.completed()) == S3_FIRST
    return outcome["error"]


def assert_the_interruption_says_what_to_do(killed: BaseException) -> None:
    """The provisioner says what happened and what to do next."""
    assert isinstance(killed, ApplyInterrupted)
    print(f"kill -9: {killed.line()}")
    assert killed.problem.startswith(
        "terraform apply was killed by SIGKILL after 7 change(s) completed, while "
    )
    in_flight = {
        "aws_kms_key.main",
        "aws_iam_role.backup",
        "aws_iam_openid_connect_provider.github",
    }
    assert killed.address in in_flight and all(a in killed.problem for a in in_flight)
    assert "neither writes its last changes to state nor releases the state lock" in killed.problem
    assert "mirror-rollout force-unlock LOCK_ID --env staging" in killed.fix
    assert killed.applied == 7


def assert_the_lock_is_named_then_force_unlocked(sandbox, settings, run_dir: Path) -> None:
    """The lock stays: the next plan is refused naming it, with the command that removes it."""
    [lock_id] = lock_ids()
    with pytest.raises(StateLocked) as locked:
        plan.fn(settings, run_dir)
    assert "Error acquiring the state lock" in locked.value.problem
    assert f"`mirror-rollout force-unlock {lock_id} --env staging`" in locked.value.fix
    unlocked = mirror_rollout(sandbox, "force-unlock", lock_id, "--env", ENV)
    assert f"removed lock {lock_id} of the staging state" in unlocked.stdout
    assert lock_ids() == []


def rerun_converges_or_names_what_to_adopt(sandbox, settings, run_dir: Path) -> None:
    # What exists in AWS now and what the state holds (the killed apply's last write, if any).
    state = state_document(ENV) or {}
    _, orphans = scan(sandbox_target(ENV, REGION), state)
    untracked = {(o.live.type, o.live.id) for o in orphans}
    try:
        plan.fn(settings, run_dir)
    except AdoptionNeeded as exc:
        refused = exc
    else:
        refused = None
    if refused is None:
        # Converged path: the state tracks everything the killed apply created (it wrote
        # its state before the kill), so the plan holds only the rest.
        print("kill -9 path: converged")
        assert untracked == set()
        converge(settings, run_dir)
        return
    # Adoption path: one message naming each resource in AWS but not in state.
    print(f"kill -9 path: adoption needed\n{refused.line()}")
    assert untracked == {
        ("aws_s3_bucket", f"{PREFIX}audit-logs"),
        ("aws_s3_bucket", f"{PREFIX}baselines"),
    }, "the kill was timed so that only the S3 resources exist"
    assert refused.problem == (
        "the plan creates what already exists in AWS but not in the staging state (an apply "
        f"was killed, or lost a create's response): aws_s3_bucket.audit_logs ({PREFIX}audit-logs); "
        f"aws_s3_bucket.baselines ({PREFIX}baselines)"
    )
    assert not list(run_dir.glob("*.review.md"))  # refused before any review
    adopted = adopt_all(sandbox, refused.fix)
    assert adopted == [
        ("aws_s3_bucket.audit_logs", f"{PREFIX}audit-logs"),
        ("aws_s3_bucket.baselines", f"{PREFIX}baselines"),
    ]
    converge(settings, run_dir)


# -- a create whose response is lost ------------------------------------------------------------
@pytest.fixture
def staging_converged(through_proxy, tmp_path):
    """Staging applied and converged: the state a previous test left, or applied afresh."""
    if CONVERGED["serial"] is None or state_serial(ENV) != CONVERGED["serial"]:
        reset_moto()
        converge(parse_settings(environment=ENV, backend="sandbox"), tmp_path / "base")
    return through_proxy


def test_a_lost_create_response_is_an_orphan_scan_fail_then_refused_until_adopted(
    sandbox, staging_converged, tmp_path
):
    proxy = staging_converged
    settings = parse_settings(environment=ENV, backend="sandbox")
    table = f"{PREFIX}consent"
    # Someone deleted the table: the next plan creates it again.
    moto("dynamodb", sandbox).delete_table(TableName=table)
    run_dir = tmp_path / "lost"
    planned = plan.fn(settings, run_dir)
    assert "aws_dynamodb_table.consent" in planned_creates(planned.document.model_dump(mode="json"))
    # CreateTable reaches moto (the table is created), its answer never reaches the provider.
    lost = proxy.inject("dynamodb", "drop", 1, operation="CreateTable")
    terraform = terraform_for(ENV, "sandbox", PROJECT_ROOT, working_copy(run_dir))
    with pytest.raises(ApplyInterrupted) as interrupted:
        terraform.apply(Path(planned.plan_file), planned.sha256)
    assert lost.injected == 1
    failure = interrupted.value
    assert failure.address == "aws_dynamodb_table.consent"
    assert failure.problem.startswith(
        f"terraform apply failed (exit 1): Error: creating AWS DynamoDB Table ({table}): "
    )
    assert "were applied and are in state before aws_dynamodb_table.consent failed" in (
        failure.problem
    )
    assert moto("dynamodb", sandbox).describe_table(TableName=table)["Table"]["TableName"] == table

    # The orphan scan after apply: exactly that table, a FAIL with its adopt command.
    adopt = f"mirror-rollout adopt --env staging aws_dynamodb_table.consent {table}"
    results = orphan_scan.fn(settings, run_dir)
    [result] = results
    assert (result.check_id, result.status, result.subject) == (
        "ORPHAN-001",
        Status.FAIL,
        f"aws_dynamodb_table {table}",
    )
    assert result.message.endswith(f"adopt it: {adopt}")
    # ... and so on the checklist.
    markdown, lines = render(TEMPLATE, results, {"environment": ENV})
    [line] = [line for line in lines if line.selectors == ["ORPHAN-"]]
    assert line.status is Status.FAIL
    assert (
        "- [ ] Every project resource in AWS is tracked by Terraform state (nothing left outside "
        "it by a killed apply or a lost create response) — FAIL: ORPHAN-001 "
        f"aws_dynamodb_table {table}: aws_dynamodb_table {table} exists in AWS but not in the "
        f"staging state; adopt it: {adopt}\n"
    ) in markdown
    assert "**Verdict: FAIL — do not promote to production**" in markdown

    # The re-run's plan is refused before review, naming it and the same command.
    with pytest.raises(AdoptionNeeded) as refused:
        plan.fn(settings, run_dir)
    assert refused.value.problem.endswith(f": aws_dynamodb_table.consent ({table})")
    assert ADOPT.findall(refused.value.fix) == [adopt]
    assert adopt_all(sandbox, refused.value.fix) == [("aws_dynamodb_table.consent", table)]
    converge(settings, run_dir)
