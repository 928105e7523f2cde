"""Prefect glue: fill the checklist template, write it to the run's output directory, publish it."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.results import CheckResult
from tasks.checklist.render import render

TEMPLATE = PROJECT_ROOT / "docs" / "ops" / "PRODUCTION_DEPLOYMENT_CHECKLIST.md"


@task(name="production-checklist", task_run_name="checklist-{environment}")
def production_checklist(
    environment: str,
    results: list[CheckResult],
    header: dict[str, str],
    approvals_markdown: str,
    out_dir: str,
    template: str | None = None,
) -> str:
    text = Path(template).read_text() if template else TEMPLATE.read_text()
    markdown, lines = render(text, results, header, approvals_markdown)
    path = Path(out_dir) / "PRODUCTION_DEPLOYMENT_CHECKLIST.md"
    path.write_text(markdown)
    ticked = sum(1 for line in lines if line.status.value == "PASS")
    create_markdown_artifact(
        key=f"{environment}-production-checklist",
        markdown=markdown,
        description=f"{ticked} of {len(lines)} lines ticked from evidence — {path}",
    )
    return str(path)
