"""What every runbook step's task shares: its logger, its clock, its API-call evidence,
its run id, the decorator of a per-target AWS task and the publish-or-fail tail.

The one shared module of tasks/ (docs/ARCHITECTURE.md): a helper two steps need lives
here or in the core, never inside one step. API calls are counted by ``AwsClients``
itself (``clients.calls``); these helpers turn them into evidence.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task

from mirror_rollout.aws import AwsClients
from mirror_rollout.evidence import publish, raise_if_blocking
from mirror_rollout.results import CheckResult, Evidence
from mirror_rollout.retries import retry_if_transient

P = ParamSpec("P")
R = TypeVar("R")


def calls_observed(clients: AwsClients) -> dict[str, Any]:
    """The API call counts, for one evidence entry per task."""
    return {"api_calls": sum(clients.calls.values()), "api_calls_by_operation": dict(clients.calls)}


def iso(value: Any) -> Any:
    """Datetimes (boto3 returns them tz-aware) as ISO-8601 text; anything else unchanged."""
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def now() -> datetime:
    return datetime.now(UTC)


def default_run_id() -> str:
    """The flow run id inside a run, else a fresh id (names what a run creates, e.g. drill copies)."""
    try:
        from prefect.runtime import flow_run

        if flow_run.id:
            return str(flow_run.id)
    except Exception:  # pragma: no cover - runtime lookups never fail in practice
        pass
    return uuid.uuid4().hex


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a run, a plain logger when called via ``.fn`` outside one."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("mirror_rollout.tasks")


def calls_evidence(clients: AwsClients, **observed: Any) -> Evidence:
    """One evidence entry per task: what it observed overall, then the API calls it made."""
    return Evidence(
        source=f"mirror-rollout AwsClients {clients.region}",
        observed={**observed, **calls_observed(clients)},
    )


def publish_or_fail(
    key: str,
    results: list[CheckResult],
    what: str,
    problem: str,
    fix: str = "",
    *,
    with_ids: bool = False,
) -> list[CheckResult]:
    """The tail of a validation task: publish ``results`` as the table artifact ``key``, then
    raise ValidationFailed if any blocks, its fix pointing at that artifact first."""
    publish(key, results, what)
    raise_if_blocking(
        results, problem, f"see the {key} artifact" + (f"; {fix}" if fix else ""), with_ids=with_ids
    )
    return results


def aws_task(
    name: str, retry_delay_seconds: list[float], **options: Any
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """The task decorator of a step that reads or changes one target's AWS resources: run as
    ``{name}-{environment}``, retried once per delay only when AWS throttled or did not
    answer (any other error is the step's finding)."""
    return task(
        name=name,
        task_run_name=f"{name}-{{target.environment}}",
        retries=len(retry_delay_seconds),
        retry_delay_seconds=retry_delay_seconds,
        retry_condition_fn=retry_if_transient,
        **options,
    )
