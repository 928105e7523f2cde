"""The embedded sandbox: moto (AWS), gcp-storage-emulator (GCS) and a Prefect server.

All three run as detached child processes on 127.0.0.1, each in its own process
group, with its log file and pid record in a state directory::

    <state>/moto.pid  moto.log  gcs.pid  gcs.log  prefect.pid  prefect.log
    <state>/prefect/             PREFECT_HOME of the server (SQLite database, UI build)

A ``.pid`` file holds one JSON object: pid, process group, port and the exact
argv we started. ``down`` only signals a pid whose ``/proc/<pid>/cmdline`` still
matches that argv, so a recycled pid is never touched.

Clients find the servers through the standard variables returned by
:func:`exports` (``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``,
``PREFECT_API_URL``...); nothing else in the project needs to know it runs
against the sandbox.

The pure parts (:meth:`SandboxConfig.resolve`, :func:`port_conflict`,
:func:`status_rows`, :func:`server_command`, :func:`server_env`) take no I/O;
the rest is a thin layer over ``subprocess``, ``/proc`` and ``httpx``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shlex
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
import typer

from mirror_rollout.aws import LOOPBACK
from mirror_rollout.errors import ConfigError, EndpointError, RolloutError

#: The servers, in start order.
SERVERS: tuple[str, ...] = ("moto", "gcs", "prefect")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORTS: dict[str, int] = {"moto": 5055, "gcs": 9023, "prefect": 4200}
DEFAULT_STATE_DIR = Path("~/.local/state/mirror-rollout/sandbox")
DEFAULT_REGION = "us-east-1"
DEFAULT_TIMEOUT = 120.0
#: GCP project used for health checks and exported to clients.
GCP_PROJECT = "sandbox"

PORT_ENV: dict[str, str] = {
    "moto": "MIRROR_ROLLOUT_MOTO_PORT",
    "gcs": "MIRROR_ROLLOUT_GCS_PORT",
    "prefect": "MIRROR_ROLLOUT_PREFECT_PORT",
}
STATE_DIR_ENV = "MIRROR_ROLLOUT_SANDBOX_DIR"

#: Path (after ``http://host:port``) answered by each server once it is ready.
HEALTH_PATHS: dict[str, str] = {
    "moto": "/moto-api/",
    "gcs": f"/storage/v1/b?project={GCP_PROJECT}",
    "prefect": "/api/health",
}
#: Executable (next to ``sys.executable``) of each server.
EXECUTABLES: dict[str, str] = {
    "moto": "moto_server",
    "gcs": "gcp-storage-emulator",
    "prefect": "prefect",
}

#: The Prefect work pool the sandbox's worker serves (prefect.yaml's deployments use it).
WORK_POOL = "mirror-rollout"

STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
LOG_TAIL_LINES = 15

# ----------------------------------------------------------------------------
# Configuration (pure)
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxConfig:
    """Where the sandbox lives and which ports it uses."""

    state_dir: Path = field(default_factory=lambda: DEFAULT_STATE_DIR.expanduser())
    moto_port: int = DEFAULT_PORTS["moto"]
    gcs_port: int = DEFAULT_PORTS["gcs"]
    prefect_port: int = DEFAULT_PORTS["prefect"]
    host: str = DEFAULT_HOST
    region: str = DEFAULT_REGION
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def resolve(
        cls,
        *,
        state_dir: Path | str | None = None,
        moto_port: int | None = None,
        gcs_port: int | None = None,
        prefect_port: int | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> SandboxConfig:
        """Explicit arguments (CLI options) win over env vars, which win over defaults."""
        env = os.environ if env is None else env
        explicit = {"moto": moto_port, "gcs": gcs_port, "prefect": prefect_port}
        ports: dict[str, int] = {}
        for name in SERVERS:
            if explicit[name] is not None:
                ports[name] = _check_port(explicit[name], f"--{name}-port")
            elif env.get(PORT_ENV[name], "").strip():
                ports[name] = _check_port(env[PORT_ENV[name]].strip(), PORT_ENV[name])
            else:
                ports[name] = DEFAULT_PORTS[name]
        dupes = {p for p in ports.values() if list(ports.values()).count(p) > 1}
        if dupes:
            names = ", ".join(n for n in SERVERS if ports[n] in dupes)
            raise ConfigError(
                f"sandbox servers {names} are all given port {min(dupes)}",
                "give each server its own port with --moto-port / --gcs-port / --prefect-port",
            )
        if state_dir is None:
            state_dir = env.get(STATE_DIR_ENV, "").strip() or DEFAULT_STATE_DIR
        return cls(
            state_dir=Path(state_dir).expanduser().absolute(),
            moto_port=ports["moto"],
            gcs_port=ports["gcs"],
            prefect_port=ports["prefect"],
            timeout=DEFAULT_TIMEOUT if timeout is None else float(timeout),
        )

    def port(self, name: str) -> int:
        return {"moto": self.moto_port, "gcs": self.gcs_port, "prefect": self.prefect_port}[name]

    def base_url(self, name: str) -> str:
        return f"http://{self.host}:{self.port(name)}"

    def url(self, name: str) -> str:
        """The URL a client uses (Prefect's is the API root)."""
        return self.base_url(name) + ("/api" if name == "prefect" else "")

    def health_url(self, name: str) -> str:
        return self.base_url(name) + HEALTH_PATHS[name]

    @property
    def ui_url(self) -> str:
        return self.base_url("prefect")

    @property
    def prefect_home(self) -> Path:
        return self.state_dir / "prefect"

    def pid_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.log"


def _check_port(value: object, source: str) -> int:
    try:
        port = int(str(value))
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise ConfigError(
            f"{source}={value!r} is not a TCP port", f"set {source} to a number from 1 to 65535"
        )
    return port


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


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically by ``text``, mode 0600 in a 0700 directory."""
    private_dir(path.parent)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        fh.write(text)
    os.replace(temporary, path)


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (0700), however it was made before."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def credentials(config: SandboxConfig) -> tuple[str, str]:
    """This sandbox's AWS key pair, made once and kept (0600) in its state dir.

    moto accepts any key; distinct random values (not "testing") let the secrets
    scan prove that credentials never reach logs, artifacts or state.
    """
    path = config.state_dir / "credentials.json"
    try:
        stored = json.loads(path.read_text())
        return stored["access_key_id"], stored["secret_access_key"]
    except (FileNotFoundError, ValueError, KeyError):
        pass
    alphabet = string.ascii_uppercase + string.digits
    key_id = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    secret = secrets.token_urlsafe(30)
    write_private(path, json.dumps({"access_key_id": key_id, "secret_access_key": secret}))
    return credentials(config)  # whichever writer won a race


#: Enough auto-reviewers for production's two distinct approvals.
AUTO_REVIEWERS = 2


def auto_reviewer_name(nth: int) -> str:
    """The nth auto-approval's reviewer: sandbox-auto, sandbox-auto-2 (refused off the sandbox)."""
    from mirror_rollout.reviewer_keys import AUTO_REVIEWER

    return AUTO_REVIEWER if nth <= 1 else f"{AUTO_REVIEWER}-{nth}"


def auto_reviewer_key_path(reviewers_file: Path, nth: int) -> Path:
    return reviewers_file.parent / "reviewer-keys" / f"{auto_reviewer_name(nth)}.key"


def auto_reviewers(config: SandboxConfig) -> Path:
    """This sandbox's auto-reviewers: Ed25519 keys (0600) made once, and the registry file
    (``reviewers.yaml`` in the state dir) that the flow trusts on the sandbox backend only.

    Auto-approval signs like a person does; it is not a bypass of the registry.
    """
    import yaml

    from mirror_rollout.reviewer_keys import encode_public_key, new_key, read_key, write_key

    registry = private_dir(config.state_dir) / "reviewers.yaml"
    entries = []
    for nth in range(1, AUTO_REVIEWERS + 1):
        path = auto_reviewer_key_path(registry, nth)
        if not path.exists():
            with contextlib.suppress(ConfigError):  # another process made it first
                write_key(path, new_key(auto_reviewer_name(nth)))
        key = read_key(path)
        entries.append({"name": key.reviewer, "public_key": encode_public_key(key.public_key)})
    text = yaml.safe_dump({"reviewers": entries}, sort_keys=False)
    if not registry.exists() or registry.read_text() != text:
        write_private(registry, text)
    return registry


def api_auth_string(config: SandboxConfig) -> str:
    """The sandbox Prefect API's basic-auth string ("sandbox:<random>"), made once, kept 0600.

    The server requires it (PREFECT_SERVER_API_AUTH_STRING), clients send it
    (PREFECT_API_AUTH_STRING) and the UI asks for it at login: nobody else on the
    machine can resume a paused rollout.
    """
    path = config.state_dir / "prefect-auth"
    with contextlib.suppress(FileNotFoundError):
        stored = path.read_text().strip()
        if stored:
            return stored
    write_private(path, f"sandbox:{secrets.token_urlsafe(24)}\n")
    return api_auth_string(config)


def api_headers(config: SandboxConfig) -> dict[str, str]:
    import base64

    token = base64.b64encode(api_auth_string(config).encode()).decode()
    return {"Authorization": f"Basic {token}"}


def exports(config: SandboxConfig) -> dict[str, str]:
    """The variables a client (boto3, google-cloud-storage, Prefect) needs: loopback only."""
    if config.host not in LOOPBACK:
        raise ConfigError(f"sandbox host {config.host!r} is not loopback", "use 127.0.0.1")
    key_id, secret = credentials(config)
    return {
        "AWS_ENDPOINT_URL": config.url("moto"),
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": config.region,
        "AWS_REGION": config.region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "STORAGE_EMULATOR_HOST": config.url("gcs"),
        "GOOGLE_CLOUD_PROJECT": GCP_PROJECT,
        "PREFECT_API_URL": config.url("prefect"),
        "PREFECT_UI_URL": config.ui_url,
        "PREFECT_API_AUTH_STRING": api_auth_string(config),
        "MIRROR_ROLLOUT_SANDBOX_REVIEWERS": str(auto_reviewers(config)),
    }


#: Variables ``activate`` sets to the sandbox's own loopback servers (whatever they were).
SANDBOX_SETS = ("AWS_ENDPOINT_URL", "STORAGE_EMULATOR_HOST")

#: Variables that would point clients back at real accounts; ``activate`` drops them.
CONFLICTING_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "PREFECT_API_KEY")


