"""The embedded sandbox against real servers over HTTP (no patched clients)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import httpx
import pytest
from typer.testing import CliRunner

from console.sandbox import app as sandbox_cli
from mirror_rollout import PROJECT_ROOT
from mirror_rollout import sandbox as sb
from mirror_rollout.errors import RolloutError

# ---------------------------------------------------------------- pure parts


def test_resolve_precedence(tmp_path: Path) -> None:
    env = {
        "MIRROR_ROLLOUT_MOTO_PORT": "6001",
        "MIRROR_ROLLOUT_GCS_PORT": "6002",
        "MIRROR_ROLLOUT_SANDBOX_DIR": str(tmp_path / "from-env"),
    }
    cfg = sb.SandboxConfig.resolve(gcs_port=7002, env=env)
    assert (cfg.moto_port, cfg.gcs_port, cfg.prefect_port) == (6001, 7002, 4200)
    assert cfg.state_dir == tmp_path / "from-env"
    assert cfg.url("prefect") == "http://127.0.0.1:4200/api"
    cfg = sb.SandboxConfig.resolve(state_dir=tmp_path / "opt", env=env)
    assert cfg.state_dir == tmp_path / "opt"
    default = sb.SandboxConfig.resolve(env={})
    assert default.state_dir == Path("~/.local/state/mirror-rollout/sandbox").expanduser()
    assert (default.moto_port, default.gcs_port, default.prefect_port) == (5055, 9023, 4200)


@pytest.mark.parametrize("value", ["abc", "0", "70000"])
def test_resolve_rejects_bad_port(value: str) -> None:
    with pytest.raises(RolloutError, match="MIRROR_ROLLOUT_PREFECT_PORT"):
        sb.SandboxConfig.resolve(env={"MIRROR_ROLLOUT_PREFECT_PORT": value})


def test_resolve_rejects_shared_port() -> None:
    with pytest.raises(RolloutError, match="port 5055"):
        sb.SandboxConfig.resolve(gcs_port=5055, env={})


def test_conflict_decision_and_rows() -> None:
    cfg = sb.SandboxConfig.resolve(env={})
    errs = sb.find_conflicts(
        cfg, ours={"moto": True}, in_use={"moto": True, "gcs": True, "prefect": False}
    )
    assert [e.line() for e in errs] == [
        "port 9023 (gcs) is already in use by another process — stop it or choose "
        "another port with --gcs-port or MIRROR_ROLLOUT_GCS_PORT"
    ]
    rows = sb.status_rows(
        [
            sb.ServerStatus("moto", "u", 12, True, True),
            sb.ServerStatus("gcs", "v", None, False, False),
        ]
    )
    assert rows == [("moto", "u", "12", "healthy", ""), ("gcs", "v", "-", "stopped", "")]


def test_exports_point_at_loopback(tmp_path) -> None:
    cfg = sb.SandboxConfig.resolve(
        state_dir=tmp_path, moto_port=1111, gcs_port=2222, prefect_port=3333, env={}
    )
    ex = sb.exports(cfg)
    assert ex["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1111"
    assert ex["STORAGE_EMULATOR_HOST"] == "http://127.0.0.1:2222"
    assert ex["PREFECT_API_URL"] == "http://127.0.0.1:3333/api"
    assert ex["AWS_DEFAULT_REGION"] == "us-east-1"
    # A key pair of this sandbox's own, kept in its state dir: the same on every call.
    assert ex["AWS_ACCESS_KEY_ID"].startswith("AKIA") and len(ex["AWS_SECRET_ACCESS_KEY"]) >= 40
    assert sb.exports(cfg)["AWS_SECRET_ACCESS_KEY"] == ex["AWS_SECRET_ACCESS_KEY"]
    assert (cfg.state_dir / "credentials.json").stat().st_mode & 0o077 == 0
    env = sb.server_env(cfg, "prefect", {"PREFECT_API_URL": "http://elsewhere/api", "PATH": "/x"})
    assert "PREFECT_API_URL" not in env
    assert env["PATH"] == "/x"
    assert env["PREFECT_HOME"] == str(cfg.state_dir / "prefect")
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


# ---------------------------------------------------------------- session sandbox


def test_status_reports_healthy(sandbox) -> None:
    statuses = sb.status(sandbox.config)
    assert [s.name for s in statuses] == [*sb.SERVERS, "worker"]
    assert all(s.healthy for s in statuses), statuses
    if not sandbox.reused:
        assert all(s.running and s.pid for s in statuses), statuses


def test_up_twice_reuses_servers(sandbox) -> None:
    if sandbox.reused:
        pytest.skip("sandbox started outside this test session")
    before = {s.name: s.pid for s in sb.status(sandbox.config)}
    again = sb.up(sandbox.config)
    assert {s.name: s.pid for s in again} == before
    assert all(s.reused for s in again)
    for name in sb.SERVERS:
        cmd = sb.server_command(sandbox.config, name)
        matching = [
            pid
            for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if sb.cmdline(pid)[-len(cmd) + 1 :] == cmd[1:]
        ]
        assert matching == [before[name]], (name, matching)


def test_boto3_dynamodb_table(sandbox) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == sandbox.config.url("moto")
    ddb = boto3.client("dynamodb")  # endpoint, region, keys from the environment
    name = f"t-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert name in ddb.list_tables()["TableNames"]


def test_gcs_bucket(sandbox) -> None:
    from google.cloud import storage

    client = storage.Client()  # STORAGE_EMULATOR_HOST, anonymous credentials
    name = f"b-{uuid.uuid4().hex[:8]}"
    client.create_bucket(name)
    assert name in [b.name for b in client.list_buckets()]


def test_prefect_api_health(sandbox) -> None:
    r = httpx.get(os.environ["PREFECT_API_URL"] + "/health", timeout=10)
    assert r.status_code == 200
    assert r.json() is True
    ui = httpx.get(sandbox.config.ui_url + "/", timeout=10)
    assert ui.status_code == 200


def location_options(cfg: sb.SandboxConfig) -> list[str]:
    """The CLI options that name ``cfg``'s sandbox."""
    return [
        "--state-dir",
        str(cfg.state_dir),
        *(f"--{name}-port={cfg.port(name)}" for name in sb.SERVERS),
    ]


