"""The sandbox for a team: Prefect on PostgreSQL, two workers, runs that find each other.

One sandbox for the module (`sandbox up --database postgres --workers 2` on free ports
and a temp state dir, each worker running one flow run at a time so that runs started
together spread over both) serves a tiny deployment, tests.support.worker_probe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from console.sandbox import app as sandbox_cli
from mirror_rollout import PROJECT_ROOT
from mirror_rollout import sandbox as sb
from mirror_rollout.errors import RolloutError
from mirror_rollout.sandbox import postgres
from tests.conftest import free_ports
from tests.support.worker_probe import DEPLOYMENT

pytestmark = pytest.mark.slow

WORKERS = {"sandbox-worker-1", "sandbox-worker-2"}
RUN_TIMEOUT = 90.0


class TeamSandbox(NamedTuple):
    config: sb.SandboxConfig
    cli_output: list[str]  # what `sandbox up/status/env` printed, for the leak check


def options(config: sb.SandboxConfig) -> list[str]:
    """The CLI options that name ``config``'s sandbox."""
    ports = [f"--{name}-port={config.port(name)}" for name in sb.ALL_SERVERS]
    return ["--state-dir", str(config.state_dir), *ports]


def postgres_sandbox(state_dir: Path) -> sb.SandboxConfig:
    """A sandbox on PostgreSQL, on free ports of its own."""
    moto, gcs, pg, prefect = free_ports(4)
    return sb.SandboxConfig.resolve(
        state_dir=state_dir,
        moto_port=moto,
        gcs_port=gcs,
        postgres_port=pg,
        prefect_port=prefect,
        database="postgres",
        env={},
    )


@pytest.fixture(scope="module")
def team_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamSandbox]:
    config = postgres_sandbox(tmp_path_factory.mktemp("pg") / "sandbox")
    config = dataclasses.replace(config, workers=2, runs_per_worker=1)
    up_args = ["up", *options(config), "--database", "postgres", "--workers", "2"]
    try:
        started = CliRunner().invoke(
            sandbox_cli, up_args, env={sb.RUNS_PER_WORKER_ENV: "1"}, catch_exceptions=False
        )
        assert started.exit_code == 0, started.output
        previous = sb.activate(config)
        try:
            yield TeamSandbox(config, [started.output])
        finally:
            sb.restore_env(previous)
    finally:
        sb.down(config)


@pytest.fixture(scope="module")
def probe(team_sandbox: TeamSandbox) -> Iterator[str]:
    """The worker-probe deployment on the sandbox's pool; its name for run_deployment."""
    from prefect import flow
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH,
        temporary_settings,
    )

    config = team_sandbox.config
    exports = sb.exports(config)
    with temporary_settings(
        updates={
            PREFECT_API_URL: exports["PREFECT_API_URL"],
            PREFECT_API_AUTH_STRING: exports["PREFECT_API_AUTH_STRING"],
            # Where the workers' flow runs persist their results (sandbox.worker_env).
            PREFECT_RESULTS_LOCAL_STORAGE_PATH: config.state_dir / "results",
        }
    ):
        source = flow.from_source(
            source=str(PROJECT_ROOT), entrypoint="tests/support/worker_probe.py:worker_probe"
        )
        source.to_deployment(name=DEPLOYMENT, work_pool_name=sb.WORK_POOL).apply()
        yield f"{DEPLOYMENT}/{DEPLOYMENT}"


def start_runs(deployment: str, *parameters: dict) -> list[str]:
    from prefect.deployments import run_deployment

    return [str(run_deployment(deployment, parameters=p, timeout=0).id) for p in parameters]


def wait_for(run_ids: list[str], done, timeout: float = RUN_TIMEOUT) -> list:
    """The flow runs once ``done(run)`` holds for each of them."""
    from prefect import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = [client.read_flow_run(run_id) for run_id in run_ids]
            if all(run.state and done(run) for run in runs):
                return runs
            assert time.monotonic() < deadline, [(r.name, r.state and r.state.name) for r in runs]
            time.sleep(0.5)


def results(run_ids: list[str]) -> list[dict]:
    runs = wait_for(run_ids, lambda run: run.state.is_final())
    assert all(run.state.is_completed() for run in runs), [run.state.message for run in runs]
    return [run.state.result() for run in runs]


# ---------------------------------------------------------------- the database


def test_prefect_server_keeps_its_data_in_postgresql(team_sandbox: TeamSandbox) -> None:
    config = team_sandbox.config
    health = httpx.get(config.url("prefect") + "/health", timeout=10, trust_env=False)
    assert health.status_code == 200 and health.json() is True
    prefect = next(s for s in sb.status(config) if s.name == "prefect")
    assert prefect.healthy and prefect.note == "database postgres"
    server_env = sb.process_env(prefect.pid or 0)
    assert server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == postgres.connection_url(config)

    async def prefect_tables(password: str) -> set[str]:
        conn = await asyncpg.connect(
            host=config.host,
            port=config.postgres_port,
            user="prefect",
            database="prefect",
            password=password,
        )
        try:
            rows = await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        finally:
            await conn.close()
        return {row["table_name"] for row in rows}

    stored = (config.state_dir / "postgres-password").read_text().strip()
    assert {"flow_run", "deployment", "work_pool"} <= asyncio.run(prefect_tables(stored))
    with pytest.raises(asyncpg.InvalidPasswordError):  # password auth, never trust
        asyncio.run(prefect_tables("not-the-password"))
    assert config.postgres_data.stat().st_mode & 0o777 == 0o700
    assert (config.state_dir / "postgres-password").stat().st_mode & 0o077 == 0


