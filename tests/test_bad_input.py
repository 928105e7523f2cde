"""Bad input, table-driven: one clear message, a non-zero exit, and nothing changed.

Every CLI option and flow parameter a person types gets a malformed value here.
"Nothing changed" is measured: the sandbox's AWS inventory, the nonce versions and
the environment's Terraform state are read before and after each case.
"""

from __future__ import annotations

import secrets
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import prefect.main  # noqa: F401 - Prefect's log handlers bind to the real stderr, not capsys's
import pytest

from tests.applied import state_addresses
from tests.aws_inventory import client, inventory
from tests.infra_copy import InfraCopy

NONCE_V1 = "/guardian/staging/redaction_nonce_v1"


def world() -> dict:
    """What a bad input must not change."""
    ssm = client("ssm")
    versions = {
        p["Name"]: p["Version"]
        for p in ssm.describe_parameters()["Parameters"]
        if p["Name"].startswith("/guardian/")
    }
    return {
        "inventory": inventory(),
        "nonce": versions,
        # What state tracks (a plan may create the empty workspace: that applies nothing).
        "state": sorted(state_addresses("staging")),
    }


@pytest.fixture(scope="module")
def broken_roots(tmp_path_factory) -> dict[str, Path]:
    """Copies of infra/ with one malformed input each."""
    roots = {}
    base = tmp_path_factory.mktemp("bad-infra")
    roots["tfvars"] = base / "tfvars"
    InfraCopy(roots["tfvars"]).append("terraform/staging.tfvars", 'region = "us-east-1\n')
    roots["region"] = base / "region"
    InfraCopy(roots["region"]).edit(
        "terraform/staging.tfvars", 'region                    = "us-east-1"', 'region = "us-est-1"'
    )
    roots["empty"] = base / "empty"
    roots["empty"].mkdir()
    return roots


@pytest.fixture
def nonce_v1(clean_aws):
    """A staging nonce v1 (a random value, as the bootstrap writes it)."""
    client("ssm").put_parameter(
        Name=NONCE_V1, Value=secrets.token_hex(32), Type="SecureString", Overwrite=True
    )


# -- the CLI ----------------------------------------------------------------------
@dataclass
class CliCase:
    id: str
    argv: list[str] | Callable[[dict[str, Path]], list[str]]
    expect: str  # in the one error line
    env: dict[str, str] = field(default_factory=dict)


CLI_CASES = [
    CliCase("guardrails-unknown-env", ["guardrails", "--env", "qa"], "'qa'"),
    CliCase(
        "guardrails-root-without-infra",
        lambda r: ["guardrails", "--root", str(r["empty"])],
        "infra/terraform does not exist",
    ),
    CliCase(
        "guardrails-malformed-tfvars",
        lambda r: ["guardrails", "--root", str(r["tfvars"])],
        "staging.tfvars:",
    ),
    CliCase(
        "guardrails-region-typo",
        lambda r: ["guardrails", "--root", str(r["region"])],
        "us-est-1",
    ),
    CliCase("rehearse-unknown-env", ["rehearse", "--env", "qa"], "'qa'"),
    CliCase("rehearse-unknown-backend", ["rehearse", "--backend", "gcp"], "unknown backend 'gcp'"),
    CliCase(
        "rehearse-auto-approve-on-aws",
        ["rehearse", "--backend", "aws", "--auto-approve"],
        "--auto-approve is refused",
    ),
    CliCase(
        "rehearse-approval-timeout-zero",
        ["rehearse", "--approval-timeout", "0"],
        "invalid approval_timeout_seconds 0",
    ),
    CliCase(
        "rehearse-busy-wait-negative",
        ["rehearse", "--busy-wait", "-1"],
        "invalid busy_wait_seconds -1",
    ),
    CliCase(
        "approve-malformed-run-id",
        ["approve", "not-a-run", "--reviewer", "alice"],
        "not-a-run",
    ),
    CliCase(
        "approve-unknown-run",
        ["approve", "00000000-0000-4000-8000-000000000000", "--reviewer", "alice"],
        "no flow run 00000000-0000-4000-8000-000000000000",
    ),
    CliCase(
        "approve-prefect-unreachable",
        ["approve", "00000000-0000-4000-8000-000000000000", "--reviewer", "alice"],
        "cannot reach the Prefect API at http://127.0.0.1:9/api",
        env={"PREFECT_API_URL": "http://127.0.0.1:9/api"},
    ),
    CliCase("force-unlock-unknown-env", ["force-unlock", "x", "--env", "qa"], "'qa'"),
    CliCase(
        "force-unlock-aws-unreachable",
        ["force-unlock", "x"],
        "cannot reach the AWS endpoint",
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
    ),
    CliCase(
        "force-unlock-no-such-lock",
        ["force-unlock", "no-such-lock"],
        "no-such-lock",
    ),
    CliCase(
        "sandbox-port-out-of-range",
        ["sandbox", "up", "--moto-port", "70000"],
        "70000",
    ),
    CliCase("run-unknown-deployment", ["run", "no-such/deployment"], "no-such/deployment"),
    CliCase(
        "run-malformed-param",
        ["run", "infra-rollout/staging-rollout", "--param", "environment"],
        "environment",
    ),
    CliCase("github-secrets-unknown-env", ["github-secrets", "--env", "qa"], "'qa'"),
]


