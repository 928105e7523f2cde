"""The `mirror-rollout` command: sandbox, guardrails and (later) the rollout itself."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from console.errors import as_rollout_error
from console.sandbox import MOUNTED_HELP
from console.sandbox import app as sandbox_app
from mirror_rollout.errors import ConfigError, RolloutError

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


app.add_typer(sandbox_app, name="sandbox", help=MOUNTED_HELP)


PlanOption = Annotated[
    Path | None,
    typer.Option("--plan", help="a `terraform show -json` file: also run the plan guardrails"),
]


@app.command()
def guardrails(
    env: EnvOption = "staging", root: RootOption = None, plan: PlanOption = None
) -> None:
    """Check the invariants of infra/terraform and infra/gcp; with --plan, also the plan's values."""
    from mirror_rollout import PROJECT_ROOT
    from mirror_rollout.environments import parse_environment
    from tasks.guardrails.checks import run_static_checks
    from tasks.guardrails.plan_checks import load_plan_file, read_plan, run_plan_checks
    from tasks.guardrails.report import rich_table, summary
    from tasks.guardrails.view import load_view

    env = parse_environment(env, root)
    # A bad plan file is reported before anything runs.
    planned = read_plan(load_plan_file(plan), env) if plan is not None else None
    results = run_static_checks(load_view(env, root or PROJECT_ROOT))
    console.print(rich_table(results, f"guardrails — {env}"))
    if planned is not None:
        plan_results = run_plan_checks(planned)
        console.print(rich_table(plan_results, f"plan guardrails — {env} ({plan})"))
        results = results + plan_results
    failed = any(r.blocking for r in results)
    console.print(("[red]" if failed else "[green]") + summary(results))
    raise typer.Exit(1 if failed else 0)


@app.command()
def rehearse(
    env: EnvOption = "staging",
    backend: Annotated[str, typer.Option(help="sandbox (default) or aws")] = "sandbox",
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="approve as sandbox-auto (sandbox only)")
    ] = False,
    approval_timeout: Annotated[int, typer.Option(help="seconds to wait for approval")] = 3600,
    busy_wait: Annotated[
        int,
        typer.Option(
            help="seconds to wait while another rollout of the environment runs (0: fail at once)"
        ),
    ] = 3600,
    root: RootOption = None,
) -> None:
    """Bring the sandbox up if needed and run infra-rollout on it, with live progress."""
    from console.rehearsal import rehearse as run_rehearsal
    from console.sandbox import start_for_rehearsal
    from mirror_rollout.settings import validate_settings

    if backend not in ("sandbox", "aws"):
        raise RolloutError(f"unknown backend {backend!r}", "use --backend sandbox or --backend aws")
    # Every value is checked before the sandbox starts or a run is created.
    validate_settings(
        environment=env,
        backend=backend,
        approval_timeout_seconds=approval_timeout,
        busy_wait_seconds=busy_wait,
        root=root,
    )
    if auto_approve:
        from mirror_rollout.target import check_auto_approve

        check_auto_approve(backend)
    if backend == "sandbox":
        ui_url = start_for_rehearsal(console)
    else:
        ui_url = os.environ.get("PREFECT_UI_URL", "").rstrip("/") or "(your Prefect UI)"
    code, _ = run_rehearsal(
        env,
        backend,
        auto_approve,
        ui_url,
        console,
        approval_timeout_seconds=approval_timeout,
        busy_wait_seconds=busy_wait,
        root=str(root.absolute()) if root else None,
    )
    raise typer.Exit(code)


KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key", help="your private key file (from `mirror-rollout reviewer new`): signs the answer"
    ),
]
RejectOption = Annotated[bool, typer.Option("--reject", help="reject the plan instead")]
AllowDestroyOption = Annotated[
    bool,
    typer.Option(
        "--allow-destroy", help="needed for plans that delete or replace stateful resources"
    ),
]
Sha256Option = Annotated[
    str | None, typer.Option(help="the plan sha256 you reviewed (default: the run's plan)")
]


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="the paused flow run's id")],
    reviewer: Annotated[
        str | None,
        typer.Option(help="your name, recorded with the approval (default: the key's name)"),
    ] = None,
    key: KeyOption = None,
    reject: RejectOption = False,
    comment: Annotated[str, typer.Option(help="why")] = "",
    allow_destroy: AllowDestroyOption = False,
    sha256: Sha256Option = None,
    wait: Annotated[
        float, typer.Option(help="seconds to wait for the flow's decision on the answer")
    ] = 120,
) -> None:
    """Approve (or reject) a paused rollout, then report what the flow decided.

    Exit 0 when the flow accepted the approval or stopped on the rejection, 1 when it
    refused the approval, 2 for a usage or API error.
    """
    from mirror_rollout.reviewer_keys import read_key
    from tasks.approval.client import await_decision, pending_approval, send_approval

    signer = read_key(key) if key is not None else None
    if reviewer is None and signer is None:
        raise RolloutError("no reviewer given", "pass --key YOUR_KEY_FILE (or --reviewer NAME)")
    pending = pending_approval(run_id)
    console.print(pending.description or f"plan sha256 {pending.plan_sha256}", highlight=False)
    form, pending = send_approval(
        run_id,
        reviewer,
        approve=not reject,
        comment=comment,
        allow_destroy=allow_destroy,
        plan_sha256=sha256,
        key=signer,
    )
    signed = "signed" if form.signature else "unsigned"
    console.print(
        f"sent {'rejection' if reject else 'approval'} of {pending.flow_run_name} ({pending.pause_key}) "
        f"as {form.reviewer}, {signed}, plan {form.plan_sha256}; waiting for the flow's decision …",
        highlight=False,
        soft_wrap=True,
    )
    decision = await_decision(pending.flow_run_id, pending.pause_key, timeout=wait)
    if decision.accepted:
        console.print(f"[green]accepted[/]: {decision.message}", highlight=False, soft_wrap=True)
        return
    if reject:
        # Any rejection stops the run, signed or not: what was asked for happened.
        console.print(f"[yellow]rejected[/]: {decision.message}", highlight=False, soft_wrap=True)
        return
    err_console.print(f"[red]refused[/]: {decision.message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def sign(
    run_id: Annotated[str, typer.Argument(help="the paused flow run's id")],
    key: Annotated[Path, typer.Option("--key", help="your private key file")],
    reject: RejectOption = False,
    allow_destroy: AllowDestroyOption = False,
    sha256: Sha256Option = None,
) -> None:
    """Print the signature to paste into the approval form's `signature` field in the UI.

    It covers this run, its pending stage, the plan sha256, approve and allow_destroy:
    tick the same boxes in the form.
    """
    from mirror_rollout.plan_digest import PlanDigest
    from mirror_rollout.reviewer_keys import read_key
    from tasks.approval.client import pending_approval, signature_for

    signer = read_key(key)
    pending = pending_approval(run_id)
    signature = signature_for(
        pending, signer, approve=not reject, allow_destroy=allow_destroy, plan_sha256=sha256
    )
    err_console.print(
        f"signature of {signer.reviewer} for {pending.flow_run_name} ({pending.pause_key}), "
        f"plan {PlanDigest(sha256) if sha256 else pending.plan_sha256}, approve={not reject}, "
        f"allow_destroy={allow_destroy}; paste it into the form's signature field:",
        highlight=False,
        soft_wrap=True,
    )
    print(signature)


reviewer_app = typer.Typer(
    help="Reviewer keys for deployments/reviewers.yaml.", no_args_is_help=True
)
app.add_typer(reviewer_app, name="reviewer")


def default_key_path(name: str) -> Path:
    """~/.config/mirror-rollout/keys/<name>.key (XDG_CONFIG_HOME respected): never in the repo."""
    import os
    import re

    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "reviewer"
    return base / "mirror-rollout" / "keys" / f"{slug}.key"


