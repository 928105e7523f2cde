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
        env: Mapping[str, str] | None = None,
    ) -> SandboxConfig:
        """Explicit arguments (CLI options) win over env vars, which win over defaults.

        The startup timeout is no setting of its own: ``dataclasses.replace`` changes it.
        """
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
