"""The sandbox's own PostgreSQL server, the Prefect server's database with --database postgres.

Its cluster lives in the state dir (``<state>/postgres``, 0700), made once by ``initdb``
with password (scram-sha-256) authentication for the role ``prefect``. The password is
generated then and kept in two 0600 files only: ``postgres-password`` and the
``postgres.pgpass`` that the Prefect server reads through ``PGPASSFILE``. So the connection
URL the Prefect server gets names no password, and no log, status line, export or error
ever holds it.

PostgreSQL refuses to run as root. Run as root (a CI container), its commands run in a
user namespace (``unshare``) in which they are the ``postgres`` user: the files stay
root's and 0700, and nobody else on the machine can enter them.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from mirror_rollout.errors import ConfigError, EndpointError, RolloutError
from mirror_rollout.sandbox.config import POSTGRES_DB, POSTGRES_USER, SandboxConfig
from mirror_rollout.sandbox.private import private_dir, write_private
from mirror_rollout.sandbox.processes import PidRecord, launch, log_tail

#: Where Debian's postgresql packages put the server binaries (off PATH).
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
MISSING_HINT = (
    "install postgresql (apt-get install postgresql) or put its initdb and postgres on PATH, "
    "or use the default --database sqlite"
)
# The kernel's limit on a unix socket's path (sun_path), terminating NUL included.
SOCKET_PATH_MAX = 107


@dataclass(frozen=True)
class PostgresBinaries:
    initdb: Path
    postgres: Path
    pg_isready: Path


def find_binaries(path: str | None = None, debian_glob: str = DEBIAN_BIN_GLOB) -> PostgresBinaries:
    """initdb, postgres and pg_isready of one installation: on PATH, else Debian's newest."""
    on_path = shutil.which("initdb", path=path)
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(map(Path, glob.glob(debian_glob)), key=_version, reverse=True)
    for bin_dir in candidates:
        found = [bin_dir / name for name in ("initdb", "postgres", "pg_isready")]
        if all(path.is_file() for path in found):
            return PostgresBinaries(*found)
    raise RolloutError(
        f"PostgreSQL's initdb, postgres and pg_isready were found neither on PATH nor in {debian_glob}",
        MISSING_HINT,
    )