@reviewer_app.command("new")
def reviewer_new(
    name: Annotated[str, typer.Argument(help="your display name, as approvals will record it")],
    out: Annotated[
        Path | None,
        typer.Option(help="where the private key goes (default ~/.config/mirror-rollout/keys/)"),
    ] = None,
) -> None:
    """Make an Ed25519 key pair: the private key file (0600) and the YAML entry to register."""
    from pydantic import ValidationError

    from mirror_rollout import PROJECT_ROOT
    from mirror_rollout.reviewer_keys import display_name, encode_public_key, new_key, write_key
    from tasks.approval.reviewers import Reviewer, registry_entry

    name = display_name(name)
    path = (out or default_key_path(name)).expanduser().absolute()
    if path.resolve().is_relative_to(PROJECT_ROOT.resolve()):
        raise RolloutError(
            f"{path} is inside the repository {PROJECT_ROOT}",
            "keep private keys out of the repository: give --out a path elsewhere",
        )
    key = new_key(name)
    try:
        Reviewer(name=name, public_key=encode_public_key(key.public_key))
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"invalid reviewer name {name!r}: {problem}", "use a printable one-line name"
        ) from None
    write_key(path, key)
    err_console.print(
        f"private key written to {path} (mode 0600; keep it secret, never commit it).\n"
        "Add this entry under the environment's `reviewers:` in deployments/reviewers.yaml:",
        highlight=False,
        soft_wrap=True,
    )
    print(registry_entry(name, key.public_key), end="")


@app.command("run")
def run_deployment_cmd(
    deployment: Annotated[
        str, typer.Argument(help="FLOW/DEPLOYMENT, e.g. infra-rollout/staging-rollout")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="KEY=VALUE flow parameter (JSON values decoded)"),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="follow the run until it ends")
    ] = True,
    timeout: Annotated[
        float, typer.Option(help="cancel the run and exit 1 after this many seconds (0: no limit)")
    ] = 0,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            "-e",
            help="environment parameter; repeat it to roll several out at once "
            "(e.g. infra-rollout/rollout --env staging --env qa)",
        ),
    ] = None,
) -> None:
    """Run a Prefect deployment on its work pool and follow it.

    With several --env, one run per environment starts at once and the command ends
    with a table of their outcomes. Exit 0 if every run Completed; 1 if one Failed,
    Crashed, was Cancelled or timed out; 2 for a usage or API error.
    """
    from console.runner import parse_params
    from console.runner import run as run_deployment

    params = parse_params(param or [])
    if env and len(env) > 1:
        from console.fanout import run_environments

        echo = typer.echo
        raise typer.Exit(run_environments(deployment, env, params, echo, console, wait, timeout))
    if env:
        params["environment"] = env[0]
    code = run_deployment(
        deployment,
        params,
        lambda line: typer.echo(line),
        wait=wait,
        timeout=timeout or None,
    )
    raise typer.Exit(code)


def _backend_ready(backend: str) -> None:
    """The current backend, as the environment points at it: one clear error if it cannot serve.

    Never starts anything (``sandbox up`` and ``rehearse`` do): on the sandbox,
    AWS_ENDPOINT_URL must name a moto server that answers.
    """
    from mirror_rollout.settings import check_endpoint_matches_backend

    if backend not in ("sandbox", "aws"):
        raise RolloutError(f"unknown backend {backend!r}", "use --backend sandbox or --backend aws")
    check_endpoint_matches_backend(backend)
    if backend == "sandbox":
        import os

        import httpx

        endpoint = os.environ["AWS_ENDPOINT_URL"]
        try:
            httpx.get(endpoint.rstrip("/") + "/moto-api/", timeout=3, trust_env=False)
        except httpx.HTTPError:
            raise RolloutError(
                f"cannot reach the AWS endpoint {endpoint}",
                'start the sandbox (eval "$(mirror-rollout sandbox up)") or fix AWS_ENDPOINT_URL',
            ) from None


@contextlib.contextmanager
def _terraform_of(env: str, root: Path | None, backend: str):
    """Terraform for one environment in a throw-away working copy (state is in the backend)."""
    import tempfile

    from mirror_rollout.provisioners import terraform_for
    from mirror_rollout.settings import validate_settings

    settings = validate_settings(environment=env, backend=backend, root=root)
    _backend_ready(backend)
    with tempfile.TemporaryDirectory(prefix="mirror-rollout-") as work:
        yield terraform_for(settings.environment, backend, settings.root, Path(work))


