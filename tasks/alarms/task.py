"""Prefect glue for the alarm + SNS probe (Days 20 and 22).

Order: read the alarms; open the probe queue (so real alarm notifications can be
seen); publish the Day 22 test alert and wait for it; check e-mail
subscriptions; baseline, then drive every alarm to ALARM and back to OK; on AWS
also read alarm history and wait for the alarm notifications. The probe queue
and its subscription are removed in ``finally``, also when anything raises.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.evidence import Capabilities, capabilities
from mirror_rollout.results import CheckResult, Evidence, Status
from mirror_rollout.retries import error_code, is_transient
from mirror_rollout.target import RolloutTarget
from tasks.alarms import checks as c
from tasks.alarms.probe import ProbeQueue
from tasks.common import aws_task, calls_evidence, iso, now, publish_or_fail, run_logger

STATE_POLLS = 5  # DescribeAlarms reads per phase until every alarm shows the set state


def ops_topic_arn(clients: AwsClients, environment: str) -> str:
    """arn:{partition}:sns:{region}:{account}:mirror-dissonance-{env}-ops-alerts (STS caller)."""
    caller = clients.client("sts").get_caller_identity()
    partition = caller["Arn"].split(":")[1]
    return (
        f"arn:{partition}:sns:{clients.region}:{caller['Account']}:"
        f"{contract.name(environment, 'ops-alerts')}"
    )


def read_alarms(cw: Any, region: str) -> tuple[list[dict[str, Any]], Evidence]:
    alarms: list[dict[str, Any]] = []
    for page in cw.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=f"{contract.PREFIX}-", AlarmTypes=["MetricAlarm"]
    ):
        alarms.extend(page.get("MetricAlarms", []))
    return alarms, Evidence(source=f"cloudwatch:DescribeAlarms {region} {contract.PREFIX}-*")


def observe_states(
    cw: Any,
    region: str,
    names: list[str],
    phase: str,
    sleep: Callable[[float], None],
) -> dict[str, Evidence]:
    """Describe until every alarm in ``names`` shows ``phase`` (bounded); last read per alarm."""
    seen: dict[str, Evidence] = {}
    for poll in range(STATE_POLLS):
        response = cw.describe_alarms(AlarmNames=names)
        at = now()
        for alarm in response.get("MetricAlarms", []):
            seen[alarm["AlarmName"]] = Evidence(
                source=f"cloudwatch:DescribeAlarms {region} {alarm['AlarmName']}",
                observed={
                    "phase": phase,
                    "StateValue": alarm.get("StateValue"),
                    "StateReason": alarm.get("StateReason"),
                    "StateUpdatedTimestamp": iso(alarm.get("StateUpdatedTimestamp")),
                },
                at=at,
            )
        if all(seen.get(n) and seen[n].observed["StateValue"] == phase for n in names):
            break
        if poll < STATE_POLLS - 1:
            sleep(0.5 * 2**poll)
    return seen


def probe_alarms(
    clients: AwsClients,
    environment: str,
    caps: Capabilities,
    topic_arn: str | None = None,
    probe_id: str | None = None,
    receive_timeout_seconds: float = 60.0,
    notification_timeout_seconds: float = 180.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[CheckResult]:
    """ALARM-001..006 and SNS-001..004 (see the module docstring for the order)."""
    logger = run_logger()
    region = clients.region
    cw, sns, sqs = (clients.client(s) for s in ("cloudwatch", "sns", "sqs"))
    topic_arn = topic_arn or ops_topic_arn(clients, environment)
    probe_id = probe_id or uuid.uuid4().hex[:12]
    started = now()

    alarms, read = read_alarms(cw, region)
    results = c.check_alarm_config(environment, alarms, topic_arn, read)
    results += c.check_extra_alarms(environment, [a["AlarmName"] for a in alarms], read)
    by_name = {a["AlarmName"]: a for a in alarms}
    present = [
        s.full_name(environment) for s in contract.ALARMS if s.full_name(environment) in by_name
    ]

    probe = ProbeQueue(sqs, sns, topic_arn, environment, probe_id)
    try:
        results += _test_alert(sns, probe, topic_arn, receive_timeout_seconds)
        results += _email_subscriptions(sns, topic_arn, probe.subscription_arn)
        driven, alarm_results = _drive_alarms(cw, region, present, by_name, read, probe_id, sleep)
        results += alarm_results
        results += _history_and_notifications(
            cw, region, caps, probe, driven, present, started, notification_timeout_seconds
        )
    finally:
        closed = probe.close()
        cleaned = not closed.observed["errors"]
        if not cleaned:
            logger.error("probe cleanup incomplete: %s", closed.observed["errors"])
    results.append(
        c.result(
            c.SNS_CLEANUP,
            Status.PASS if cleaned else Status.FAIL,
            probe.name,
            "probe queue deleted, subscription removed"
            if cleaned
            else f"{probe.name}: cleanup incomplete: {closed.observed['errors']}",
            [closed, calls_evidence(clients)],
        )
    )
    return results


def _test_alert(
    sns: Any, probe: ProbeQueue, topic_arn: str, timeout_seconds: float
) -> list[CheckResult]:
    """SNS-001 / SNS-002: the Day 22 test alert through the topic to the probe queue."""
    results: list[CheckResult] = []
    if not _subscribe(probe, topic_arn, results):
        results.append(
            c.result(
                c.SNS_RECEIPT,
                Status.FAIL,
                topic_arn,
                f"{topic_arn}: no test alert could be sent, the probe queue is not subscribed",
                [],
            )
        )
        return results
    sns.publish(TopicArn=topic_arn, Subject=c.TEST_SUBJECT, Message=c.alert_text(probe.probe_id))
    bodies, waited = probe.receive(
        lambda b: c.find_test_alert(b, probe.probe_id) is not None, timeout_seconds
    )
    source = Evidence(source=f"sqs:ReceiveMessage {probe.name}")
    results.append(c.check_test_alert(topic_arn, list(bodies), probe.probe_id, waited, source))
    return results


def _drive_alarms(
    cw: Any,
    region: str,
    present: list[str],
    by_name: dict[str, dict[str, Any]],
    read: Evidence,
    probe_id: str,
    sleep: Callable[[float], None],
) -> tuple[list[str], list[CheckResult]]:
    """ALARM-003 / ALARM-004: baseline, then OK -> ALARM -> OK observed by DescribeAlarms."""
    logger = run_logger()
    baselines: dict[str, Evidence] = {}
    for name in present:
        if by_name[name].get("StateValue") == "INSUFFICIENT_DATA":
            cw.set_alarm_state(
                AlarmName=name,
                StateValue="OK",
                StateReason=f"{c.BASELINE_REASON} (probe {probe_id})",
            )
            baselines[name] = Evidence(
                source=f"cloudwatch:SetAlarmState {region} {name}",
                observed={
                    "phase": "baseline",
                    "from": "INSUFFICIENT_DATA",
                    "to": "OK",
                    "reason": c.BASELINE_REASON,
                },
            )
            logger.info("%s was INSUFFICIENT_DATA: %s", name, c.BASELINE_REASON)
    results = [c.check_baseline(n, by_name[n], baselines.get(n), read) for n in present]
    driven = [n for n in present if c.drivable(by_name[n])]
    transitions = {
        n: [
            read.model_copy(
                update={
                    "observed": {"phase": "initial", "StateValue": by_name[n].get("StateValue")}
                }
            ),
            *([baselines[n]] if n in baselines else []),
        ]
        for n in driven
    }
    for phase in ("ALARM", "OK") if driven else ():
        for name in driven:
            cw.set_alarm_state(
                AlarmName=name,
                StateValue=phase,
                StateReason=f"mirror-rollout probe {probe_id}: test transition to {phase}, "
                "not a real condition",
            )
        for name, evidence in observe_states(cw, region, driven, phase, sleep).items():
            transitions[name].append(evidence)
    for name in present:
        if name in transitions:
            results.append(c.check_transition(name, transitions[name]))
        else:
            results.append(
                c.skipped(
                    c.ALARM_TRANSITION,
                    name,
                    f"not driven: the alarm was {by_name[name].get('StateValue')} "
                    f"before the probe (see {c.ALARM_BASELINE})",
                )
            )
    return driven, results


def _subscribe(probe: ProbeQueue, topic_arn: str, results: list[CheckResult]) -> bool:
    try:
        evidence = probe.open()
    except Exception as exc:
        code = error_code(exc)
        if not code or is_transient(exc):
            raise  # throttled or unreachable: says nothing about the topic; the task retries
        results.append(
            c.result(
                c.SNS_SUBSCRIBE,
                Status.FAIL,
                topic_arn,
                f"{topic_arn}: no subscription path to the probe queue ({code}: {exc})",
                [Evidence(source=f"sns:Subscribe {topic_arn}", observed={"error": code})],
            )
        )
        return False
    results.append(
        c.result(
            c.SNS_SUBSCRIBE,
            Status.PASS,
            topic_arn,
            f"probe queue {probe.name} subscribed",
            [evidence],
        )
    )
    return True


def _email_subscriptions(sns: Any, topic_arn: str, own: str | None) -> list[CheckResult]:
    source = Evidence(source=f"sns:ListSubscriptionsByTopic {topic_arn}")
    try:
        subscriptions = [
            s
            for page in sns.get_paginator("list_subscriptions_by_topic").paginate(
                TopicArn=topic_arn
            )
            for s in page.get("Subscriptions", [])
            if s.get("SubscriptionArn") != own
        ]
    except Exception as exc:
        code = error_code(exc)
        if not code:
            raise
        return [
            c.result(
                c.SNS_EMAIL,
                Status.FAIL,
                topic_arn,
                f"{topic_arn}: cannot list subscriptions ({code})",
                [source.model_copy(update={"observed": {"error": code}})],
            )
        ]
    return c.check_email_subscriptions(topic_arn, subscriptions, source)


def _history_and_notifications(
    cw: Any,
    region: str,
    caps: Capabilities,
    probe: ProbeQueue,
    driven: list[str],
    present: list[str],
    started: Any,
    timeout_seconds: float,
) -> list[CheckResult]:
    if not caps.alarm_notifications:
        subject = f"{len(present)} contract alarm(s): " + ", ".join(
            n.removeprefix(f"{contract.PREFIX}-") for n in present
        )
        return [
            c.skipped(c.ALARM_HISTORY, subject, caps.why("alarm_history")),
            c.skipped(c.ALARM_NOTIFICATION, subject, caps.why("alarm_notifications")),
        ]
    results = []
    for name in driven:
        items = cw.describe_alarm_history(
            AlarmName=name, HistoryItemType="StateUpdate", StartDate=started
        ).get("AlarmHistoryItems", [])
        source = Evidence(source=f"cloudwatch:DescribeAlarmHistory {region} {name}")
        results.append(c.check_history(name, items, source))
    if probe.subscription_arn is None:
        reason = "the probe queue is not subscribed to the ops topic (see SNS-001)"
        return results + [
            c.result(c.ALARM_NOTIFICATION, Status.FAIL, n, f"{n}: {reason}", []) for n in driven
        ]

    def all_notified(bodies: list[str]) -> bool:
        notified = {
            m["AlarmName"]
            for m in (c.alarm_notification(b) for b in bodies)
            if m and m.get("NewStateValue") == "ALARM"
        }
        return set(driven) <= notified

    bodies, _ = probe.receive(all_notified, timeout_seconds)
    source = Evidence(source=f"sqs:ReceiveMessage {probe.name}")
    results += [c.check_notification(name, list(bodies), source) for name in driven]
    return results


# Retried only when AWS throttled or did not answer; a retry is a new probe with its own queue.
@aws_task("alarm-probe", retry_delay_seconds=[5, 20])
def alarm_probe(
    target: RolloutTarget,
    topic_arn: str | None = None,
    receive_timeout_seconds: float = 60.0,
    notification_timeout_seconds: float = 180.0,
) -> list[CheckResult]:
    """The 8 alarms as contracted, driven ALARM -> OK; SNS test alert received; artifact ``{env}-alarms``."""
    environment, backend = target.environment, target.backend
    clients = AwsClients.of(target)
    results = probe_alarms(
        clients,
        environment,
        capabilities(backend),
        topic_arn,
        receive_timeout_seconds=receive_timeout_seconds,
        notification_timeout_seconds=notification_timeout_seconds,
    )
    return publish_or_fail(
        f"{environment}-alarms",
        results,
        f"Alarms and SNS probe of {environment} ({backend})",
        "alarm/SNS probe failed",
        "fix the alarms or topic (terraform apply) and rerun",
    )