def _version(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", bin_dir.parent.name)) or (0,)


def as_cluster_owner(cmd: list[str]) -> list[str]:
    """``cmd`` as a user PostgreSQL accepts: itself, or (for root) in a user namespace."""
    if os.geteuid() != 0:
        return cmd
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RolloutError(
            "PostgreSQL refuses to run as root and unshare (util-linux) is missing",
            "run the sandbox as a normal user, or install util-linux",
        )
    user = _namespace_user()
    return [unshare, "--user", f"--map-user={user}", f"--map-group={user}", "--", *cmd]


def _namespace_user() -> str:
    """The (non-root) user name initdb and postgres look themselves up as."""
    for name in ("postgres", "nobody"):
        with suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RolloutError(
        "PostgreSQL refuses to run as root and there is no postgres or nobody user to map root to",
        "run the sandbox as a normal user",
    )


def password(config: SandboxConfig) -> str:
    """The ``prefect`` role's password: generated once, kept 0600 in the state dir."""
    path = config.state_dir / "postgres-password"
    with suppress(FileNotFoundError):
        stored = path.read_text().strip()
        if stored:
            return stored
    # URL-safe characters need no escaping in a pgpass line or a connection URL.
    write_private(path, secrets.token_urlsafe(32) + "\n")
    return password(config)


def passfile(config: SandboxConfig) -> Path:
    """The pgpass file the Prefect server's asyncpg reads the password from (PGPASSFILE)."""
    path = config.state_dir / "postgres.pgpass"
    line = f"{config.host}:{config.postgres_port}:{POSTGRES_DB}:{POSTGRES_USER}:{password(config)}"
    write_private(path, line + "\n")
    return path


def connection_url(config: SandboxConfig) -> str:
    """Prefect's database URL; the password comes from :func:`passfile`, not from here."""
    return (
        f"postgresql+asyncpg://{POSTGRES_USER}@{config.host}:{config.postgres_port}/{POSTGRES_DB}"
    )


def server_command(config: SandboxConfig, binaries: PostgresBinaries) -> list[str]:
    """The postmaster's argv: loopback only, its own port, its socket in the state dir."""
    socket_path = config.state_dir / f".s.PGSQL.{config.postgres_port}"
    if len(str(socket_path)) >= SOCKET_PATH_MAX:
        raise ConfigError(
            f"the state dir {config.state_dir} is too long a path for PostgreSQL's unix socket",
            "choose a shorter --state-dir",
        )
    return [
        str(binaries.postgres),
        "-D",
        str(config.postgres_data),
        "-p",
        str(config.postgres_port),
        "-c",
        f"listen_addresses={config.host}",
        "-c",
        f"unix_socket_directories={config.state_dir}",
        "-c",
        "unix_socket_permissions=0700",
    ]


def server_env(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` without libpq's PG* variables (PGDATA, PGPORT...), which would misdirect it."""
    return {k: v for k, v in base.items() if not k.startswith("PG")}


def start(config: SandboxConfig) -> PidRecord:
    """Make the cluster if needed, then launch the postmaster in its own process group."""
    binaries = find_binaries()
    ensure_cluster(config, binaries)
    cmd = server_command(config, binaries)
    proc = launch(
        as_cluster_owner(cmd), server_env(os.environ), config.state_dir, config.log_file("postgres")
    )
    # unshare execs postgres in place: /proc shows postgres's argv under the same pid.
    record = PidRecord(proc.pid, proc.pid, config.postgres_port, cmd)
    record.save(config.pid_file("postgres"))
    return record


def ensure_cluster(config: SandboxConfig, binaries: PostgresBinaries) -> None:
    """initdb the data dir (password auth, database ``prefect``) unless it was made before.

    The cluster is made aside and renamed into place, so a half-made one is never used.
    """
    data = config.postgres_data
    if (data / "PG_VERSION").exists():
        if not (config.state_dir / "postgres-password").exists():
            raise RolloutError(
                f"the password of the PostgreSQL cluster in {data} is gone",
                f"run `mirror-rollout sandbox down`, delete {data} and start again "
                "(Prefect's history in it goes too)",
            )
        return
    making = data.with_name("postgres.initdb")
    shutil.rmtree(making, ignore_errors=True)
    private_dir(config.state_dir)
    pwfile = config.state_dir / "postgres-password"
    password(config)
    initdb = [
        str(binaries.initdb),
        *("-D", str(making), "-U", POSTGRES_USER, f"--pwfile={pwfile}"),
        *("--auth=scram-sha-256", "--encoding=UTF8", "--no-locale"),
    ]
    _run_once(config, initdb, "")
    # Single-user mode: the database exists before any port is open.
    single = [str(binaries.postgres), "--single", "-D", str(making), "postgres"]
    _run_once(config, single, f"CREATE DATABASE {POSTGRES_DB};\n")
    making.rename(data)


def _run_once(config: SandboxConfig, cmd: list[str], stdin: str) -> None:
    log_file = config.log_file("postgres")
    with open(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
        log.write(f"\n--- {shlex.join(cmd)}\n".encode())
        log.flush()
        done = subprocess.run(
            as_cluster_owner(cmd),
            input=stdin.encode(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(os.environ),
            cwd=config.state_dir,
            umask=0o077,
            check=False,
        )
    if done.returncode != 0:
        raise EndpointError(
            f"{Path(cmd[0]).name} could not make the sandbox's PostgreSQL cluster "
            f"(exit {done.returncode})",
            f"see {log_file}; its last lines:\n{log_tail(log_file)}",
        )


def ready(config: SandboxConfig, timeout: float = 2.0) -> bool:
    """The server accepts connections, as ``pg_isready`` says (exit 0).

    pg_isready hangs up before authenticating: no failed login, nothing in the log.
    """
    try:
        binaries = find_binaries()
    except RolloutError:
        return False
    done = subprocess.run(
        [
            str(binaries.pg_isready),
            *("--host", config.host, "--port", str(config.postgres_port)),
            *("--username", POSTGRES_USER, "--dbname", POSTGRES_DB),
            *("--timeout", str(max(1, round(timeout))), "--quiet"),
        ],
        env=server_env(os.environ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout + 5,
        check=False,
    )
    return done.returncode == 0
