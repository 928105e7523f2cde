"""The `mirror-rollout` command: sandbox, guardrails and (later) the rollout itself."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mirror_rollout.errors import RolloutError

app = typer.Typer(
    help="Take the Phase Mirror infrastructure from Terraform to a verified environment, reviewed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

EnvOption = Annotated[str, typer.Option("--env", "-e", help="staging or production")]
RootOption = Annotated[
    Path | None,
    typer.Option("--root", help="project root holding infra/ (default: this checkout)"),
]


def _mount_sandbox() -> None:
    from mirror_rollout.sandbox import app as sandbox_app

    app.add_typer(
        sandbox_app,
        name="sandbox",
        help="Start, stop and inspect the local sandbox (moto, GCS emulator, Prefect).",
    )


_mount_sandbox()


@app.command()
def guardrails(env: EnvOption = "staging", root: RootOption = None) -> None:
    """Check the L0 invariants of infra/terraform and infra/gcp before any plan."""
    from tasks.guardrails.report import rich_table, summary
    from tasks.guardrails.task import evaluate_guardrails

    results = evaluate_guardrails(env, root)
    console.print(rich_table(results, f"guardrails — {env}"))
    failed = any(r.blocking for r in results)
    console.print(("[red]" if failed else "[green]") + summary(results))
    raise typer.Exit(1 if failed else 0)


def main() -> None:
    try:
        app()
    except RolloutError as exc:
        err_console.print(f"[red]error:[/] {exc.line()}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
