"""Approvals bound to registered keys, records that cannot be forged, a sandbox that cannot leak.

The rollouts run on the real sandbox (moto, Prefect) with a reviewer registry written
into a copy of the project (ROOT/deployments/reviewers.yaml); every refused attack is
checked in AWS (Terraform state and the production account), not only in the run state.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from mirror_rollout import PROJECT_ROOT
from mirror_rollout import markdown as md
from mirror_rollout import sandbox as sb
from mirror_rollout.errors import ConfigError
from mirror_rollout.reviewer_keys import encode_public_key, new_key, read_key, same_name, write_key
from mirror_rollout.sandbox import PORT_ENV
from tests.applied import state_addresses
from tests.conftest import free_ports
from tests.rollout_run import artifacts_of

HOSTILE_COMMENT = "ok |\n| 2 | security-officer | x | y | True | forged |"
CLI = [sys.executable, "-m", "console.main"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **(env or {})},
    )


# --------------------------------------------------------------------------- pure


@pytest.mark.parametrize(
    "hostile",
    [
        HOSTILE_COMMENT,
        "a\r\n|---|---|\r\n| 9 | x |",
        "`code` | <script>alert(1)</script> | <img src=x onerror=y>",
        "line\u2028| 3 | forged-by-line-separator |",
        "\\| escaped? \\\\| twice",
        "[click](javascript:alert(1)) ![img](http://x/y.png)",
    ],
)
def test_markdown_table_keeps_hostile_values_in_their_cell(hostile):
    lines = md.table(["#", "reviewer", "comment"], [[1, hostile, hostile], [2, "bob", "fine"]])
    text = "\n".join(lines)
    rows = md.table_rows(text)
    assert len(rows) == 2 and [len(r) for r in rows] == [3, 3]
    assert rows[1] == ["2", "bob", "fine"]
    assert "<script" not in text and "<img" not in text and "](" not in text.replace("\\]", "")
    heading = md.heading(2, hostile)
    assert "\n" not in heading and heading.startswith("## ")


def test_names_compare_after_nfkc_and_confusable_skeleton():
    cyrillic_a = "\u0430"
    for twin in ("ALICE", f"{cyrillic_a}lice", "a1ice", "aIice", "\uff41\uff4c\uff49\uff43\uff45"):
        assert same_name("alice", twin), twin
    for other in ("bob", "alicia", "sandbox-auto-2"):
        assert not same_name("alice", other)
    assert not same_name("sandbox-auto", "sandbox-auto-2")


def write_registry(root: Path, environments: dict) -> Path:
    path = root / "deployments" / "reviewers.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"environments": environments}, allow_unicode=True))
    return path


KEY = encode_public_key(b"\x01" * 32)
OTHER_KEY = encode_public_key(b"\x02" * 32)


@pytest.mark.parametrize(
    ("environments", "problem"),
    [
        (
            {"production": {"allow_unsigned": True}},
            "production never accepts unsigned approvals",
        ),
        (
            {"production": {"reviewers": [{"name": "alice", "public_key": "bm90LWEta2V5"}]}},
            "environments.production.reviewers.0.public_key: not an Ed25519 public key",
        ),
        (
            {
                "production": {
                    "reviewers": [
                        {"name": "alice", "public_key": KEY},
                        {"name": "\u0430lice", "public_key": OTHER_KEY},
                    ]
                }
            },
            "have names that look alike",
        ),
        (
            {
                "production": {
                    "reviewers": [
                        {"name": "alice", "public_key": KEY},
                        {"name": "bob", "public_key": KEY},
                    ]
                }
            },
            "share one public key",
        ),
        ({"staging": {"allow_unsigend": True}}, "staging.allow_unsigend: Extra inputs"),
    ],
)
def test_a_bad_registry_is_one_clear_error(tmp_path, environments, problem):
    from tasks.approval.reviewers import load_registry

    path = write_registry(tmp_path, environments)
    with pytest.raises(ConfigError) as raised:
        load_registry(tmp_path)
    assert problem in raised.value.problem and str(path) in raised.value.problem
    assert "reviewer new" in raised.value.fix


def test_registry_that_is_not_yaml_names_the_line(tmp_path):
    from tasks.approval.reviewers import load_registry

    (tmp_path / "deployments").mkdir()
    (tmp_path / "deployments" / "reviewers.yaml").write_text("environments:\n  staging: [\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML \(line \d+\)"):
        load_registry(tmp_path)


def test_the_project_registry_is_valid():
    from tasks.approval.reviewers import load_registry

    registry = load_registry(PROJECT_ROOT)
    assert registry.of("production").allow_unsigned is False
    assert registry.of("staging").allow_unsigned is True


def test_reviewer_new_writes_a_0600_key_outside_the_repo_and_prints_the_entry(tmp_path):
    from tasks.approval.reviewers import load_registry

    done = cli("reviewer", "new", "Alice Example", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    path = tmp_path / "mirror-rollout" / "keys" / "Alice-Example.key"
    assert (path.stat().st_mode & 0o777) == 0o600
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    key = read_key(path)
    secret = key.private_key.get_secret_value()
    assert secret not in done.stdout + done.stderr  # only the public half is printed
    # The printed entry is what the registry takes.
    root = tmp_path / "root"
    registry = root / "deployments" / "reviewers.yaml"
    registry.parent.mkdir(parents=True)
    registry.write_text("environments:\n  production:\n    reviewers:\n" + done.stdout)
    [entry] = load_registry(root).of("production").reviewers
    assert entry.name == "Alice Example" and entry.key == key.public_key

    inside = cli("reviewer", "new", "bob", "--out", str(PROJECT_ROOT / "bob.key"))
    assert inside.returncode == 2 and "inside the repository" in inside.stderr
    assert not (PROJECT_ROOT / "bob.key").exists()
    again = cli("reviewer", "new", "x", "--out", str(path))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert read_key(path).private_key.get_secret_value() == secret  # not overwritten


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "k.key"
    write_key(path, new_key("alice"))
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others") as raised:
        read_key(path)
    assert raised.value.fix == f"chmod 600 {path}"


# --------------------------------------------------------------------------- endpoints


@pytest.mark.parametrize(
    ("extra_env", "named"),
    [
        ({"AWS_ENDPOINT_URL_SSM": "http://127.0.0.9:1"}, "AWS_ENDPOINT_URL_SSM"),
        ({"AWS_PROFILE": "elsewhere"}, "AWS profile 'elsewhere' sets endpoint_url"),
        ({"AWS_DEFAULT_PROFILE": "svc"}, "AWS profile 'svc' sets services"),
        ({"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"),
    ],
)
def test_rehearse_refuses_a_leaking_endpoint_before_any_aws_call(tmp_path, extra_env, named):
    config = tmp_path / "aws-config"
    config.write_text(
        "[profile elsewhere]\nendpoint_url = http://203.0.113.5:4566\n"
        "[profile svc]\nservices = elsewhere-ssm\n"
        "[services elsewhere-ssm]\nssm =\n  endpoint_url = http://203.0.113.6\n"
    )
    state = tmp_path / "sandbox-state"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STORAGE_"))}
    done = subprocess.run(
        [*CLI, "rehearse", "--env", "staging", "--auto-approve"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        env={
            **clean,
            "PYTHONPATH": str(PROJECT_ROOT),
            "AWS_CONFIG_FILE": str(config),
            "MIRROR_ROLLOUT_SANDBOX_DIR": str(state),
            # Were the guard to let it through, a sandbox of its own would start, not the default.
            **dict(zip(PORT_ENV.values(), map(str, free_ports(len(PORT_ENV))), strict=True)),
            **extra_env,
        },
    )
    assert done.returncode != 0
    assert named in done.stderr and "the sandbox would reach beyond loopback" in done.stderr
    # Refused before the sandbox started: no server, no bootstrap call, no state dir.
    assert not state.exists()


def test_the_flow_refuses_a_service_endpoint_too(sandbox):
    """A worker's flow run checks the same before its first AWS call (parse_settings)."""
    from mirror_rollout.settings import check_endpoint_matches_backend

    check_endpoint_matches_backend("sandbox", dict(os.environ))  # the sandbox's own passes
    for name, value in (
        ("AWS_ENDPOINT_URL_SSM", "http://127.0.0.9:1"),
        ("STORAGE_EMULATOR_HOST", "http://203.0.113.7:9023"),
        ("STORAGE_EMULATOR_HOST", "203.0.113.7:9023"),
    ):
        with pytest.raises(ConfigError, match=name):
            check_endpoint_matches_backend("sandbox", {**os.environ, name: value})


