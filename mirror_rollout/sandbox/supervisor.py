"""The sandbox's supervisor: start, stop and check moto, the GCS emulator, PostgreSQL (with
--database postgres), Prefect and its workers.

All run as detached child processes on 127.0.0.1, each in its own process group,
with its log file and pid record in the state directory::

    <state>/moto.pid  moto.log  gcs.pid  gcs.log  prefect.pid  prefect.log  worker.pid ...
    <state>/worker-2.pid  worker-2.log ...  the second and further workers (--workers N)
    <state>/prefect/             PREFECT_HOME of the server (SQLite database, UI build)
    <state>/postgres/            PostgreSQL's data dir (--database postgres; see postgres.py)

:func:`server_command`, :func:`server_env` and :func:`status_rows` are pure; the rest
is a thin layer over :mod:`mirror_rollout.sandbox.processes` and ``httpx``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from mirror_rollout.errors import EndpointError, RolloutError
from mirror_rollout.sandbox import postgres
from mirror_rollout.sandbox.access import api_auth_string, api_headers, credentials, exports
from mirror_rollout.sandbox.config import (
    ALL_SERVERS,
    EXECUTABLES,
    WORK_POOL,
    WORKER_NAME_ENV,
    SandboxConfig,
    find_conflicts,
    worker_key,
    worker_name,
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
    process_env,
    reap,
    stop_group,
)
from mirror_rollout.sandbox.work_pool import use_engine_command

WORKER = worker_key(1)


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
    env = {k: v for k, v in postgres.server_env(base).items() if not k.startswith("PREFECT_")}
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
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": _database_url(config),
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
        if config.database == "postgres":
            # asyncpg reads the password from this 0600 file: the URL names none.
            env["PGPASSFILE"] = str(config.state_dir / "postgres.pgpass")
    return env


def _database_url(config: SandboxConfig) -> str:
    if config.database == "postgres":
        return postgres.connection_url(config)
    return f"sqlite+aiosqlite:///{config.prefect_home / 'prefect.db'}"


def database_of(env: Mapping[str, str]) -> str:
    """Which database a Prefect server started with ``env`` uses (pure)."""
    url = env.get("PREFECT_SERVER_DATABASE_CONNECTION_URL", "")
    return "postgres" if url.startswith("postgresql") else "sqlite"


def worker_command(
    bin_dir: Path | None = None, name: str = worker_name(1), limit: int | None = None
) -> list[str]:
    """A process worker ``name`` for WORK_POOL (it creates the pool if it does not exist).

    With a ``limit``, it leaves the flow runs beyond it to the pool's other workers.
    """
    bin_dir = Path(sys.executable).parent if bin_dir is None else bin_dir
    prefect = str(bin_dir / EXECUTABLES["prefect"])
    pool = ["--pool", WORK_POOL, "--type", "process"]
    limit_args = [] if limit is None else ["--limit", str(limit)]
    return [sys.executable, prefect, "worker", "start", *pool, "--name", name, *limit_args]


def worker_env(
    config: SandboxConfig, base: Mapping[str, str], root: Path, name: str = worker_name(1)
) -> dict[str, str]:
    """The worker and the flow runs it starts talk to the sandbox and run from ``root``.

    They also carry the worker's name, so a flow run can tell which worker runs it.
    """
    env = {k: v for k, v in base.items() if not k.startswith("PREFECT_")}
    env.update(exports(config))
    env["MIRROR_ROLLOUT_ROOT"] = str(root)
    env[WORKER_NAME_ENV] = name
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
    if name == "postgres":
        return postgres.ready(config, timeout)
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
    if name == "postgres":
        return postgres.start(config)
    cmd = server_command(config, name)
    if not Path(cmd[1]).exists():
        raise RolloutError(
            f"{EXECUTABLES[name]} not found next to {sys.executable}",
            "install the project with its dependencies: pip install -e .",
        )
    if name == "prefect":
        private_dir(config.prefect_home)
        if config.database == "postgres":
            postgres.passfile(config)
    env = server_env(config, name, os.environ)
    proc = launch(cmd, env, config.state_dir, config.log_file(name))
    record = PidRecord(proc.pid, proc.pid, config.port(name), cmd)
    record.save(config.pid_file(name))
    return record


def _worker_label(number: int) -> str:
    return f"{worker_name(number)} on work pool {WORK_POOL}"


def _recorded_workers(config: SandboxConfig) -> list[int]:
    """Numbers of the workers this state dir has pid files for, in order."""
    numbers = [1] if config.pid_file(WORKER).exists() else []
    for path in config.state_dir.glob("worker-*.pid"):
        suffix = path.stem.removeprefix("worker-")
        if suffix.isdigit() and int(suffix) > 1:
            numbers.append(int(suffix))
    return sorted(numbers)


def _ensure_workers(config: SandboxConfig) -> list[ServerStatus]:
    """Workers 1..N on WORK_POOL (ours are reused); recorded ones beyond N are stopped."""
    for extra in [n for n in _recorded_workers(config) if n > config.workers]:
        _stop_worker(config, extra)
    statuses = []
    for number in range(1, config.workers + 1):
        statuses.append(_ensure_worker(config, number))
        # The first worker creates the pool: wait for it, so the others find it (and
        # `prefect deploy` does).
        if statuses[-1].note == "started":
            _wait_for_pool(config, statuses[-1])
    use_engine_command(config)
    return statuses


def _ensure_worker(config: SandboxConfig, number: int) -> ServerStatus:
    from mirror_rollout import PROJECT_ROOT

    key, name = worker_key(number), worker_name(number)
    record = PidRecord.load(config.pid_file(key))
    if record is not None and is_ours(record):
        return ServerStatus(key, _worker_label(number), record.pid, True, True, "reused")
    config.pid_file(key).unlink(missing_ok=True)
    cmd = worker_command(name=name, limit=config.runs_per_worker)
    env = worker_env(config, os.environ, PROJECT_ROOT, name)
    proc = launch(cmd, env, PROJECT_ROOT, config.log_file(key))
    PidRecord(proc.pid, proc.pid, 0, cmd).save(config.pid_file(key))
    return ServerStatus(key, _worker_label(number), proc.pid, True, True, "started")


def _wait_for_pool(config: SandboxConfig, started: ServerStatus) -> None:
    pool_url = f"{config.url('prefect')}/work_pools/{WORK_POOL}"
    deadline = time.monotonic() + config.timeout
    while time.monotonic() < deadline and started.pid and alive(started.pid):
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(pool_url, timeout=2.0, trust_env=False, headers=api_headers(config))
            if answer.status_code == 200:
                return
        time.sleep(0.25)
    log = config.log_file(started.name)
    raise EndpointError(
        f"the Prefect worker did not create work pool {WORK_POOL}",
        f"see {log}; its last lines:\n{log_tail(log)}",
    )


def _stop_worker(config: SandboxConfig, number: int) -> ServerStatus:
    key = worker_key(number)
    record = PidRecord.load(config.pid_file(key))
    note = "not running"
    if record is not None and is_ours(record):
        stop_group(record)
        note = "stopped"
    config.pid_file(key).unlink(missing_ok=True)
    pid = record.pid if record else None
    return ServerStatus(key, _worker_label(number), pid, False, False, note)


def _worker_statuses(config: SandboxConfig) -> list[ServerStatus]:
    """Each recorded worker (the first one, stopped, when none is)."""
    out = []
    for number in _recorded_workers(config) or [1]:
        record = PidRecord.load(config.pid_file(worker_key(number)))
        running = record is not None and is_ours(record)
        pid = record.pid if running and record is not None else None
        out.append(ServerStatus(worker_key(number), _worker_label(number), pid, running, running))
    return out


def _wait_healthy(
    config: SandboxConfig, records: Mapping[str, PidRecord], timeout: float
) -> str | None:
    """Wait until every server in ``records`` answers; the first failure's name, or None."""
    pending = set(records)
    deadline = time.monotonic() + timeout
    while pending:
        for name in sorted(pending, key=ALL_SERVERS.index):
            if healthy(config, name, timeout=1.0):
                pending.discard(name)
            elif not alive(records[name].pid):
                reap(records[name].pid)
                return name
        if not pending:
            break
        if time.monotonic() > deadline:
            return sorted(pending, key=ALL_SERVERS.index)[0]
        time.sleep(0.25)
    return None