def activate(config: SandboxConfig) -> dict[str, str | None]:
    """Point this process's clients at the sandbox.

    Returns the previous values (None = unset) so a caller can restore them.
    """
    previous: dict[str, str | None] = {}
    for key in CONFLICTING_ENV:
        if key in os.environ:
            previous[key] = os.environ.pop(key)
    for key, value in exports(config).items():
        previous.setdefault(key, os.environ.get(key))
        os.environ[key] = value
    return previous


def restore_env(previous: Mapping[str, str | None]) -> None:
    """Undo :func:`activate` with the mapping it returned."""
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def port_conflict(config: SandboxConfig, name: str) -> RolloutError:
    """The one-line error for a port taken by a process that is not ours."""
    port = config.port(name)
    return RolloutError(
        f"port {port} ({name}) is already in use by another process",
        f"stop it or choose another port with --{name}-port or {PORT_ENV[name]}",
    )


def find_conflicts(
    config: SandboxConfig, ours: Mapping[str, bool], in_use: Mapping[str, bool]
) -> list[RolloutError]:
    """Ports taken by something that is not a server we recorded (pure decision)."""
    return [port_conflict(config, n) for n in SERVERS if in_use.get(n) and not ours.get(n)]


# ----------------------------------------------------------------------------
# Status
# ----------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------
# Processes (thin)
# ----------------------------------------------------------------------------


