"""The sandbox's supervisor: start, stop and check moto, the GCS emulator, Prefect and its worker.

All run as detached child processes on 127.0.0.1, each in its own process group,
with its log file and pid record in the state directory::

    <state>/moto.pid  moto.log  gcs.pid  gcs.log  prefect.pid  prefect.log  worker.pid ...
    <state>/prefect/             PREFECT_HOME of the server (SQLite database, UI build)

:func:`server_command`, :func:`server_env` and :func:`status_rows` are pure; the rest
is a thin layer over :mod:`mirror_rollout.sandbox.processes` and ``httpx``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from mirror_rollout.errors import EndpointError, RolloutError
from mirror_rollout.sandbox.access import api_auth_string, api_headers, credentials, exports
from mirror_rollout.sandbox.config import (
    EXECUTABLES,
    SERVERS,
    WORK_POOL,
    SandboxConfig,
    find_conflicts,
)
from mirror_rollout.sandbox.private import private_dir
from mirror_rollout.sandbox.processes import (
    PidRecord,
    alive,
    is_ours,
    kill_leftovers,
    launch,
    log_tail,
    port_in_use,
    reap,
    stop_group,
)

WORKER = "worker"


def server_command(config: SandboxConfig, name: str, bin_dir: Path | None = None) -> list[str]:
    """The argv that starts ``name`` (the interpreter first, then the script)."""
    bin_dir = Path(sys.executable).parent if bin_dir is None else bin_dir
    exe = str(bin_dir / EXECUTABLES[name])
    host, port = config.host, str(config.port(name))
    args = {
        "moto": ["-H", host, "-p", port],
        "gcs": ["start", "--host", host, "--port", port, "--in-memory"],
        "prefect": ["server", "start", "--host", host, "--port", port, "--analytics-off", "--ui"],
    }[name]
    return [sys.executable, exe, *args]


def server_env(config: SandboxConfig, name: str, base: Mapping[str, str]) -> dict[str, str]:
    """Environment of a server process: ``base`` minus what would misdirect it."""
    env = {k: v for k, v in base.items() if not k.startswith("PREFECT_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    if name == "moto":
        # AWS managed policies (e.g. the AWS Backup service role policy) must exist to be attached.
        env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    if name == "prefect":
        home = config.prefect_home
        env.update(
            {
                "PREFECT_HOME": str(home),
                "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_UI_ENABLED": "true",
                "PREFECT_UI_ENABLED": "true",
                "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
                "PREFECT_SERVER_UI_API_URL": config.url("prefect"),
                "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
                # Every API call but /health needs the sandbox's auth string (see exports).
                "PREFECT_SERVER_API_AUTH_STRING": api_auth_string(config),
                "DO_NOT_TRACK": "1",
            }
        )
    return env


def worker_command(bin_dir: Path | None = None) -> list[str]:
    """A process worker for WORK_POOL (it creates the pool if it does not exist)."""
    bin_dir = Path(sys.executable).parent if bin_dir is None else bin_dir
    prefect = str(bin_dir / EXECUTABLES["prefect"])
    return [sys.executable, prefect, "worker", "start", "--pool", WORK_POOL, "--type", "process"]


def worker_env(config: SandboxConfig, base: Mapping[str, str], root: Path) -> dict[str, str]:
    """The worker and the flow runs it starts talk to the sandbox and run from ``root``."""
    env = {k: v for k, v in base.items() if not k.startswith("PREFECT_")}
    env.update(exports(config))
    env["MIRROR_ROLLOUT_ROOT"] = str(root)
    env["PYTHONUNBUFFERED"] = "1"
    # A local worker polls its pool often: a deployment run starts within ~2 s, not 10.
    env["PREFECT_WORKER_QUERY_SECONDS"] = "2"
    # Persisted task results stay in the sandbox's private state dir (made 0700 by `up`).
    env["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(config.state_dir / "results")
    return env


@dataclass
class ServerStatus:
    name: str
    url: str
    pid: int | None
    running: bool
    healthy: bool
    note: str = ""

    @property
    def reused(self) -> bool:
        return self.note == "reused"


def status_rows(statuses: Sequence[ServerStatus]) -> list[tuple[str, str, str, str, str]]:
    """(server, url, pid, state, note) rows for the status table (pure)."""
    rows = []
    for s in statuses:
        state = "healthy" if s.healthy else ("unhealthy" if s.running else "stopped")
        rows.append((s.name, s.url, str(s.pid) if s.pid else "-", state, s.note))
    return rows


def healthy(config: SandboxConfig, name: str, timeout: float = 2.0) -> bool:
    try:
        r = httpx.get(config.health_url(name), timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


@contextlib.contextmanager
def _locked(config: SandboxConfig) -> Iterator[None]:
    """Serialise up/down on one state dir."""
    private_dir(config.state_dir)
    with open(config.state_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _start(config: SandboxConfig, name: str) -> PidRecord:
    cmd = server_command(config, name)
    if not Path(cmd[1]).exists():
        raise RolloutError(
            f"{EXECUTABLES[name]} not found next to {sys.executable}",
            "install the project with its dependencies: pip install -e .",
        )
    if name == "prefect":
        private_dir(config.prefect_home)
    env = server_env(config, name, os.environ)
    proc = launch(cmd, env, config.state_dir, config.log_file(name))
    record = PidRecord(proc.pid, proc.pid, config.port(name), cmd)
    record.save(config.pid_file(name))
    return record


def _ensure_worker(config: SandboxConfig) -> ServerStatus:
    """Start the process worker for WORK_POOL unless ours is running (after the Prefect server)."""
    from mirror_rollout import PROJECT_ROOT

    label = f"work pool {WORK_POOL}"
    record = PidRecord.load(config.pid_file(WORKER))
    if record is not None and is_ours(record):
        return ServerStatus(WORKER, label, record.pid, True, True, "reused")
    config.pid_file(WORKER).unlink(missing_ok=True)
    cmd = worker_command()
    env = worker_env(config, os.environ, PROJECT_ROOT)
    proc = launch(cmd, env, PROJECT_ROOT, config.log_file(WORKER))
    PidRecord(proc.pid, proc.pid, 0, cmd).save(config.pid_file(WORKER))
    # The worker creates its pool on start; wait for it so `prefect deploy` finds it.
    pool_url = f"{config.url('prefect')}/work_pools/{WORK_POOL}"
    deadline = time.monotonic() + config.timeout
    while time.monotonic() < deadline and alive(proc.pid):
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(pool_url, timeout=2.0, trust_env=False, headers=api_headers(config))
            if answer.status_code == 200:
                return ServerStatus(WORKER, label, proc.pid, True, True, "started")
        time.sleep(0.25)
    raise EndpointError(
        f"the Prefect worker did not create work pool {WORK_POOL}",
        f"see {config.log_file(WORKER)}; its last lines:\n{log_tail(config.log_file(WORKER))}",
    )


def _stop_worker(config: SandboxConfig) -> ServerStatus:
    record = PidRecord.load(config.pid_file(WORKER))
    note = "not running"
    if record is not None and is_ours(record):
        stop_group(record)
        note = "stopped"
    config.pid_file(WORKER).unlink(missing_ok=True)
    return ServerStatus(
        WORKER, f"work pool {WORK_POOL}", record.pid if record else None, False, False, note
    )


def _wait_healthy(
    config: SandboxConfig, records: Mapping[str, PidRecord], timeout: float
) -> str | None:
    """Wait until every server in ``records`` answers; the first failure's name, or None."""
    pending = set(records)
    deadline = time.monotonic() + timeout
    while pending:
        for name in sorted(pending, key=SERVERS.index):
            if healthy(config, name, timeout=1.0):
                pending.discard(name)
            elif not alive(records[name].pid):
                reap(records[name].pid)
                return name
        if not pending:
            break
        if time.monotonic() > deadline:
            return sorted(pending, key=SERVERS.index)[0]
        time.sleep(0.25)
    return None


