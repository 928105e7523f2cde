"""Run a suite on a frame with Great Expectations; report typed outcomes and Data Docs.

One ephemeral data context per Data Docs directory per process: GE's site builder
removes pages whose suite or validation its own stores do not hold, so every
run writing into ``<out_dir>/data-docs`` must go through the same context for
the index to keep listing all the suites of a rollout. Creating a context costs
milliseconds; importing GE costs seconds (once per process).
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, computed_field

from mirror_rollout.results import CheckResult, Evidence, Severity, Status
from tasks.expectations.suites import get_suite

if TYPE_CHECKING:
    import pandas

DOCS_DIR = "data-docs"
SITE_NAME = "mirror-rollout"
DATASOURCE = "mirror-rollout"
_MAX_LISTED = 20

_lock = threading.RLock()
_contexts: dict[Path, Any] = {}


class ExpectationOutcome(BaseModel):
    n: int  # 1-based position in the suite
    check_id: str
    type: str
    description: str
    column: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    success: bool
    observed: Any = None  # observed_value, or the unexpected values of a column map
    unexpected_count: int | None = None
    unexpected_rows: list[Any] = Field(default_factory=list)  # index columns + value
    missing: list[Any] = Field(default_factory=list)  # set expectations: absent members
    exception: str | None = None


class SuiteOutcome(BaseModel):
    suite: str
    success: bool
    evaluated: int
    successful: int
    expectations: list[ExpectationOutcome]
    data_docs_index: str  # path of the site's index.html
    validation_page: str | None = None  # path of this run's validation result page
    run_name: str | None = None
    rows: int
    seconds: float
    at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if not e.success]


def _import_gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def warm_up() -> None:
    """Import great_expectations in the background (seconds, cold) while the plan is made.

    The first suite otherwise pays the import on the rollout's critical path; Python's
    import lock makes a suite that starts earlier simply wait for this import.
    """
    threading.Thread(target=_import_gx, name="gx-import", daemon=True).start()


def _context(site_dir: Path):
    """The process's ephemeral context whose one Data Docs site is ``site_dir``."""
    site_dir = site_dir.resolve()
    context = _contexts.get(site_dir)
    if context is not None:
        return context
    gx = _import_gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        data_docs_sites={
            SITE_NAME: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(site_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.data_sources.add_pandas(DATASOURCE)
    _contexts[site_dir] = context
    return context


def _batch_definition(context, asset_name: str):
    source = context.data_sources.get(DATASOURCE)
    if asset_name in source.get_asset_names():
        return source.get_asset(asset_name).get_batch_definition("whole")
    return source.add_dataframe_asset(asset_name).add_batch_definition_whole_dataframe("whole")


def _file_path(url: str | None) -> str | None:
    if not url:
        return None
    return url.removeprefix("file://")


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


def _exception(info: Any) -> str | None:
    """GE reports one exception as {raised_exception, exception_message}, metric errors as
    {metric id: {...}}."""
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        return (info.get("exception_message") or "error") if info["raised_exception"] else None
    messages = [
        v.get("exception_message") or "error"
        for v in info.values()
        if isinstance(v, dict) and v.get("raised_exception", True)
    ]
    return "; ".join(dict.fromkeys(messages)) or None


def _outcome(n: int, suite: str, result: dict[str, Any]) -> ExpectationOutcome:
    config = result.get("expectation_config") or {}
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    res = result.get("result") or {}
    observed = res.get("observed_value")
    if observed is None:
        unexpected = res.get("unexpected_list", res.get("partial_unexpected_list"))
        observed = unexpected[:_MAX_LISTED] if unexpected is not None else None
    return ExpectationOutcome(
        n=n,
        check_id=f"GX-{suite}-{n}",
        type=config.get("type", ""),
        description=config.get("description") or config.get("type", ""),
        column=kwargs.get("column"),
        kwargs=kwargs,
        success=bool(result.get("success")),
        observed=observed,
        unexpected_count=res.get("unexpected_count"),
        unexpected_rows=(res.get("unexpected_index_list") or [])[:_MAX_LISTED],
        missing=res.get("partial_missing_list") or res.get("details", {}).get("missing", []) or [],
        exception=_exception(result.get("exception_info")),
    )


def run_suite(
    name: str,
    frame: pandas.DataFrame,
    out_dir: Path,
    *,
    run_name: str | None = None,
    **params: Any,
) -> SuiteOutcome:
    """Validate ``frame`` with suite ``name`` built from ``params``; Data Docs go to
    ``out_dir/data-docs`` (index.html lists every suite run into that directory)."""
    spec = get_suite(name)
    started = time.perf_counter()
    site_dir = Path(out_dir) / DOCS_DIR
    site_dir.mkdir(parents=True, exist_ok=True)
    with _lock:
        gx = _import_gx()
        from great_expectations.checkpoint import UpdateDataDocsAction

        context = _context(site_dir)
        suite = context.suites.add_or_update(spec.build_suite(**params))
        batch = _batch_definition(context, spec.name)
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=spec.name, data=batch, suite=suite)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"{spec.name}-checkpoint",
                validation_definitions=[validation],
                actions=[UpdateDataDocsAction(name="data-docs", site_names=[SITE_NAME])],
                result_format={
                    "result_format": "COMPLETE",
                    "unexpected_index_column_names": list(spec.index_columns),
                },
            )
        )
        run_id = gx.RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
        result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
        (identifier, validation_result), *_ = result.run_results.items()
        urls = context.get_docs_sites_urls(
            resource_identifier=identifier, site_names=[SITE_NAME], only_if_exists=True
        )
        page = _file_path(urls[0]["site_url"]) if urls else None
        by_id = {r.expectation_config.id: r for r in validation_result.results}
        ordered = [by_id.get(e.id) for e in suite.expectations]
        if any(r is None for r in ordered):  # ids not carried through: GE keeps suite order
            ordered = list(validation_result.results)
        outcomes = [
            _outcome(n, spec.name, _jsonable(r.to_json_dict()))
            for n, r in enumerate(ordered, start=1)
            if r is not None
        ]
    stats = validation_result.statistics
    return SuiteOutcome(
        suite=spec.name,
        success=bool(validation_result.success),
        evaluated=int(stats["evaluated_expectations"]),
        successful=int(stats["successful_expectations"]),
        expectations=outcomes,
        data_docs_index=str(site_dir.resolve() / "index.html"),
        validation_page=page,
        run_name=run_name,
        rows=len(frame),
        seconds=round(time.perf_counter() - started, 3),
        at=datetime.now(UTC),
    )


