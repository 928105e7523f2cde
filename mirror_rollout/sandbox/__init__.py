"""The embedded sandbox: moto (AWS), gcp-storage-emulator (GCS) and a Prefect server with its worker.

- :mod:`~mirror_rollout.sandbox.config`: where it lives and which ports it uses (pure);
- :mod:`~mirror_rollout.sandbox.access`: the key pair, the Prefect auth string and the
  variables a client needs (:func:`exports`, :func:`activate`);
- :mod:`~mirror_rollout.sandbox.reviewers`: the auto-reviewers' keys and registry;
- :mod:`~mirror_rollout.sandbox.processes`: pid records and process groups;
- :mod:`~mirror_rollout.sandbox.postgres`: the PostgreSQL server of ``--database postgres``;
- :mod:`~mirror_rollout.sandbox.supervisor`: ``up``, ``down`` and ``status``.

The ``mirror-rollout sandbox`` commands are in :mod:`console.sandbox`. Callers import
from here; the submodules are how the code is laid out, not a separate interface.
"""

from mirror_rollout.sandbox.access import (
    CONFLICTING_ENV,
    SANDBOX_SETS,
    activate,
    api_auth_string,
    api_headers,
    credentials,
    exports,
    restore_env,
)
from mirror_rollout.sandbox.config import (
    ALL_SERVERS,
    DATABASES,
    DEFAULT_PORTS,
    DEFAULT_STATE_DIR,
    DEFAULT_TIMEOUT,
    PORT_ENV,
    RUNS_PER_WORKER_ENV,
    SERVERS,
    STATE_DIR_ENV,
    WORK_POOL,
    WORKER_NAME_ENV,
    SandboxConfig,
    find_conflicts,
    port_conflict,
    worker_key,
    worker_name,
)
from mirror_rollout.sandbox.private import private_dir, write_private
from mirror_rollout.sandbox.processes import (
    PidRecord,
    alive,
    cmdline,
    group_members,
    is_ours,
    port_in_use,
    process_env,
)
from mirror_rollout.sandbox.reviewers import (
    AUTO_REVIEWERS,
    auto_reviewer_key_path,
    auto_reviewer_name,
    auto_reviewers,
)
from mirror_rollout.sandbox.supervisor import (
    ServerStatus,
    bootstrap_state_backend,
    database_of,
    down,
    healthy,
    server_command,
    server_env,
    status,
    status_rows,
    up,
    worker_command,
    worker_env,
)

__all__ = [
    "ALL_SERVERS",
    "AUTO_REVIEWERS",
    "CONFLICTING_ENV",
    "DATABASES",
    "DEFAULT_PORTS",
    "DEFAULT_STATE_DIR",
    "DEFAULT_TIMEOUT",
    "PORT_ENV",
    "RUNS_PER_WORKER_ENV",
    "SANDBOX_SETS",
    "SERVERS",
    "STATE_DIR_ENV",
    "WORKER_NAME_ENV",
    "WORK_POOL",
    "PidRecord",
    "SandboxConfig",
    "ServerStatus",
    "activate",
    "alive",
    "api_auth_string",
    "api_headers",
    "auto_reviewer_key_path",
    "auto_reviewer_name",
    "auto_reviewers",
    "bootstrap_state_backend",
    "cmdline",
    "credentials",
    "database_of",
    "down",
    "exports",
    "find_conflicts",
    "group_members",
    "healthy",
    "is_ours",
    "port_conflict",
    "port_in_use",
    "private_dir",
    "process_env",
    "restore_env",
    "server_command",
    "server_env",
    "status",
    "status_rows",
    "up",
    "worker_command",
    "worker_env",
    "worker_key",
    "worker_name",
    "write_private",
]