def test_sandbox_exports_only_loopback(sandbox):
    from mirror_rollout.aws import LOOPBACK
    from mirror_rollout.settings import _host

    urls = {k: v for k, v in sandbox.exports.items() if "URL" in k or k.endswith("_HOST")}
    assert set(urls) >= {"AWS_ENDPOINT_URL", "STORAGE_EMULATOR_HOST", "PREFECT_API_URL"}
    assert all(_host(v) in LOOPBACK for v in urls.values()), urls


# --------------------------------------------------------------------------- rollouts


class Reviewers:
    """alice and bob registered for production (keys in tmp_path); mallory's key is foreign."""

    def __init__(self, tmp_path: Path, root: Path):
        keys = tmp_path / "keys"
        self.paths = {}
        for name in ("alice", "bob", "mallory"):
            self.paths[name] = keys / f"{name}.key"
            write_key(self.paths[name], new_key(name))
        self.keys = {name: read_key(path) for name, path in self.paths.items()}
        write_registry(
            root,
            {
                "staging": {"allow_unsigned": True, "reviewers": []},
                "production": {
                    "allow_unsigned": False,
                    "reviewers": [
                        {"name": n, "public_key": encode_public_key(self.keys[n].public_key)}
                        for n in ("alice", "bob")
                    ],
                },
            },
        )

    def secrets(self) -> list[str]:
        return [k.private_key.get_secret_value() for k in self.keys.values()]


