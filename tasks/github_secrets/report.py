"""What the operator sees: names, where each value comes from, what happened. Never a value."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from mirror_rollout import markdown as md
from tasks.github_secrets.plan import STATE_BUCKET_OUTPUT, SecretToSet

Status = Literal["ready", "missing", "created", "updated"]
COMMAND = "mirror-rollout github-secrets"
TOKEN_VARIABLE = "GITHUB_TOKEN"


class SecretLine(BaseModel):
    name: str
    source: str
    status: Status


class SecretsReport(BaseModel):
    """The Prefect result and artifact content: safe to store, it holds no value."""

    environment: str
    repo: str | None = None
    applied: bool = False  # True: set through the GitHub API
    secrets: list[SecretLine]
    next_steps: list[str] = []


def listed(secrets: list[SecretToSet]) -> list[SecretLine]:
    return [
        SecretLine(name=s.name, source=s.source, status="ready" if s.ready else "missing")
        for s in secrets
    ]


def how_to_set(
    secrets: list[SecretToSet],
    environment: str,
    repo: str | None,
    has_token: bool,
    backend: str = "sandbox",
) -> list[str]:
    """The next steps when nothing was set, as commands that never spell out a value."""
    target = repo or "OWNER/NAME"
    if not all(s.ready for s in secrets):
        return [
            f"Apply {environment} first (`mirror-rollout rehearse --env {environment}`): "
            "the missing values come from its state."
        ]
    token = (
        ""
        if has_token
        else f"export {TOKEN_VARIABLE} (allowed to write Actions secrets of {target}) and "
    )
    options = f"--env {environment} --repo {target}" + (
        "" if backend == "sandbox" else f" --backend {backend}"
    )
    steps = [f"To set them, {token}run `{COMMAND} {options}`."]
    # The same from Terraform and the GitHub CLI; the state bucket through its output,
    # which check_state_bucket() has proven equal to the backend's bucket.
    tf = "terraform -chdir=infra/terraform"
    steps.append(f"Or, with the GitHub CLI, after `{tf} workspace select {environment}`:")
    for s in secrets:
        output = s.output or STATE_BUCKET_OUTPUT
        steps.append(f"`{tf} output -raw {output} | gh secret set {s.name} --repo {target}`")
    return steps


def markdown(report: SecretsReport) -> str:
    where = f" in `{report.repo}`" if report.repo else ""
    verb = "set" if report.applied else "to set (nothing was set)"
    lines = [
        f"# GitHub Actions secrets — {report.environment}",
        "",
        f"Secrets {verb}{where}. Values are never shown.",
        "",
        *md.table(
            ["secret", "from", "status"],
            [[md.code_cell(s.name), s.source, s.status] for s in report.secrets],
        ),
    ]
    if report.next_steps:
        lines += ["", *(f"- {step}" for step in report.next_steps)]
    return "\n".join(lines) + "\n"


def rich_table(report: SecretsReport):
    from rich.table import Table

    title = f"GitHub Actions secrets — {report.environment}" + (
        f" ({report.repo})" if report.repo else ""
    )
    table = Table(title=title)
    for column in ("secret", "from", "status"):
        table.add_column(column, overflow="fold")
    colours = {"ready": "cyan", "missing": "red", "created": "green", "updated": "green"}
    for s in report.secrets:
        table.add_row(s.name, s.source, f"[{colours[s.status]}]{s.status}[/]")
    return table