def run_cli(argv: list[str], env: dict[str, str], monkeypatch, capsys) -> tuple[int, str, str]:
    """`mirror-rollout ARGV` through its real entry point, in this process (no import cost)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from console.main import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["mirror-rollout", *argv])
    api = {PREFECT_API_URL: env["PREFECT_API_URL"]} if "PREFECT_API_URL" in env else {}
    with temporary_settings(updates=api), pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return exited.value.code, out.out, out.err


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_rejects_bad_input_with_one_line_and_changes_nothing(
    case: CliCase, prefect_api, nonce_v1, broken_roots, monkeypatch, capsys
):
    argv = case.argv(broken_roots) if callable(case.argv) else case.argv
    before = world()
    code, stdout, stderr = run_cli(argv, case.env, monkeypatch, capsys)
    output = stdout + stderr
    assert code not in (0, None), output
    assert "Traceback" not in output, output
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert case.expect in errors[0], output
    assert " — " in errors[0], f"the message names no fix: {errors[0]}"
    monkeypatch.undo()  # world() reads the sandbox, not the case's unreachable endpoint
    assert world() == before


# -- flow parameters --------------------------------------------------------------
@dataclass
class FlowCase:
    id: str
    flow: str  # flows.<module>:<function>
    params: dict | Callable[[dict[str, Path]], dict]
    expect: str


def rotation_case(name: str, expect: str, **params) -> FlowCase:
    """A bad parameter of nonce-rotation on staging."""
    return FlowCase(
        f"rotation-{name}",
        "nonce_rotation:nonce_rotation",
        {"environment": "staging", **params},
        expect,
    )


FLOW_CASES = [
    FlowCase("rollout-unknown-env", "rollout:infra_rollout", {"environment": "qa"}, "'qa'"),
    FlowCase("rollout-unknown-backend", "rollout:infra_rollout", {"backend": "gcp"}, "'gcp'"),
    FlowCase(
        "rollout-approval-timeout-negative",
        "rollout:infra_rollout",
        {"approval_timeout_seconds": -5},
        "invalid approval_timeout_seconds -5",
    ),
    FlowCase(
        "rollout-busy-wait-negative",
        "rollout:infra_rollout",
        {"busy_wait_seconds": -1},
        "invalid busy_wait_seconds -1",
    ),
    FlowCase(
        "rollout-root-without-infra",
        "rollout:infra_rollout",
        lambda r: {"root": str(r["empty"])},
        "has no infra/terraform",
    ),
    FlowCase(
        "rollout-malformed-tfvars",
        "rollout:infra_rollout",
        lambda r: {"root": str(r["tfvars"])},
        "staging.tfvars:",
    ),
    FlowCase(
        "rollout-region-typo",
        "rollout:infra_rollout",
        lambda r: {"root": str(r["region"])},
        "us-est-1",
    ),
    FlowCase(
        "rollout-unknown-e2e-driver",
        "rollout:infra_rollout",
        {"e2e_driver": "pigeon"},
        "'pigeon'",
    ),
    FlowCase(
        "rotation-unknown-env", "nonce_rotation:nonce_rotation", {"environment": "qa"}, "'qa'"
    ),
    rotation_case("region-typo", "unknown AWS region 'us-est-1'", region="us-est-1"),
    rotation_case("from-version-zero", "from_version must be 1 or more, got 0", from_version=0),
    rotation_case(
        "from-version-negative", "from_version must be 1 or more, got -1", from_version=-1
    ),
    rotation_case("from-version-missing", "v7", from_version=7),
    rotation_case("grace-negative", "grace", grace_seconds=-60),
    FlowCase(
        "cleanup-version-zero",
        "nonce_rotation:nonce_grace_cleanup",
        {
            "environment": "staging",
            "region": "us-east-1",
            "old_version": 0,
            "rotation_id": str(uuid.uuid4()),
        },
        "old_version must be 1 or more, got 0",
    ),
    FlowCase("drift-unknown-env", "drift:drift_detection", {"environment": "qa"}, "'qa'"),
]


def flow_named(spec: str):
    import importlib

    module, name = spec.split(":")
    return getattr(importlib.import_module(f"flows.{module}"), name)


@pytest.mark.parametrize("case", FLOW_CASES, ids=[c.id for c in FLOW_CASES])
def test_flow_rejects_bad_parameters_and_changes_nothing(
    case: FlowCase, prefect_api, nonce_v1, broken_roots, tmp_path
):
    params = case.params(broken_roots) if callable(case.params) else dict(case.params)
    if case.flow.startswith("rollout"):
        params = {"approval_timeout_seconds": 5, **params, "out_dir": str(tmp_path / "out")}
    before = world()
    state = flow_named(case.flow)(return_state=True, **params)
    assert state.is_failed(), state
    message = state.message or ""
    assert case.expect in message, message
    assert "Traceback" not in message
    assert world() == before


# -- the approval form -----------------------------------------------------------
def test_approval_with_an_empty_reviewer_is_refused_and_nothing_is_applied(rollout):
    from uuid import UUID

    from prefect.flow_runs import resume_flow_run

    from mirror_rollout.errors import ConfigError
    from tasks.approval.client import pending_approval, send_approval

    refusals: list[str] = []
    raw_submission: list[str] = []

    def answer(run_id: str, _key: str) -> None:
        for reviewer in ("", "   "):  # what `mirror-rollout approve --reviewer ""` sends
            with pytest.raises(ConfigError) as refused:
                send_approval(run_id, reviewer)
            refusals.append(str(refused.value))
        # Blanks posted straight to the API pass the form's schema (minLength 1); the run's
        # own check must refuse them.
        form = {
            "approve": True,
            "reviewer": "   ",
            "comment": "",
            "plan_sha256": pending_approval(run_id).plan_sha256,
            "allow_destroy": False,
        }
        try:
            resume_flow_run(UUID(run_id), run_input=form)
            raw_submission.append("accepted by the API")
        except Exception as exc:
            raw_submission.append(f"refused by the API: {exc}")

    before = world()
    run = rollout(answer, approval_timeout_seconds=10)

    assert not run.answer_errors, run.answer_errors
    assert len(refusals) == 2
    assert all("invalid approval: reviewer" in r and " — " in r for r in refusals), refusals
    assert raw_submission == ["accepted by the API"], raw_submission
    assert run.state.is_failed()
    assert "the approval names no reviewer" in (run.state.message or ""), run.state.message
    assert world() == before