@pytest.fixture
def reviewers(tmp_path, infra) -> Reviewers:
    return Reviewers(tmp_path, infra.root)


def production_inventory() -> dict[str, list[str]]:
    """What exists in the production (moto) account."""
    from mirror_rollout.aws import AwsClients

    aws = AwsClients(environment="production")
    return {
        "tables": [
            t for t in aws.client("dynamodb").list_tables()["TableNames"] if "production" in t
        ],
        "alarms": [
            a["AlarmName"] for a in aws.client("cloudwatch").describe_alarms()["MetricAlarms"]
        ],
        "parameters": [p["Name"] for p in aws.client("ssm").describe_parameters()["Parameters"]],
        "topics": [t["TopicArn"] for t in aws.client("sns").list_topics()["Topics"]],
    }


def nothing_applied_to_production() -> None:
    assert state_addresses("production") == set()
    assert production_inventory() == {"tables": [], "alarms": [], "parameters": [], "topics": []}


def signed(key, **kwargs):
    from tasks.approval.client import send_approval

    return lambda run_id, _stage: send_approval(run_id, key=key, **kwargs)


def unsigned(name: str):
    from tasks.approval.client import send_approval

    return lambda run_id, _stage: send_approval(run_id, name)


def by_stage(first, second):
    return lambda run_id, stage: (first if stage == "approval-1" else second)(run_id, stage)


def forged_signature(key, *, run_id: str | None = None, sha: str | None = None):
    """Sign what the attacker chose (another run or another plan), send it for this run."""
    from mirror_rollout.reviewer_keys import approval_message
    from tasks.approval.client import pending_approval, send_approval

    def answer(real_run_id: str, stage: str) -> None:
        pending = pending_approval(real_run_id)
        message = approval_message(
            run_id or real_run_id, stage, sha or pending.plan_sha256, True, False
        )
        send_approval(real_run_id, "alice", signature=key.sign(message))

    return answer


def cli_approve(*args: str):
    """`mirror-rollout approve` as a reviewer types it; its exit code and output are kept."""
    outcomes: list[subprocess.CompletedProcess] = []

    def answer(run_id: str, _stage: str) -> None:
        outcomes.append(cli("approve", run_id, *args))

    answer.outcomes = outcomes  # type: ignore[attr-defined]
    return answer