def test_cli_status_and_env(sandbox) -> None:
    cfg = sandbox.config
    args = location_options(cfg)
    res = CliRunner().invoke(sandbox_cli, ["status", *args])
    assert res.exit_code == 0, res.output
    assert "healthy" in res.output
    res = CliRunner().invoke(sandbox_cli, ["env", *args])
    assert f"export AWS_ENDPOINT_URL=http://127.0.0.1:{cfg.moto_port}" in res.output


# ---------------------------------------------------------------- own sandboxes


def test_foreign_port_fails_before_starting(fresh_sandbox_config: sb.SandboxConfig) -> None:
    cfg = fresh_sandbox_config
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", cfg.gcs_port))
        foreign.listen()
        with pytest.raises(RolloutError) as info:
            sb.up(cfg)
        line = info.value.line()
        assert "\n" not in line
        assert f"port {cfg.gcs_port} (gcs)" in line
        assert "--gcs-port" in line and "MIRROR_ROLLOUT_GCS_PORT" in line
        assert not list(cfg.state_dir.glob("*.pid"))
        assert not sb.port_in_use("127.0.0.1", cfg.moto_port)
        assert not sb.port_in_use("127.0.0.1", cfg.prefect_port)

        res = CliRunner().invoke(sandbox_cli, ["up", *location_options(cfg)])
        assert res.exit_code == 2
        assert res.exception is None or isinstance(res.exception, SystemExit)
        assert "Traceback" not in res.output
        assert not list(cfg.state_dir.glob("*.pid"))


@pytest.mark.slow
def test_down_leaves_nothing(fresh_sandbox_config: sb.SandboxConfig) -> None:
    cfg = fresh_sandbox_config
    try:
        started = sb.up(cfg)
        assert all(s.healthy and s.note == "started" for s in started)
        pids = {s.name: s.pid for s in started}
        for name, pid in pids.items():
            assert pid is not None and sb.group_members(pid), name
        stopped = sb.down(cfg)
    finally:
        sb.down(cfg)  # idempotent; cleans up if an assertion failed
    assert {s.name: s.note for s in stopped} == dict.fromkeys([*sb.SERVERS, "worker"], "stopped")
    for pid in pids.values():
        assert not sb.alive(pid)
        assert sb.group_members(pid) == []  # the group leader was its pgid
    assert not list(cfg.state_dir.glob("*.pid"))
    assert not any(s.running or s.healthy for s in sb.status(cfg))


def test_the_sandbox_pool_starts_the_engine_itself() -> None:
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect.workers.process import ProcessWorker

    from mirror_rollout.sandbox.work_pool import pool_template

    default = ProcessWorker.get_default_base_job_template()
    template = pool_template(default, "/opt/venv/bin/python")
    assert validate_base_job_template(template) == template
    command = template["variables"]["properties"]["command"]
    assert command["default"] == "/opt/venv/bin/python -m prefect.engine"
    assert default["variables"]["properties"]["command"].get("default") is None  # not changed
    assert template["job_configuration"] == default["job_configuration"]


def test_up_leaves_prefect_unimported_so_activate_can_point_it(sandbox) -> None:
    # Prefect reads its settings once, when imported: `up` must not import it before
    # `activate` sets PREFECT_API_URL (the rehearsal and the benchmarks do up, then activate).
    config = sandbox.config
    code = (
        "import sys; from mirror_rollout import sandbox as sb\n"
        f"config = sb.SandboxConfig.resolve(state_dir={str(config.state_dir)!r}, "
        f"moto_port={config.moto_port}, gcs_port={config.gcs_port}, "
        f"prefect_port={config.prefect_port})\n"
        "assert all(s.reused for s in sb.up(config) if s.name in sb.SERVERS)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_unreachable_server_is_one_clear_error_for_the_pool(
    fresh_sandbox_config: sb.SandboxConfig,
) -> None:
    from mirror_rollout.errors import EndpointError
    from mirror_rollout.sandbox.work_pool import use_engine_command

    with pytest.raises(EndpointError) as raised:  # nothing listens: the sandbox is not up
        use_engine_command(fresh_sandbox_config)
    assert "did not answer" in str(raised.value) and "prefect.log" in str(raised.value)