def _recorded_servers(config: SandboxConfig) -> dict[str, PidRecord]:
    """The servers of this state dir still running; stale pid files are removed."""
    records: dict[str, PidRecord] = {}
    for name in SERVERS:
        record = PidRecord.load(config.pid_file(name))
        if record is not None and is_ours(record):
            if record.port != config.port(name):
                raise RolloutError(
                    f"{name} from {config.state_dir} is already running on port {record.port}",
                    "run `mirror-rollout sandbox down` first to change its port",
                )
            records[name] = record
        elif record is not None or config.pid_file(name).exists():
            config.pid_file(name).unlink(missing_ok=True)  # stale
    return records


def _startup_failure(config: SandboxConfig, name: str, record: PidRecord) -> EndpointError:
    """Stop a server that did not come up and say why, with the end of its log."""
    exited = not alive(record.pid)
    if not exited:
        stop_group(record)
    config.pid_file(name).unlink(missing_ok=True)
    how = "exited" if exited else f"did not answer within {config.timeout:.0f} s"
    return EndpointError(
        f"{name} server {how} ({config.health_url(name)})",
        f"see {config.log_file(name)}; its last lines:\n{log_tail(config.log_file(name))}",
    )


# ----------------------------------------------------------------------------
# Public operations
# ----------------------------------------------------------------------------