@dataclass
class PidRecord:
    pid: int
    pgid: int
    port: int
    cmd: list[str]

    @classmethod
    def load(cls, path: Path) -> PidRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(int(data["pid"]), int(data["pgid"]), int(data["port"]), list(data["cmd"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__) + "\n")
        tmp.replace(path)


# Popen objects of servers started by this process, so they can be reaped.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def _alive(pid: int) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def is_ours(record: PidRecord) -> bool:
    """The recorded pid is alive and still runs the argv we started."""
    if not _alive(record.pid):
        return False
    tail = record.cmd[1:]  # the interpreter path may be shown resolved
    return _cmdline(record.pid)[-len(tail) :] == tail


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st and st[1] == pgid and st[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def port_in_use(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def healthy(config: SandboxConfig, name: str, timeout: float = 2.0) -> bool:
    try:
        r = httpx.get(config.health_url(name), timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return "\n".join("    " + ln for ln in tail) or "(log is empty)"


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


def _launch(
    config: SandboxConfig, name: str, cmd: list[str], env: dict[str, str], cwd: Path
) -> subprocess.Popen:
    """Start ``cmd`` in its own session, appending its output to ``name``'s log."""
    log = open(  # noqa: SIM115 - handed to the child
        os.open(config.log_file(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab"
    )
    try:
        log.write(f"\n--- {time.strftime('%F %T')} {shlex.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            # The Prefect database, result storage and run outputs are for this user only.
            umask=0o077,
        )
    finally:
        log.close()
    _CHILDREN[proc.pid] = proc
    return proc


def _start(config: SandboxConfig, name: str) -> PidRecord:
    cmd = server_command(config, name)
    if not Path(cmd[1]).exists():
        raise RolloutError(
            f"{EXECUTABLES[name]} not found next to {sys.executable}",
            "install the project with its dependencies: pip install -e .",
        )
    if name == "prefect":
        private_dir(config.prefect_home)
    proc = _launch(config, name, cmd, server_env(config, name, os.environ), config.state_dir)
    record = PidRecord(proc.pid, proc.pid, config.port(name), cmd)
    record.save(config.pid_file(name))
    return record


def _ensure_worker(config: SandboxConfig) -> ServerStatus:
    """Start the process worker for WORK_POOL unless ours is running (after the Prefect server)."""
    from mirror_rollout import PROJECT_ROOT

    label = f"work pool {WORK_POOL}"
    record = PidRecord.load(config.pid_file("worker"))
    if record is not None and is_ours(record):
        return ServerStatus("worker", label, record.pid, True, True, "reused")
    config.pid_file("worker").unlink(missing_ok=True)
    cmd = worker_command()
    proc = _launch(
        config, "worker", cmd, worker_env(config, os.environ, PROJECT_ROOT), PROJECT_ROOT
    )
    record = PidRecord(proc.pid, proc.pid, 0, cmd)
    record.save(config.pid_file("worker"))
    # The worker creates its pool on start; wait for it so `prefect deploy` finds it.
    pool_url = f"{config.url('prefect')}/work_pools/{WORK_POOL}"
    deadline = time.monotonic() + config.timeout
    while time.monotonic() < deadline and _alive(proc.pid):
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(pool_url, timeout=2.0, trust_env=False, headers=api_headers(config))
            if answer.status_code == 200:
                return ServerStatus("worker", label, proc.pid, True, True, "started")
        time.sleep(0.25)
    raise EndpointError(
        f"the Prefect worker did not create work pool {WORK_POOL}",
        f"see {config.log_file('worker')}; its last lines:\n{_log_tail(config.log_file('worker'))}",
    )


def _stop_worker(config: SandboxConfig) -> ServerStatus:
    record = PidRecord.load(config.pid_file("worker"))
    note = "not running"
    if record is not None and is_ours(record):
        _stop_group(record)
        note = "stopped"
    config.pid_file("worker").unlink(missing_ok=True)
    return ServerStatus(
        "worker", f"work pool {WORK_POOL}", record.pid if record else None, False, False, note
    )


def _stop_group(record: PidRecord, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the whole group, SIGKILL what is left after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(record.pid)
            if not _alive(record.pid) and not group_members(record.pgid):
                return
            time.sleep(0.1)
    _reap(record.pid)


def _reap(pid: int) -> None:
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        _CHILDREN.pop(pid, None)


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
            elif not _alive(records[name].pid):
                _reap(records[name].pid)
                return name
        if not pending:
            break
        if time.monotonic() > deadline:
            return sorted(pending, key=SERVERS.index)[0]
        time.sleep(0.25)
    return None


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
        if running and record.port != config.port(name):
            note = f"running on port {record.port}"
        out.append(
            ServerStatus(name, config.url(name), record.pid if running else None, running, ok, note)
        )
    record = PidRecord.load(config.pid_file("worker"))
    alive = record is not None and is_ours(record)
    out.append(
        ServerStatus(
            "worker", f"work pool {WORK_POOL}", record.pid if alive else None, alive, alive
        )
    )
    return out


def up(config: SandboxConfig) -> list[ServerStatus]:
    """Start whatever is not running yet and wait until all three are healthy."""
    with _locked(config):
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
            record = records[failed]
            exited = not _alive(record.pid)
            if not exited:
                _stop_group(record)
            config.pid_file(failed).unlink(missing_ok=True)
            how = "exited" if exited else f"did not answer within {config.timeout:.0f} s"
            raise EndpointError(
                f"{failed} server {how} ({config.health_url(failed)})",
                f"see {config.log_file(failed)}; its last lines:\n{_log_tail(config.log_file(failed))}",
            )

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


def down(config: SandboxConfig) -> list[ServerStatus]:
    """Stop the servers this state dir recorded (whole process groups); remove pid files."""
    out = []
    with _locked(config):
        out.append(_stop_worker(config))
        for name in reversed(SERVERS):
            path = config.pid_file(name)
            record = PidRecord.load(path)
            note = "not running"
            if record is not None:
                if is_ours(record):
                    _stop_group(record)
                    note = "stopped"
                else:
                    # Leader gone; kill leftovers of its group that run our interpreter.
                    for pid in group_members(record.pgid):
                        if _cmdline(pid)[:1] == record.cmd[:1]:
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(pid, signal.SIGKILL)
                            note = "stopped leftovers"
            path.unlink(missing_ok=True)
            out.append(
                ServerStatus(
                    name, config.url(name), record.pid if record else None, False, False, note
                )
            )
    return list(reversed(out[1:])) + out[:1]


# ----------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------

app = typer.Typer(
    name="sandbox",
    help="The embedded sandbox: moto (AWS), gcp-storage-emulator (GCS) and a Prefect server.",
    no_args_is_help=True,
    add_completion=False,
)

StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help=f"Pid files, logs and PREFECT_HOME [env {STATE_DIR_ENV}; default {DEFAULT_STATE_DIR}]",
    ),
]
MotoPortOpt = Annotated[
    int | None, typer.Option("--moto-port", help=f"[env {PORT_ENV['moto']}; default 5055]")
]
GcsPortOpt = Annotated[
    int | None, typer.Option("--gcs-port", help=f"[env {PORT_ENV['gcs']}; default 9023]")
]
PrefectPortOpt = Annotated[
    int | None, typer.Option("--prefect-port", help=f"[env {PORT_ENV['prefect']}; default 4200]")
]


def _consoles():
    from rich.console import Console

    return Console(), Console(stderr=True)


def _fail(err: RolloutError) -> typer.Exit:
    from rich.text import Text

    _, errc = _consoles()
    errc.print(Text("error: ", style="red") + Text(err.line()), soft_wrap=True)
    return typer.Exit(2)


def _table(statuses: Sequence[ServerStatus]):
    from rich.table import Table

    table = Table("server", "url", "pid", "health", "note", title="mirror-rollout sandbox")
    for name, url, pid, state, note in status_rows(statuses):
        style = {"healthy": "green", "unhealthy": "yellow"}.get(state, "red")
        table.add_row(name, url, pid, f"[{style}]{state}[/]", note)
    return table


def _export_lines(config: SandboxConfig) -> str:
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in exports(config).items())


@app.command("up")
def up_cmd(
    state_dir: StateDirOpt = None,
    moto_port: MotoPortOpt = None,
    gcs_port: GcsPortOpt = None,
    prefect_port: PrefectPortOpt = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each server to answer.")
    ] = DEFAULT_TIMEOUT,
) -> None:
    """Start the sandbox (reusing servers already up) and print `export` lines.

    The table goes to stderr and the exports to stdout, so
    `eval "$(mirror-rollout sandbox up)"` works.
    """
    try:
        config = SandboxConfig.resolve(
            state_dir=state_dir,
            moto_port=moto_port,
            gcs_port=gcs_port,
            prefect_port=prefect_port,
            timeout=timeout,
        )
        statuses = up(config)
    except RolloutError as err:
        raise _fail(err) from None
    _, errc = _consoles()
    errc.print(_table(statuses))
    errc.print(f"Prefect UI: {config.ui_url}", soft_wrap=True)
    print(_export_lines(config))


@app.command("down")
def down_cmd(
    state_dir: StateDirOpt = None,
    moto_port: MotoPortOpt = None,
    gcs_port: GcsPortOpt = None,
    prefect_port: PrefectPortOpt = None,
) -> None:
    """Stop the servers started from this state dir."""
    try:
        config = SandboxConfig.resolve(
            state_dir=state_dir, moto_port=moto_port, gcs_port=gcs_port, prefect_port=prefect_port
        )
        statuses = down(config)
    except RolloutError as err:
        raise _fail(err) from None
    out, _ = _consoles()
    for s in statuses:
        out.print(f"{s.name}: {s.note}" + (f" (pid {s.pid})" if s.pid else ""), soft_wrap=True)


@app.command("status")
def status_cmd(
    state_dir: StateDirOpt = None,
    moto_port: MotoPortOpt = None,
    gcs_port: GcsPortOpt = None,
    prefect_port: PrefectPortOpt = None,
) -> None:
    """Show each server; exit 1 if any is not healthy."""
    try:
        config = SandboxConfig.resolve(
            state_dir=state_dir, moto_port=moto_port, gcs_port=gcs_port, prefect_port=prefect_port
        )
        statuses = status(config)
    except RolloutError as err:
        raise _fail(err) from None
    out, _ = _consoles()
    out.print(_table(statuses))
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


@app.command("env")
def env_cmd(
    state_dir: StateDirOpt = None,
    moto_port: MotoPortOpt = None,
    gcs_port: GcsPortOpt = None,
    prefect_port: PrefectPortOpt = None,
) -> None:
    """Print the `export` lines for clients (eval "$(mirror-rollout sandbox env)")."""
    try:
        config = SandboxConfig.resolve(
            state_dir=state_dir, moto_port=moto_port, gcs_port=gcs_port, prefect_port=prefect_port
        )
    except RolloutError as err:
        raise _fail(err) from None
    print(_export_lines(config))