def _recorded_servers(config: SandboxConfig) -> dict[str, PidRecord]:
    """The servers of this state dir still running; stale pid files are removed."""
    records: dict[str, PidRecord] = {}
    for name in ALL_SERVERS:
        record = PidRecord.load(config.pid_file(name))
        if record is not None and is_ours(record):
            # Another database's server is left to _check_same_database's message.
            if name in config.servers and record.port != config.port(name):
                raise RolloutError(
                    f"{name} from {config.state_dir} is already running on port {record.port}",
                    "run `mirror-rollout sandbox down` first to change its port",
                )
            records[name] = record
        elif record is not None or config.pid_file(name).exists():
            config.pid_file(name).unlink(missing_ok=True)  # stale
    return records


def running_database(records: Mapping[str, PidRecord]) -> str | None:
    """The database of the running sandbox: its Prefect server's, or PostgreSQL's if it runs."""
    if "prefect" in records:
        return database_of(process_env(records["prefect"].pid))
    return "postgres" if "postgres" in records else None


def _check_same_database(config: SandboxConfig, records: Mapping[str, PidRecord]) -> None:
    running = running_database(records)
    if running is not None and running != config.database:
        raise RolloutError(
            f"the sandbox in {config.state_dir} runs Prefect on {running}, not {config.database}",
            f"run `mirror-rollout sandbox down` first to switch it to --database {config.database}",
        )