ATTACKS = {
    "same key twice": (
        lambda r: signed(r.keys["alice"]),
        ["approval-1", "approval-2"],
        "already approved this plan (as alice)",
    ),
    "confusable second name, same key": (
        lambda r: by_stage(signed(r.keys["alice"]), signed(r.keys["alice"], reviewer="\u0430lice")),
        ["approval-1", "approval-2"],
        "already approved this plan (as alice)",
    ),
    "confusable second name, unsigned": (
        lambda r: by_stage(
            signed(r.keys["alice"]),
            unsigned("\u0430lice"),
        ),
        ["approval-1", "approval-2"],
        "is a registered reviewer (as alice), but the approval is not signed",
    ),
    "signature for another plan sha": (
        lambda r: forged_signature(r.keys["alice"], sha="ab" * 32),
        ["approval-1"],
        "the signature does not verify against alice's registered key",
    ),
    "signature for another run": (
        lambda r: forged_signature(r.keys["alice"], run_id=str(uuid.uuid4())),
        ["approval-1"],
        "the signature does not verify against alice's registered key",
    ),
    "registered name with a foreign key": (
        lambda r: signed(r.keys["mallory"], reviewer="alice"),
        ["approval-1"],
        "the signature does not verify against alice's registered key",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_production_attack_applies_nothing(rollout, infra, reviewers, attack):
    make_answer, pauses, refusal = ATTACKS[attack]
    run = rollout(make_answer(reviewers), environment="production", root=str(infra.root))
    assert run.state.is_failed(), run.state.message
    assert refusal in (run.state.message or "")
    assert run.pauses == pauses
    assert run.answer_errors == []
    nothing_applied_to_production()


def test_unsigned_production_approval_is_refused_and_the_cli_says_so(rollout, infra, reviewers):
    answer = cli_approve("--reviewer", "grace", "--comment", "trust me")
    run = rollout(answer, environment="production", root=str(infra.root))
    assert run.state.is_failed()
    [approved] = answer.outcomes
    assert approved.returncode == 1, approved.stdout + approved.stderr
    assert "refused" in approved.stderr and "unsigned approval by grace" in approved.stderr
    assert "accepted" not in approved.stdout
    nothing_applied_to_production()


def test_two_registered_keys_apply_and_the_records_name_each_key(rollout, infra, reviewers, capfd):
    from tasks.approval.client import await_decision, send_approval

    first = cli_approve("--key", str(reviewers.paths["alice"]), "--comment", "first")
    second: list = []

    def paste_signature(run_id: str, stage: str) -> None:
        """What a reviewer does in the UI: `mirror-rollout sign`, paste into the form."""
        signed_by_cli = cli("sign", run_id, "--key", str(reviewers.paths["bob"]))
        second.append(signed_by_cli)
        send_approval(run_id, "bob", comment="second", signature=signed_by_cli.stdout.strip())
        second.append(await_decision(run_id, stage))

    run = rollout(by_stage(first, paste_signature), environment="production", root=str(infra.root))
    assert run.state.is_completed(), run.state.message
    signed_by_cli, decision = second
    assert first.outcomes[0].returncode == 0 and signed_by_cli.returncode == 0
    assert "waiting for approval 2 of 2" in first.outcomes[0].stdout
    assert decision.accepted and "applying" in decision.message
    approvals = run.state.result()["approvals"]
    fingerprints = [reviewers.keys[n].public_key for n in ("alice", "bob")]
    from mirror_rollout.reviewer_keys import fingerprint

    assert [a["reviewer"] for a in approvals] == ["alice", "bob"]
    assert [a["key_fingerprint"] for a in approvals] == [fingerprint(k) for k in fingerprints]
    assert production_inventory()["tables"]  # applied, in the production account
    artifacts = artifacts_of(run.flow_run_id)
    for key in ("production-approval", "production-production-checklist"):
        for f in fingerprints:
            assert fingerprint(f) in artifacts[key], key
    # Private keys reach no artifact, log, result or output.
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as api:
        logs = api.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(run.flow_run_id)]))
        )
    places = {
        "logs": "\n".join(log.message for log in logs),
        "artifacts": "\n".join(artifacts.values()),
        "result": repr(run.state.result()),
        "cli output": "".join(o.stdout + o.stderr for o in [*first.outcomes, signed_by_cli]),
    }
    leaks = [(p, s[:6]) for p, text in places.items() for s in reviewers.secrets() if s in text]
    assert leaks == []


