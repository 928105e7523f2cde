"""Where the sandbox lives and which ports it uses (pure: no I/O).

Explicit arguments (CLI options) win over environment variables, which win over
the defaults; :meth:`SandboxConfig.resolve` checks every port before anything starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mirror_rollout.errors import ConfigError, RolloutError
from mirror_rollout.target import DEFAULT_REGION

#: The servers of the default (SQLite) sandbox, in start order.
SERVERS: tuple[str, ...] = ("moto", "gcs", "prefect")
#: Every server a sandbox may run, in start order (PostgreSQL only with --database postgres).
ALL_SERVERS: tuple[str, ...] = ("moto", "gcs", "postgres", "prefect")
#: The Prefect server's database: its own SQLite file, or a local PostgreSQL server.
DATABASES: tuple[str, ...] = ("sqlite", "postgres")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORTS: dict[str, int] = {"moto": 5055, "gcs": 9023, "postgres": 5433, "prefect": 4200}
DEFAULT_STATE_DIR = Path("~/.local/state/mirror-rollout/sandbox")
DEFAULT_TIMEOUT = 120.0
#: GCP project used for health checks and exported to clients.
GCP_PROJECT = "sandbox"

PORT_ENV: dict[str, str] = {
    "moto": "MIRROR_ROLLOUT_MOTO_PORT",
    "gcs": "MIRROR_ROLLOUT_GCS_PORT",
    "postgres": "MIRROR_ROLLOUT_POSTGRES_PORT",
    "prefect": "MIRROR_ROLLOUT_PREFECT_PORT",
}
STATE_DIR_ENV = "MIRROR_ROLLOUT_SANDBOX_DIR"
#: Flow runs each worker runs at once (unset: no limit). With a limit, the runs beyond it
#: go to the pool's other workers instead of all to the worker that polls first.
RUNS_PER_WORKER_ENV = "MIRROR_ROLLOUT_RUNS_PER_WORKER"

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

#: The Prefect work pool the sandbox's workers serve (prefect.yaml's deployments use it).
WORK_POOL = "mirror-rollout"
#: Set in each worker's environment (and so in its flow runs) to that worker's name.
WORKER_NAME_ENV = "MIRROR_ROLLOUT_WORKER"


@dataclass(frozen=True)
class SandboxConfig:
    """Where the sandbox lives and which ports it uses."""

    state_dir: Path = field(default_factory=lambda: DEFAULT_STATE_DIR.expanduser())
    moto_port: int = DEFAULT_PORTS["moto"]
    gcs_port: int = DEFAULT_PORTS["gcs"]
    prefect_port: int = DEFAULT_PORTS["prefect"]
    postgres_port: int = DEFAULT_PORTS["postgres"]
    database: str = "sqlite"
    workers: int = 1
    #: Flow runs each worker runs at once (None: no limit, Prefect's default).
    runs_per_worker: int | None = None
    host: str = DEFAULT_HOST
    region: str = DEFAULT_REGION
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers} starts no worker", "give 1 or more")
        if self.runs_per_worker is not None and self.runs_per_worker < 1:
            raise ConfigError(
                f"{RUNS_PER_WORKER_ENV}={self.runs_per_worker} lets no flow run start",
                "set it to 1 or more, or unset it for no limit",
            )

    @classmethod
    def resolve(
        cls,
        *,
        state_dir: Path | str | None = None,
        moto_port: int | None = None,
        gcs_port: int | None = None,
        prefect_port: int | None = None,
        postgres_port: int | None = None,
        database: str = "sqlite",
        env: Mapping[str, str] | None = None,
    ) -> SandboxConfig:
        """Explicit arguments (CLI options) win over env vars, which win over defaults.

        The startup timeout and the workers are no settings of their own (they locate
        nothing): ``dataclasses.replace`` changes them.
        """
        env = os.environ if env is None else env
        explicit = {
            "moto": moto_port,
            "gcs": gcs_port,
            "postgres": postgres_port,
            "prefect": prefect_port,
        }
        ports = {name: _resolve_port(name, explicit[name], env) for name in ALL_SERVERS}
        _check_database(database)
        _check_distinct_ports({n: ports[n] for n in servers_of(database)})
        if state_dir is None:
            state_dir = env.get(STATE_DIR_ENV, "").strip() or DEFAULT_STATE_DIR
        runs_per_worker = env.get(RUNS_PER_WORKER_ENV, "").strip()
        return cls(
            state_dir=Path(state_dir).expanduser().absolute(),
            moto_port=ports["moto"],
            gcs_port=ports["gcs"],
            prefect_port=ports["prefect"],
            postgres_port=ports["postgres"],
            database=database,
            runs_per_worker=_positive(runs_per_worker, RUNS_PER_WORKER_ENV)
            if runs_per_worker
            else None,
        )

    @property
    def servers(self) -> tuple[str, ...]:
        """The servers this sandbox runs, in start order."""
        return servers_of(self.database)

    def port(self, name: str) -> int:
        return {
            "moto": self.moto_port,
            "gcs": self.gcs_port,
            "postgres": self.postgres_port,
            "prefect": self.prefect_port,
        }[name]

    def base_url(self, name: str) -> str:
        return f"http://{self.host}:{self.port(name)}"

    def url(self, name: str) -> str:
        """The URL a client uses (Prefect's is the API root; PostgreSQL's names no password)."""
        if name == "postgres":
            return f"postgresql://{POSTGRES_USER}@{self.host}:{self.postgres_port}/{POSTGRES_DB}"
        return self.base_url(name) + ("/api" if name == "prefect" else "")

    def health_url(self, name: str) -> str:
        """Where its health is checked (PostgreSQL's: its protocol, at its URL)."""
        if name == "postgres":
            return self.url(name)
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

    @property
    def postgres_data(self) -> Path:
        """PostgreSQL's data directory (made once by initdb, 0700)."""
        return self.state_dir / "postgres"


def servers_of(database: str) -> tuple[str, ...]:
    return ALL_SERVERS if database == "postgres" else SERVERS


def worker_key(number: int) -> str:
    """Pid/log file stem and status row of worker ``number`` (1-based).

    The first keeps the plain ``worker`` name it had before --workers, so a running
    sandbox started then is still found (and stopped) now.
    """
    return "worker" if number == 1 else f"worker-{number}"


def worker_name(number: int) -> str:
    """The name worker ``number`` has in Prefect (``prefect worker start --name``)."""
    return f"sandbox-worker-{number}"


#: The PostgreSQL role and database of the Prefect server.
POSTGRES_USER = "prefect"
POSTGRES_DB = "prefect"


def _resolve_port(name: str, explicit: int | None, env: Mapping[str, str]) -> int:
    if explicit is not None:
        return _check_port(explicit, f"--{name}-port")
    if env.get(PORT_ENV[name], "").strip():
        return _check_port(env[PORT_ENV[name]].strip(), PORT_ENV[name])
    return DEFAULT_PORTS[name]


def _positive(value: str, source: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(
            f"{source}={value!r} is not a number of flow runs", f"set {source} to 1 or more"
        )
    return int(value)


def _check_database(database: str) -> None:
    if database not in DATABASES:
        raise ConfigError(
            f"--database {database!r} is not a database the sandbox runs",
            "use --database sqlite (the default) or --database postgres",
        )


def _check_distinct_ports(ports: Mapping[str, int]) -> None:
    values = list(ports.values())
    dupes = {p for p in values if values.count(p) > 1}
    if dupes:
        names = ", ".join(n for n in ports if ports[n] in dupes)
        options = " / ".join(f"--{n}-port" for n in ports)
        raise ConfigError(
            f"sandbox servers {names} are all given port {min(dupes)}",
            f"give each server its own port with {options}",
        )


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
    return [port_conflict(config, n) for n in config.servers if in_use.get(n) and not ours.get(n)]
