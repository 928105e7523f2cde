"""CloudWatch alarms and the ops SNS topic they notify."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mirror_rollout import contract
from mirror_rollout.documents import as_list
from tasks.guardrails.base import (
    cmk_problems,
    declared_named,
    missing,
    named,
    not_planned,
    plan_check,
    static_check,
)
from tasks.guardrails.common import Observation, Problem, each_found, observe, unless
from tasks.guardrails.plan_view import Planned, PlanView
from tasks.guardrails.view import Block, InfraView

OPS_TOPIC = "ops-alerts"
ALARM_TYPE = "aws_cloudwatch_metric_alarm"


def _ops_topic(view: InfraView) -> list[Block]:
    topic = declared_named(view, "aws_sns_topic", "name", OPS_TOPIC)
    return as_list(topic)


def _no_ops_topic(view: InfraView) -> Observation:
    return missing(view, f"aws_sns_topic {contract.name(view.env, OPS_TOPIC)}")


# -- as written -----------------------------------------------------------------------
def _alarms_notify(view: InfraView, topic: Block) -> Iterator[Observation]:
    def judge(alarm: Block) -> Iterator[Observation]:
        ok = view.aws.refers_to(alarm.get("alarm_actions"), topic.address)
        problem = f"alarm_actions must include {topic.address}.arn"
        return observe(alarm, unless(ok, "alarm_actions", problem), f"notifies {topic.address}")

    return each_found(view.aws.of_type(ALARM_TYPE), missing(view, ALARM_TYPE), judge)


@static_check("MR-022", "Every alarm notifies the ops SNS topic")
def alarm_actions(view: InfraView) -> Iterator[Observation]:
    return each_found(_ops_topic(view), _no_ops_topic(view), lambda t: _alarms_notify(view, t))


def _topic_encryption(view: InfraView, topic: Block) -> Iterator[Observation]:
    problems = cmk_problems(view.aws, topic, "kms_master_key_id")
    return observe(topic, problems, "encrypted with the CMK")


@static_check("MR-023", "Ops SNS topic encrypted with the project CMK")
def topic_encryption(view: InfraView) -> Iterator[Observation]:
    return each_found(_ops_topic(view), _no_ops_topic(view), lambda t: _topic_encryption(view, t))


# -- as planned -----------------------------------------------------------------------
def _alarms(plan: PlanView) -> dict[str, Planned]:
    return {str(a.values.get("alarm_name")): a for a in plan.of_type(ALARM_TYPE)}


@plan_check("MR-020", "Exactly the 8 alarms of the contract")
def alarm_inventory(plan: PlanView) -> Iterator[Observation]:
    alarms = _alarms(plan)
    expected = {spec.full_name(plan.env) for spec in contract.ALARMS}
    for name in sorted(expected - alarms.keys()):
        yield Observation(name, "planned_values", False, f"alarm {name} is not planned")
    for name in sorted(alarms.keys() - expected):
        yield Observation(
            alarms[name].address,
            alarms[name].where("alarm_name"),
            False,
            f"alarm {name} is not in the contract",
        )
    for name in sorted(expected & alarms.keys()):
        yield from observe(alarms[name], [], name)


def contract_values(spec: contract.AlarmSpec, env: str) -> dict[str, Any]:
    """The planned values of an alarm that its contract entry fixes (all but its dimensions)."""
    return {
        "namespace": spec.namespace(env),
        "metric_name": spec.metric,
        "statistic": spec.statistic,
        "threshold": spec.threshold,
        "comparison_operator": spec.comparison,
        "period": spec.period,
        "evaluation_periods": spec.evaluation_periods,
    }


def definition_problems(spec: contract.AlarmSpec, env: str, values: dict) -> list[Problem]:
    """How a planned alarm differs from its contract entry."""
    problems: list[Problem] = [
        (k, f"{k} is {values.get(k)!r}, expected {w!r}")
        for k, w in contract_values(spec, env).items()
        if values.get(k) != w
    ]
    dims = values.get("dimensions") or {}
    return problems + unless(
        dims == spec.dimensions(env),
        "dimensions",
        f"dimensions are {dims!r}, expected {spec.dimensions(env)!r}",
    )


@plan_check(
    "MR-021", "Each alarm's metric, namespace, dimensions, statistic, threshold, comparison, period"
)
def alarm_definition(plan: PlanView) -> Iterator[Observation]:
    alarms = _alarms(plan)
    for spec in contract.ALARMS:
        alarm = alarms.get(spec.full_name(plan.env))
        if alarm is None:
            continue  # MR-020 reports missing alarms
        yield from observe(
            alarm,
            definition_problems(spec, plan.env, alarm.values),
            f"{spec.metric} > {spec.threshold:g}",
        )


def _alarms_name(plan: PlanView, topic: Planned) -> Iterator[Observation]:
    def judge(alarm: Planned) -> Iterator[Observation]:
        problem = f"alarm_actions must name {topic.config_address}"
        ok = f"alarm_actions -> {topic.config_address} ({topic.values.get('name')})"
        notifies = plan.refers_to(alarm, "alarm_actions", topic)
        return observe(alarm, unless(notifies, "alarm_actions", problem), ok)

    return each_found(plan.of_type(ALARM_TYPE), not_planned(plan, ALARM_TYPE), judge)


@plan_check(
    "MR-024", "Ops topic mirror-dissonance-{env}-ops-alerts planned; every alarm's actions name it"
)
def alarms_notify_ops_topic(plan: PlanView) -> Iterator[Observation]:
    expected = contract.name(plan.env, OPS_TOPIC)
    topic = named(plan, "aws_sns_topic", "name", expected)
    return each_found(
        as_list(topic),
        not_planned(plan, f"aws_sns_topic {expected}"),
        lambda t: _alarms_name(plan, t),
    )