def status(config: SandboxConfig) -> list[ServerStatus]:
    """Name, URL, pid, running and healthy of each server."""
    out = []
    for name in SERVERS:
        record = PidRecord.load(config.pid_file(name))
        running = record is not None and is_ours(record)
        ok = healthy(config, name)
        note = "" if running or not ok else "not from this state dir"
        if running and record is not None and record.port != config.port(name):
            note = f"running on port {record.port}"
        pid = record.pid if running and record is not None else None
        out.append(ServerStatus(name, config.url(name), pid, running, ok, note))
    record = PidRecord.load(config.pid_file(WORKER))
    worker_alive = record is not None and is_ours(record)
    out.append(
        ServerStatus(
            WORKER,
            f"work pool {WORK_POOL}",
            record.pid if worker_alive and record is not None else None,
            worker_alive,
            worker_alive,
        )
    )
    return out


def up(config: SandboxConfig) -> list[ServerStatus]:
    """Start whatever is not running yet and wait until all three are healthy."""
    with _locked(config):
        records = _recorded_servers(config)
        in_use = {n: port_in_use(config.host, config.port(n)) for n in SERVERS if n not in records}
        conflicts = find_conflicts(config, {n: True for n in records}, in_use)
        if conflicts:
            raise conflicts[0]

        notes: dict[str, str] = {}
        for name in SERVERS:
            if name in records:
                notes[name] = "reused" if healthy(config, name) else "already starting"
            else:
                records[name] = _start(config, name)
                notes[name] = "started"

        failed = _wait_healthy(config, records, config.timeout)
        if failed is not None:
            raise _startup_failure(config, failed, records[failed])

        bootstrap_state_backend(config)
        return [
            ServerStatus(n, config.url(n), records[n].pid, True, True, notes[n]) for n in SERVERS
        ] + [_ensure_worker(config)]


def bootstrap_state_backend(config: SandboxConfig) -> list[str]:
    """Terraform's state bucket and lock table on moto, as the production runbook makes them once."""
    from mirror_rollout.aws import new_session
    from mirror_rollout.provisioners.state_backend import BackendSpec, bootstrap

    key_id, secret = credentials(config)
    session = new_session(config.region, aws_access_key_id=key_id, aws_secret_access_key=secret)
    return bootstrap(session, BackendSpec(), endpoint_url=config.url("moto"))


def _stop_server(config: SandboxConfig, name: str) -> ServerStatus:
    path = config.pid_file(name)
    record = PidRecord.load(path)
    note = "not running"
    if record is not None:
        if is_ours(record):
            stop_group(record)
            note = "stopped"
        elif kill_leftovers(record):
            note = "stopped leftovers"
    path.unlink(missing_ok=True)
    return ServerStatus(name, config.url(name), record.pid if record else None, False, False, note)


def down(config: SandboxConfig) -> list[ServerStatus]:
    """Stop the servers this state dir recorded (whole process groups); remove pid files."""
    with _locked(config):
        worker = _stop_worker(config)
        servers = [_stop_server(config, name) for name in reversed(SERVERS)]
    return [*reversed(servers), worker]
