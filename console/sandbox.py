"""`mirror-rollout sandbox up|down|status|env`: the sandbox's commands (mounted by console.main).

Errors are one red line on stderr and exit 2; `status` exits 1 when a server is not healthy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mirror_rollout.errors import RolloutError
from mirror_rollout.sandbox import (
    DATABASES,
    DEFAULT_PORTS,
    DEFAULT_STATE_DIR,
    DEFAULT_TIMEOUT,
    PORT_ENV,
    RUNS_PER_WORKER_ENV,
    SANDBOX_SETS,
    STATE_DIR_ENV,
    SandboxConfig,
    ServerStatus,
    activate,
    down,
    exports,
    status,
    status_rows,
    up,
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
PostgresPortOpt = Annotated[
    int | None,
    typer.Option(
        "--postgres-port",
        help=f"PostgreSQL's port with --database postgres "
        f"[env {PORT_ENV['postgres']}; default {DEFAULT_PORTS['postgres']}]",
    ),
]
DatabaseOpt = Annotated[
    str,
    typer.Option(
        "--database",
        help=f"The Prefect server's database: {' or '.join(DATABASES)} "
        "(a local PostgreSQL server in the state dir).",
    ),
]
WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        help="Process workers on the mirror-rollout work pool [flow runs each runs at once: "
        f"env {RUNS_PER_WORKER_ENV}; default no limit]",
    ),
]


#: Its help as `mirror-rollout sandbox` (console.main mounts it).
MOUNTED_HELP = (
    "Start, stop and inspect the local sandbox (moto, GCS emulator, Prefect, "
    "optionally PostgreSQL)."
)

app = typer.Typer(
    name="sandbox",
    help="The embedded sandbox: moto (AWS), gcp-storage-emulator (GCS) and a Prefect server.",
    no_args_is_help=True,
    add_completion=False,
)


@contextlib.contextmanager
def _exit_2_on_error() -> Iterator[None]:
    """A RolloutError becomes its one line on stderr and exit 2, never a traceback."""
    try:
        yield
    except RolloutError as err:
        Console(stderr=True).print(Text("error: ", style="red") + Text(err.line()), soft_wrap=True)
        raise typer.Exit(2) from None


def _table(statuses: Sequence[ServerStatus]) -> Table:
    table = Table("server", "url", "pid", "health", "note", title="mirror-rollout sandbox")
    for name, url, pid, state, note in status_rows(statuses):
        style = {"healthy": "green", "unhealthy": "yellow"}.get(state, "red")
        table.add_row(name, url, pid, f"[{style}]{state}[/]", note)
    return table


def _print_exports(config: SandboxConfig) -> None:
    print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in exports(config).items()))


@app.command("up")
def up_cmd(
    state_dir: StateDirOpt = None,
    moto_port: MotoPortOpt = None,
    gcs_port: GcsPortOpt = None,
    prefect_port: PrefectPortOpt = None,
    postgres_port: PostgresPortOpt = None,
    database: DatabaseOpt = "sqlite",
    workers: WorkersOpt = 1,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each server to answer.")
    ] = DEFAULT_TIMEOUT,
) -> None:
    """Start the sandbox (reusing servers already up) and print `export` lines.

    The table goes to stderr and the exports to stdout, so
    `eval "$(mirror-rollout sandbox up)"` works.
    """
    with _exit_2_on_error():
        ports = (moto_port, gcs_port, prefect_port, postgres_port)
        located = _locate(state_dir, ports, database=database)
        config = dataclasses.replace(located, timeout=float(timeout), workers=workers)
        statuses = up(config)
    errc = Console(stderr=True)
    errc.print(_table(statuses))
    errc.print(f"Prefect UI: {config.ui_url}", soft_wrap=True)
    _print_exports(config)


def _locate(
    state_dir: Path | None, ports: tuple[int | None, ...], database: str = "sqlite"
) -> SandboxConfig:
    """The sandbox the options name: its state dir and (moto, gcs, prefect, postgres) ports."""
    moto, gcs, prefect, postgres = ports
    return SandboxConfig.resolve(
        state_dir=state_dir,
        moto_port=moto,
        gcs_port=gcs,
        prefect_port=prefect,
        postgres_port=postgres,
        database=database,
    )


def _command(name: str, action: Callable[[SandboxConfig], None]) -> None:
    """Register ``action`` as command ``name``, with the options that locate a sandbox."""

    @app.command(name, help=action.__doc__)
    def command(
        state_dir: StateDirOpt = None,
        moto_port: MotoPortOpt = None,
        gcs_port: GcsPortOpt = None,
        prefect_port: PrefectPortOpt = None,
        postgres_port: PostgresPortOpt = None,
    ) -> None:
        with _exit_2_on_error():
            action(_locate(state_dir, (moto_port, gcs_port, prefect_port, postgres_port)))


def _down(config: SandboxConfig) -> None:
    """Stop the servers started from this state dir."""
    out = Console()
    for s in down(config):
        out.print(f"{s.name}: {s.note}" + (f" (pid {s.pid})" if s.pid else ""), soft_wrap=True)


def _status(config: SandboxConfig) -> None:
    """Show each server; exit 1 if any is not healthy."""
    statuses = status(config)
    Console().print(_table(statuses))
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


def _env(config: SandboxConfig) -> None:
    """Print the `export` lines for clients (eval "$(mirror-rollout sandbox env)")."""
    _print_exports(config)


_command("down", _down)
_command("status", _status)
_command("env", _env)


def start_for_rehearsal(console: Console) -> str:
    """Bring the sandbox up (or reuse it) and point this process at it; its Prefect UI's URL."""
    from mirror_rollout.settings import check_sandbox_isolation

    # Before the sandbox starts (its bootstrap calls moto): endpoints it would not override.
    check_sandbox_isolation({k: v for k, v in os.environ.items() if k not in SANDBOX_SETS})
    config = SandboxConfig.resolve()
    console.print("[bold]sandbox[/]: starting or reusing moto, the GCS emulator and Prefect …")
    up(config)
    activate(config)
    return config.ui_url