@app.command("plan")
def plan_cmd(
    env: EnvOption = "staging",
    root: RootOption = None,
    backend: Annotated[str, typer.Option(help="sandbox (default) or aws")] = "sandbox",
    out: Annotated[
        Path | None, typer.Option(help="where the plan goes (default: ROOT/out/ENV/plan-TIME)")
    ] = None,
) -> None:
    """Plan a Terraform root (ROOT/infra/terraform with ENV.tfvars) on a backend; apply nothing.

    Exit 0: planned; 2: Terraform refused the configuration; 1: any other failure.
    """
    import time

    from mirror_rollout.provisioners import terraform_for
    from mirror_rollout.provisioners.terraform_plan import json_path
    from mirror_rollout.provisioners.terraform_run import TerraformFailed
    from mirror_rollout.settings import validate_settings
    from tasks.plan.review import summary_lines

    settings = validate_settings(environment=env, backend=backend, root=root)
    _backend_ready(backend)
    run_dir = (out or settings.output_dir(time.strftime("plan-%Y%m%d-%H%M%S"))).absolute()
    terraform = terraform_for(settings.environment, backend, settings.root, run_dir / "terraform")
    console.print(
        f"[bold]plan[/] {env} of {settings.root} on {backend} (Terraform {terraform.version})"
    )
    try:
        planned = terraform.plan(run_dir)
    except TerraformFailed as exc:
        refused = terraform.refuses_configuration(exc)
        err_console.print(
            f"[red]error:[/] {exc.line()}" if not refused else f"[red]error:[/] {refused}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2 if refused else 1) from None
    for line in summary_lines(planned):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"plan JSON: {json_path(Path(planned.plan_file))}", soft_wrap=True)


@app.command("force-unlock")
def force_unlock(
    lock_id: Annotated[str, typer.Argument(help="the lock id from the 'locked by' message")],
    env: EnvOption = "staging",
    root: RootOption = None,
    backend: Annotated[str, typer.Option(help="sandbox (default) or aws")] = "sandbox",
) -> None:
    """Remove a state lock left by a plan or apply that died (Terraform's own force-unlock)."""
    with _terraform_of(env, root, backend) as terraform:
        terraform.force_unlock(lock_id)
    console.print(f"removed lock {lock_id} of the {env} state")


@app.command()
def adopt(
    address: Annotated[
        str, typer.Argument(help="the configuration's address, e.g. aws_sns_topic.ops_alerts")
    ],
    resource_id: Annotated[
        str, typer.Argument(help="the id Terraform imports it by (name or ARN)")
    ],
    env: EnvOption = "staging",
    root: RootOption = None,
    backend: Annotated[str, typer.Option(help="sandbox (default) or aws")] = "sandbox",
) -> None:
    """Adopt a resource that exists in AWS but not in state (Terraform's own `terraform import`)."""
    with _terraform_of(env, root, backend) as terraform:
        terraform.import_resource(address, resource_id)
    console.print(f"adopted {resource_id} as {address} in the {env} state; run the rollout again")


@app.command()
def doctor() -> None:
    """Check that the Terraform this project needs is installed (and where providers come from)."""
    from mirror_rollout.provisioners.terraform_binary import describe

    console.print(describe(), highlight=False, soft_wrap=True)


@app.command("github-secrets")
def github_secrets(
    env: EnvOption = "staging",
    repo: Annotated[
        str | None, typer.Option(help="OWNER/NAME to set them in (needs GITHUB_TOKEN)")
    ] = None,
    api_url: Annotated[str, typer.Option(help="GitHub REST API base")] = "https://api.github.com",
    backend: Annotated[str, typer.Option(help="sandbox (default) or aws")] = "sandbox",
) -> None:
    """List the Day 21 GitHub Actions secrets of an environment; with --repo and GITHUB_TOKEN, set them."""
    from mirror_rollout.settings import parse_settings
    from tasks.github_secrets.report import rich_table
    from tasks.github_secrets.run import github_secrets_of, token_from_env

    def show(report) -> None:
        console.print(rich_table(report))
        for step in report.next_steps:
            console.print(step, highlight=False, soft_wrap=True)

    settings = parse_settings(environment=env, backend=backend)
    github_secrets_of(settings, repo, token_from_env(), api_url, show)


def main() -> None:
    # Plans, checklists, keys and Prefect results this command writes are its user's alone.
    os.umask(0o077)
    try:
        try:
            app()
        except Exception as exc:  # botocore's own errors become one actionable line
            raise as_rollout_error(exc) from exc
    except RolloutError as exc:
        err_console.print(f"[red]error:[/] {exc.line()}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