def _subject(e: ExpectationOutcome) -> str:
    if e.unexpected_rows:
        ids = []
        for row in e.unexpected_rows:
            if isinstance(row, dict):
                keys = [k for k in row if k != e.column] or list(row)
                ids.append(", ".join(str(row[k]) for k in keys))
            else:
                ids.append(f"row {row}")
        return "; ".join(ids)
    return e.column or ""


def _message(e: ExpectationOutcome) -> str:
    if e.success:
        return ""
    if e.exception:
        return f"{e.description}: could not evaluate ({e.exception})"
    if e.missing:
        return f"{e.description}: missing {', '.join(map(str, e.missing))}"
    if e.unexpected_rows:
        shown = ", ".join(str(r) for r in e.unexpected_rows)
        return f"{e.description}: {e.unexpected_count} unexpected: {shown}"
    return f"{e.description}: observed {e.observed!r}"


def to_check_results(outcome: SuiteOutcome) -> list[CheckResult]:
    """One CheckResult per expectation, ``GX-<suite>-<n>``, evidence naming the Data Docs page."""
    source = f"great_expectations suite {outcome.suite} ({outcome.validation_page or outcome.data_docs_index})"
    results = []
    for e in outcome.expectations:
        observed: dict[str, Any] = {
            "expectation": e.type,
            "kwargs": e.kwargs,
            "observed": e.observed,
            "rows": outcome.rows,
        }
        if e.unexpected_count is not None:
            observed["unexpected_count"] = e.unexpected_count
        if e.unexpected_rows:
            observed["unexpected_rows"] = e.unexpected_rows
        if e.missing:
            observed["missing"] = e.missing
        if e.exception:
            observed["exception"] = e.exception
        results.append(
            CheckResult(
                check_id=e.check_id,
                title=e.description,
                status=Status.PASS if e.success else Status.FAIL,
                severity=Severity.error,
                subject=_subject(e),
                message=_message(e),
                evidence=[Evidence(source=source, observed=observed, at=outcome.at)],
            )
        )
    return results