def test_a_forged_comment_adds_no_approval_row(rollout):
    answer = cli_approve("--reviewer", "alice", "--comment", HOSTILE_COMMENT)
    run = rollout(answer)
    assert run.state.is_completed(), run.state.message
    assert answer.outcomes[0].returncode == 0 and "accepted" in answer.outcomes[0].stdout
    artifacts = artifacts_of(run.flow_run_id)
    record = md.table_rows(artifacts["staging-approval"])
    checklist = artifacts["staging-production-checklist"]
    approvals_section = checklist[checklist.index("## Approval record") :]
    assert len(record) == 1 and len(md.table_rows(approvals_section)) == 1
    assert record[0][1] == "alice"
    assert "forged" in record[0][-1]  # the comment is kept, as text in its own cell
    # The run's outputs (plan, checklist) are private: out/, out/staging/, out/staging/RUN.
    checklist_file = Path(run.state.result()["checklist"])
    for directory in [checklist_file.parent, *checklist_file.parents][:3]:
        assert (directory.stat().st_mode & 0o777) == 0o700, directory


def test_the_sandbox_keeps_its_database_keys_and_results_private(sandbox):
    if sandbox.reused:
        pytest.skip("a reused sandbox was made by another process")
    state = sandbox.config.state_dir
    home = sandbox.config.prefect_home
    for directory in (state, home, state / "reviewer-keys"):
        assert (directory.stat().st_mode & 0o777) == 0o700, directory
    private = [
        *home.glob("prefect.db*"),
        state / "credentials.json",
        state / "reviewers.yaml",
        *(state / "reviewer-keys").iterdir(),
        *state.glob("*.log"),
    ]
    assert any(p.name == "prefect.db" for p in private)
    assert {p: oct(p.stat().st_mode & 0o777) for p in private if p.stat().st_mode & 0o077} == {}
    worker = sb.worker_env(sandbox.config, {}, PROJECT_ROOT)
    assert worker["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] == str(state / "results")


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_sandbox_auto_approval_signs_with_the_sandbox_reviewer_keys(
    prefect_api, clean_aws, tmp_path, environment
):
    """`rehearse --auto-approve` on the sandbox: each approval signed by a sandbox key."""
    import io

    from rich.console import Console

    from console.rehearsal import rehearse

    printed = io.StringIO()
    code, run_id = rehearse(
        environment,
        "sandbox",
        True,
        "http://ui.invalid",
        Console(file=printed, width=200),
        report=False,
        approval_timeout_seconds=60,
        out_dir=str(tmp_path / "out"),
    )
    assert code == 0, printed.getvalue()
    record = md.table_rows(artifacts_of(run_id)[f"{environment}-approval"])
    expected = ["sandbox-auto", "sandbox-auto-2"][: 2 if environment == "production" else 1]
    assert [row[1] for row in record] == [md.inline(name) for name in expected]
    assert all(row[2].startswith("`ed25519:") for row in record)


def test_the_sandbox_prefect_api_refuses_a_resume_without_its_credentials(sandbox):
    import httpx

    if sandbox.reused:
        pytest.skip("a reused sandbox may predate API authentication")
    api = sandbox.exports["PREFECT_API_URL"]
    resume = f"{api}/flow_runs/{uuid.uuid4()}/resume"
    refused = httpx.post(resume, json={}, trust_env=False, timeout=10)
    assert refused.status_code == 401
    wrong = httpx.post(resume, json={}, trust_env=False, timeout=10, auth=("sandbox", "guess"))
    assert wrong.status_code == 401
    headers = sb.api_headers(sandbox.config)
    allowed = httpx.post(resume, json={}, trust_env=False, timeout=10, headers=headers)
    assert allowed.status_code != 401  # let through (the made-up run does not exist)
    run = resume.removesuffix("/resume")
    assert httpx.get(run, trust_env=False, timeout=10).status_code == 401
    assert httpx.get(run, trust_env=False, timeout=10, headers=headers).status_code == 404
    assert httpx.get(f"{api}/health", trust_env=False, timeout=10).status_code == 200