def _startup_failure(config: SandboxConfig, name: str, record: PidRecord) -> EndpointError:
    """Stop a server that did not come up and say why, with the end of its log."""
    exited = not alive(record.pid)
    if not exited:
        stop_group(record, first=_stop_signal(name))
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
    """Name, URL, pid, running and healthy of each server and worker."""
    recorded = [n for n in ALL_SERVERS if config.pid_file(n).exists()]
    out = []
    for name in [n for n in ALL_SERVERS if n in config.servers or n in recorded]:
        record = PidRecord.load(config.pid_file(name))
        running = record is not None and is_ours(record)
        ok = healthy(config, name)
        note = "" if running or not ok else "not from this state dir"
        if running and record is not None and record.port != config.port(name):
            note = f"running on port {record.port}"
        elif running and record is not None and name == "prefect":
            note = f"database {database_of(process_env(record.pid))}"
        pid = record.pid if running and record is not None else None
        out.append(ServerStatus(name, config.url(name), pid, running, ok, note))
    return out + _worker_statuses(config)


def _start_missing(
    config: SandboxConfig, names: Sequence[str], records: dict[str, PidRecord]
) -> dict[str, str]:
    """Start those of ``names`` not running yet; a note for each of them."""
    notes = {}
    for name in names:
        if name in records:
            notes[name] = "reused" if healthy(config, name) else "already starting"
        else:
            records[name] = _start(config, name)
            notes[name] = "started"
    return notes


def _wait_or_fail(config: SandboxConfig, records: Mapping[str, PidRecord]) -> None:
    failed = _wait_healthy(config, records, config.timeout)
    if failed is not None:
        raise _startup_failure(config, failed, records[failed])


def up(config: SandboxConfig) -> list[ServerStatus]:
    """Start whatever is not running yet and wait until all servers are healthy."""
    with _locked(config):
        records = _recorded_servers(config)
        _check_same_database(config, records)
        in_use = {
            n: port_in_use(config.host, config.port(n)) for n in config.servers if n not in records
        }
        conflicts = find_conflicts(config, {n: True for n in records}, in_use)
        if conflicts:
            raise conflicts[0]
        if config.database == "postgres":
            postgres.find_binaries()  # missing: one line before anything starts

        # The Prefect server migrates its database as it starts: PostgreSQL must answer first.
        backing = [n for n in config.servers if n != "prefect"]
        notes = _start_missing(config, backing, records)
        if "postgres" in records:
            _wait_or_fail(config, {"postgres": records["postgres"]})
        notes |= _start_missing(config, ["prefect"], records)
        _wait_or_fail(config, {n: records[n] for n in config.servers})

        bootstrap_state_backend(config)
        return [
            ServerStatus(n, config.url(n), records[n].pid, True, True, notes[n])
            for n in config.servers
        ] + _ensure_workers(config)


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
            stop_group(record, first=_stop_signal(name))
            note = "stopped"
        elif kill_leftovers(record):
            note = "stopped leftovers"
    path.unlink(missing_ok=True)
    return ServerStatus(name, config.url(name), record.pid if record else None, False, False, note)


def _stop_signal(name: str) -> signal.Signals:
    # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to leave).
    return signal.SIGINT if name == "postgres" else signal.SIGTERM


def down(config: SandboxConfig) -> list[ServerStatus]:
    """Stop the servers and workers this state dir recorded (whole process groups)."""
    with _locked(config):
        workers = [_stop_worker(config, n) for n in _recorded_workers(config) or [1]]
        recorded = [n for n in ALL_SERVERS if config.pid_file(n).exists()]
        names = [n for n in ALL_SERVERS if n in config.servers or n in recorded]
        servers = [_stop_server(config, name) for name in reversed(names)]
    return [*reversed(servers), *workers]