def test_up_again_reuses_and_refuses_a_database_switch(team_sandbox: TeamSandbox) -> None:
    config = team_sandbox.config
    before = {s.name: s.pid for s in sb.status(config)}
    assert set(before) == {*sb.ALL_SERVERS, "worker", "worker-2"}
    again = sb.up(config)
    assert {s.name: s.pid for s in again} == before and all(s.reused for s in again)

    switched = CliRunner().invoke(sandbox_cli, ["up", *options(config)])  # default: sqlite
    assert switched.exit_code == 2
    assert "runs Prefect on postgres" in switched.output and "sandbox down" in switched.output
    with pytest.raises(RolloutError, match=r"--database sqlite .* or --database postgres"):
        sb.SandboxConfig.resolve(database="mysql", env={})


# ---------------------------------------------------------------- the workers


def test_two_runs_started_together_run_on_both_workers(probe: str) -> None:
    run_ids = start_runs(probe, {"hold_seconds": 4}, {"hold_seconds": 4})
    done = results(run_ids)
    assert {result["worker"] for result in done} == WORKERS
    # The sandbox's pool names the engine command: the worker starts each run itself,
    # with no workspace supervisor process in between (mirror_rollout.sandbox.work_pool).
    for result in done:
        assert "worker start" in result["started_by"], result


def test_a_run_waits_for_the_slot_a_run_on_the_other_worker_holds(probe: str) -> None:
    slot = {"hold_seconds": 4, "slot_environment": "pgslot", "busy_wait_seconds": 60}
    first, second = sorted(results(start_runs(probe, slot, slot)), key=lambda r: r["held_from"])
    assert {first["worker"], second["worker"]} == WORKERS
    # The second run's critical part starts only once the first one's has ended.
    assert second["held_from"] >= first["held_until"]


RESUME = """
import sys
from prefect.flow_runs import resume_flow_run
resume_flow_run(sys.argv[1], run_input={"note": sys.argv[2]})
"""


def resume_from_another_process(run_id: str, note: str) -> None:
    """As an approver's terminal would: a separate Python, with only the sandbox's exports."""
    done = subprocess.run(
        [sys.executable, "-c", RESUME, run_id, note],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_resume_from_a_third_process_resumes_only_its_run(probe: str) -> None:
    paused = {"hold_seconds": 0, "wait_for_note": True}
    target, other = start_runs(probe, paused, paused)
    wait_for([target, other], lambda run: run.state.is_paused())

    resume_from_another_process(target, "approved by a third process")
    [resumed] = results([target])
    assert resumed["note"] == "approved by a third process"
    [still] = wait_for([other], lambda run: True)
    assert still.state.is_paused(), still.state

    resume_from_another_process(other, "the other one")
    [later] = results([other])
    assert later["note"] == "the other one"
    assert {resumed["worker"], later["worker"]} == WORKERS


# ---------------------------------------------------------------- the password


def test_the_password_never_leaks(team_sandbox: TeamSandbox) -> None:
    config = team_sandbox.config
    secret = postgres.password(config)
    outputs = list(team_sandbox.cli_output)
    for command in ("status", "env"):
        res = CliRunner().invoke(sandbox_cli, [command, *options(config)])
        assert res.exit_code == 0, res.output
        outputs.append(res.output)
    assert "postgres" in outputs[1] and secret not in "".join(outputs)
    assert secret not in "".join(sb.exports(config).values())

    kept = {config.state_dir / "postgres-password", config.state_dir / "postgres.pgpass"}
    scanned = [
        path
        for path in config.state_dir.rglob("*")
        if path.is_file() and path not in kept and config.postgres_data not in path.parents
    ]
    assert any(path.suffix == ".log" for path in scanned)
    leaked = [path for path in scanned if secret.encode() in path.read_bytes()]
    assert leaked == []
    for name in ("postgres", "prefect"):
        pid = sb.PidRecord.load(config.pid_file(name)).pid  # type: ignore[union-attr]
        assert secret not in "".join(sb.process_env(pid).values()), name
        assert secret not in " ".join(sb.cmdline(pid)), name


def test_a_taken_postgres_port_fails_before_anything_starts(tmp_path: Path) -> None:
    config = postgres_sandbox(tmp_path / "sandbox")
    pg = config.postgres_port
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", pg))
        foreign.listen()
        with pytest.raises(RolloutError) as info:
            sb.up(config)
    assert f"port {pg} (postgres) is already in use" in info.value.line()
    assert "--postgres-port" in info.value.line() and sb.PORT_ENV["postgres"] in info.value.line()
    assert not list(config.state_dir.glob("*.pid")) and not config.postgres_data.exists()


def test_missing_binaries_say_how_to_install_them(tmp_path: Path) -> None:
    with pytest.raises(RolloutError) as info:
        postgres.find_binaries(path=str(tmp_path), debian_glob=str(tmp_path / "*/bin"))
    assert info.value.line().count("\n") == 0
    assert "install postgresql (apt-get install postgresql)" in info.value.line()
