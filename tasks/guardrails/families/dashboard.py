"""The CloudWatch dashboard: its metric rows and its alarm-status widget."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial

from mirror_rollout import contract
from mirror_rollout.documents import as_list, dashboard_metrics
from tasks.guardrails.base import missing, named, not_planned, plan_check, static_check
from tasks.guardrails.common import Observation, each_found, observe
from tasks.guardrails.plan_view import AFTER_APPLY, Planned, PlanView
from tasks.guardrails.view import Block, InfraView

Row = tuple[str, str, str]  # (namespace, metric, TableName or "")


def metric_problems(
    env: str,
    rows: set[Row],
    names_table: Callable[[str, contract.TableSpec], bool],
    shown_table: Callable[[contract.TableSpec], str],
) -> list[str]:
    """The contract's dashboard metrics no row shows; capacity metrics per table."""
    problems = []
    for namespace, metric in contract.DASHBOARD_METRICS:
        namespace = namespace.format(env=env)
        if metric.startswith("Consumed"):
            problems += [
                f"no {metric} row for {shown_table(spec)}"
                for spec in contract.TABLES
                if not any(
                    (ns, m) == (namespace, metric) and names_table(t, spec) for ns, m, t in rows
                )
            ]
        elif not any(r[:2] == (namespace, metric) for r in rows):
            problems.append(f"no {namespace} {metric} widget")
    return problems


def _widgets(view: InfraView, board: Block) -> Iterator[Observation]:
    env, aws = view.env, view.aws
    body = aws.resolve(board.document("dashboard_body"))
    if not isinstance(body, dict):
        problem = "dashboard_body must be jsonencode({ widgets = [...] })"
        return observe(board, [("dashboard_body", problem)], "")
    rows, alarm_widgets = dashboard_metrics(body)
    problems = metric_problems(
        env,
        rows,
        lambda t, spec: t == spec.name(env) or aws.refers_to(t, spec.address),
        lambda spec: spec.address,
    )
    alarms = {a.address for a in aws.of_type("aws_cloudwatch_metric_alarm")}
    if not any(alarms <= aws.references(w.get("alarms")) for w in alarm_widgets):
        problems.append("no alarm-status widget listing every aws_cloudwatch_metric_alarm")
    return observe(
        board,
        [("dashboard_body", p) for p in problems],
        f"{len(rows)} metric rows, {len(alarm_widgets)} alarm widget(s)",
    )


@static_check(
    "MR-030", "Dashboard covers capacity, errors, SSM failures, circuit breaker, alarm status"
)
def dashboard_widgets(view: InfraView) -> Iterator[Observation]:
    boards = view.aws.of_type("aws_cloudwatch_dashboard")
    return each_found(boards, missing(view, "aws_cloudwatch_dashboard"), partial(_widgets, view))


def _planned_widgets(plan: PlanView, board: Planned) -> Iterator[Observation]:
    env = plan.env
    if not board.known("dashboard_body"):
        yield Observation(
            board.address,
            board.where("dashboard_body"),
            None,
            f"dashboard_body is {AFTER_APPLY} (it lists the alarms' ARNs): MR-030 read its "
            "widgets as written, the dashboard check reads the live one",
        )
        return
    try:
        body = json.loads(board.values["dashboard_body"])
    except (TypeError, ValueError):
        body = None
    rows, alarm_widgets = dashboard_metrics(body if isinstance(body, dict) else {})
    problems = metric_problems(
        env, rows, lambda t, spec: t == spec.name(env), lambda spec: spec.name(env)
    )
    if not any(len(as_list(w.get("alarms"))) >= len(contract.ALARMS) for w in alarm_widgets):
        problems.append("no alarm-status widget listing the 8 alarms")
    yield from observe(board, [("dashboard_body", p) for p in problems], f"{len(rows)} metric rows")


@plan_check(
    "MR-031", "Dashboard mirror-dissonance-{env} planned (its widgets too when the plan knows them)"
)
def dashboard(plan: PlanView) -> Iterator[Observation]:
    expected = f"{contract.PREFIX}-{plan.env}"
    board = named(plan, "aws_cloudwatch_dashboard", "dashboard_name", expected)
    if board is None:
        yield not_planned(plan, f"aws_cloudwatch_dashboard {expected}")
        return
    yield from observe(board, [], f"named {expected}")
    yield from _planned_widgets(plan, board)
