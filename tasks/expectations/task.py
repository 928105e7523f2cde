"""Prefect glue: build the frame, run the suite, publish the table and Data Docs artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from mirror_rollout import markdown as md
from mirror_rollout.evidence import ValidationFailed, publish
from mirror_rollout.results import CheckResult
from tasks.expectations.runner import SuiteOutcome, run_suite, to_check_results
from tasks.expectations.suites import get_suite


class ExpectationsFailed(ValidationFailed):
    """An expectation suite failed; ``results`` and ``outcome`` say which rows and why."""

    results: list[CheckResult]
    outcome: SuiteOutcome | None


def artifact_key(environment: str, suite: str) -> str:
    return f"{environment}-expectations-{get_suite(suite).slug}"


def docs_markdown(environment: str, outcome: SuiteOutcome) -> str:
    index = Path(outcome.data_docs_index)
    lines = [
        f"# Great Expectations — {outcome.suite} ({environment})",
        "",
        f"**{'PASS' if outcome.success else 'FAIL'}**: {outcome.successful} of "
        f"{outcome.evaluated} expectations met on {outcome.rows} row(s) "
        f"in {outcome.seconds:.2f} s.",
        "",
        f"- Data Docs index: [{index}]({index.as_uri()})",
    ]
    if outcome.validation_page:
        page = Path(outcome.validation_page)
        lines.append(f"- This validation: [{page}]({page.as_uri()})")
    if outcome.failed:
        lines += [""]
        lines += md.table(
            ["check", "expectation", "rows / observed"],
            [
                [
                    e.check_id,
                    e.description,
                    md.code_cell(
                        str(e.exception or e.missing or e.unexpected_rows or e.observed)[:300]
                    ),
                ]
                for e in outcome.failed
            ],
        )
    return "\n".join(lines) + "\n"


# Never cached: each call reads live data and publishes artifacts and Data Docs.
@task(
    name="expectations",
    task_run_name="expectations-{suite}-{environment}",
    cache_policy=NO_CACHE,
)
def validate(
    suite: str, records: list[dict], environment: str, out_dir: str, **params: Any
) -> list[CheckResult]:
    """Validate ``records`` with ``suite``; artifacts ``{env}-expectations-<suite>`` (table)
    and ``{env}-expectations-<suite>-docs`` (markdown linking the Data Docs HTML)."""
    logger = get_run_logger()
    spec = get_suite(suite)
    frame = spec.build_frame(records)
    outcome = run_suite(
        spec.name, frame, Path(out_dir), run_name=environment, environment=environment, **params
    )
    results = to_check_results(outcome)
    key = artifact_key(environment, spec.name)
    publish(key, results, f"{spec.title} ({spec.name}) for {environment}")
    create_markdown_artifact(
        key=f"{key}-docs",
        markdown=docs_markdown(environment, outcome),
        description=f"Data Docs of {spec.name}: {outcome.data_docs_index}",
    )
    logger.info(
        "%s: %d/%d expectations met in %.2f s; Data Docs %s",
        spec.name,
        outcome.successful,
        outcome.evaluated,
        outcome.seconds,
        outcome.validation_page or outcome.data_docs_index,
    )
    if not outcome.success:
        ids = ", ".join(e.check_id for e in outcome.failed)
        error = ExpectationsFailed(
            f"expectation suite {spec.name} failed for {environment}: {ids}",
            f"see the artifact {key} and the Data Docs at {outcome.data_docs_index}",
        )
        error.results = results
        error.outcome = outcome
        raise error
    return results
