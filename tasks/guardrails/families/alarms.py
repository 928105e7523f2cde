"""CloudWatch alarms and the ops SNS topic they notify."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mirror_rollout import contract
from tasks.guardrails.base import (
    Guardrail,
    PlanGuardrail,
    declared_named,
    is_cmk,
    missing,
    named,
    not_planned,
)
from tasks.guardrails.common import Observation, Problem, guardrail, unless
from tasks.guardrails.plan_view import Planned, PlanView
from tasks.guardrails.view import Block, InfraView

OPS_TOPIC = "ops-alerts"


def each_alarm_notifies(
    observe: Callable[[Any, list[Problem], str], Iterator[Observation]],
    alarms: Sequence[Any],
    no_alarms: Observation,
    notifies: Callable[[Any], bool],
    messages: tuple[str, str],
) -> Iterator[Observation]:
    """Every alarm's alarm_actions name the ops topic (as written or as planned);
    ``messages``: (the problem, the ok message)."""
    problem, ok = messages
    if not alarms:
        yield no_alarms
    for alarm in alarms:
        yield from observe(alarm, unless(notifies(alarm), "alarm_actions", problem), ok)


def _ops_topic(view: InfraView) -> Block | None:
    return declared_named(view, "aws_sns_topic", "name", OPS_TOPIC)


def _no_ops_topic(view: InfraView) -> Observation:
    return missing(view, f"aws_sns_topic {contract.name(view.env, OPS_TOPIC)}")


# -- as written -----------------------------------------------------------------------
@guardrail
class AlarmActions(Guardrail):
    id = "MR-022"
    title = "Every alarm notifies the ops SNS topic"

    def inspect(self, view):
        topic = _ops_topic(view)
        if topic is None:
            yield _no_ops_topic(view)
            return
        yield from each_alarm_notifies(
            self.observe,
            view.aws.of_type("aws_cloudwatch_metric_alarm"),
            missing(view, "aws_cloudwatch_metric_alarm"),
            lambda alarm: view.aws.refers_to(alarm.get("alarm_actions"), topic.address),
            (f"alarm_actions must include {topic.address}.arn", f"notifies {topic.address}"),
        )


@guardrail
class TopicEncryption(Guardrail):
    id = "MR-023"
    title = "Ops SNS topic encrypted with the project CMK"

    def inspect(self, view):
        topic = _ops_topic(view)
        if topic is None:
            yield _no_ops_topic(view)
            return
        yield from self.observe(
            topic,
            unless(
                is_cmk(view.aws, topic.get("kms_master_key_id")),
                "kms_master_key_id",
                "kms_master_key_id must refer to the project CMK",
            ),
            "encrypted with the CMK",
        )


# -- as planned -----------------------------------------------------------------------
def _alarms(plan: PlanView) -> dict[str, Planned]:
    return {str(a.values.get("alarm_name")): a for a in plan.of_type("aws_cloudwatch_metric_alarm")}


@guardrail
class AlarmInventory(PlanGuardrail):
    id = "MR-020"
    title = "Exactly the 8 alarms of the contract"

    def inspect(self, plan):
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
            yield from self.observe(alarms[name], [], name)


def definition_problems(spec: contract.AlarmSpec, env: str, values: dict) -> list[Problem]:
    """How a planned alarm differs from its contract entry."""
    want = {
        "namespace": spec.namespace(env),
        "metric_name": spec.metric,
        "statistic": spec.statistic,
        "threshold": spec.threshold,
        "comparison_operator": spec.comparison,
        "period": spec.period,
        "evaluation_periods": spec.evaluation_periods,
    }
    problems: list[Problem] = [
        (k, f"{k} is {values.get(k)!r}, expected {w!r}")
        for k, w in want.items()
        if values.get(k) != w
    ]
    dims = values.get("dimensions") or {}
    return problems + unless(
        dims == spec.dimensions(env),
        "dimensions",
        f"dimensions are {dims!r}, expected {spec.dimensions(env)!r}",
    )


@guardrail
class AlarmDefinition(PlanGuardrail):
    id = "MR-021"
    title = "Each alarm's metric, namespace, dimensions, statistic, threshold, comparison, period"

    def inspect(self, plan):
        alarms = _alarms(plan)
        for spec in contract.ALARMS:
            alarm = alarms.get(spec.full_name(plan.env))
            if alarm is None:
                continue  # MR-020 reports missing alarms
            yield from self.observe(
                alarm,
                definition_problems(spec, plan.env, alarm.values),
                f"{spec.metric} > {spec.threshold:g}",
            )


@guardrail
class AlarmsNotifyOpsTopic(PlanGuardrail):
    id = "MR-024"
    title = "Ops topic mirror-dissonance-{env}-ops-alerts planned; every alarm's actions name it"

    def inspect(self, plan):
        expected = contract.name(plan.env, OPS_TOPIC)
        topic = named(plan, "aws_sns_topic", "name", expected)
        if topic is None:
            yield not_planned(plan, f"aws_sns_topic {expected}")
            return
        yield from each_alarm_notifies(
            self.observe,
            plan.of_type("aws_cloudwatch_metric_alarm"),
            not_planned(plan, "aws_cloudwatch_metric_alarm"),
            lambda alarm: plan.refers_to(alarm, "alarm_actions", topic),
            (
                f"alarm_actions must name {topic.config_address}",
                f"alarm_actions -> {topic.config_address} ({expected})",
            ),
        )
