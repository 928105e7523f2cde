"""Pure alarm and SNS checks over CloudWatch / SNS / SQS responses (dicts in, CheckResults out)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mirror_rollout import contract
from mirror_rollout.environments import environments
from mirror_rollout.results import CheckResult, Evidence, Severity, Status

ALARM_CONFIG = "ALARM-001"
ALARM_EXTRA = "ALARM-002"
ALARM_BASELINE = "ALARM-003"
ALARM_TRANSITION = "ALARM-004"
ALARM_HISTORY = "ALARM-005"
ALARM_NOTIFICATION = "ALARM-006"
SNS_SUBSCRIBE = "SNS-001"
SNS_RECEIPT = "SNS-002"
SNS_EMAIL = "SNS-003"
SNS_CLEANUP = "SNS-004"

TITLES = {
    ALARM_CONFIG: "Alarm exists exactly as the contract says",
    ALARM_EXTRA: "No project alarm outside the contract",
    ALARM_BASELINE: "Alarm in OK state before the probe",
    ALARM_TRANSITION: "Alarm driven to ALARM and back to OK (observed by DescribeAlarms)",
    ALARM_HISTORY: "Alarm history shows the probe's transitions",
    ALARM_NOTIFICATION: "Alarm notification delivered through the ops topic",
    SNS_SUBSCRIBE: "Probe queue subscribed to the ops topic",
    SNS_RECEIPT: "Day 22 test alert received through the ops topic",
    SNS_EMAIL: "No e-mail subscription awaiting confirmation",
    SNS_CLEANUP: "Probe queue and subscription removed",
}

BASELINE_REASON = "baseline by mirror-rollout"
TEST_SUBJECT = "[Test] Phase 4 monitoring validation"
TEST_MESSAGE = "Test alert from Phase 4 Day 22"
PENDING = "PendingConfirmation"
EMAIL_PROTOCOLS = ("email", "email-json")


def result(
    check_id: str,
    status: Status,
    subject: str,
    message: str,
    evidence: list[Evidence],
    severity: Severity = Severity.error,
) -> CheckResult:
    return CheckResult(
        check_id=check_id,
        title=TITLES[check_id],
        status=status,
        severity=severity,
        subject=subject,
        message=message,
        evidence=evidence,
    )


def pass_if(
    ok: bool, check_id: str, subject: str, passed: str, failed: str, evidence: list[Evidence]
) -> CheckResult:
    """PASS saying ``passed``, else FAIL saying ``{subject}: {failed}``."""
    if ok:
        return result(check_id, Status.PASS, subject, passed, evidence)
    return result(check_id, Status.FAIL, subject, f"{subject}: {failed}", evidence)


# -- configuration ---------------------------------------------------------------------
def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def dimensions(alarm: dict[str, Any]) -> dict[str, str]:
    return {d.get("Name"): d.get("Value") for d in alarm.get("Dimensions") or []}


def alarm_facts(alarm: dict[str, Any]) -> dict[str, Any]:
    """The attributes the contract fixes, as read (for evidence)."""
    return {
        "AlarmArn": alarm.get("AlarmArn"),
        "Namespace": alarm.get("Namespace"),
        "MetricName": alarm.get("MetricName"),
        "Dimensions": dimensions(alarm),
        "Statistic": alarm.get("Statistic"),
        "Threshold": alarm.get("Threshold"),
        "ComparisonOperator": alarm.get("ComparisonOperator"),
        "Period": alarm.get("Period"),
        "EvaluationPeriods": alarm.get("EvaluationPeriods"),
        "AlarmActions": alarm.get("AlarmActions"),
        "ActionsEnabled": alarm.get("ActionsEnabled"),
        "StateValue": alarm.get("StateValue"),
    }


def alarm_deviations(
    spec: contract.AlarmSpec, env: str, alarm: dict[str, Any], topic_arn: str
) -> list[str]:
    """Every attribute of ``alarm`` that differs from the contract, as 'attr is X, contract says Y'."""
    expected: list[tuple[str, Any, Any]] = [
        ("namespace", alarm.get("Namespace"), spec.namespace(env)),
        ("metric", alarm.get("MetricName"), spec.metric),
        ("dimensions", dimensions(alarm), spec.dimensions(env)),
        ("statistic", alarm.get("Statistic"), spec.statistic),
        ("threshold", alarm.get("Threshold"), float(spec.threshold)),
        ("comparison", alarm.get("ComparisonOperator"), spec.comparison),
        ("period", alarm.get("Period"), spec.period),
        ("evaluation periods", alarm.get("EvaluationPeriods"), spec.evaluation_periods),
        ("AlarmActions", alarm.get("AlarmActions") or [], [topic_arn]),
        ("ActionsEnabled", alarm.get("ActionsEnabled", True), True),
    ]
    problems = []
    for attribute, seen, wanted in expected:
        if seen != wanted:
            shown = str(seen) if isinstance(seen, float) else _shown(seen)
            problems.append(f"{attribute} is {shown}, contract says {_shown(wanted)}")
    return problems


def check_alarm_config(
    env: str, alarms: Iterable[dict[str, Any]], topic_arn: str, source: Evidence
) -> list[CheckResult]:
    """ALARM-001 for each of the 8 contract alarms, from one DescribeAlarms read (``source``)."""
    by_name = {a.get("AlarmName"): a for a in alarms}
    results = []
    for spec in contract.ALARMS:
        name = spec.full_name(env)
        alarm = by_name.get(name)
        if alarm is None:
            evidence = source.model_copy(update={"observed": {"AlarmName": name, "found": False}})
            results.append(
                result(ALARM_CONFIG, Status.FAIL, name, f"{name}: does not exist", [evidence])
            )
            continue
        evidence = source.model_copy(update={"observed": alarm_facts(alarm)})
        problems = alarm_deviations(spec, env, alarm, topic_arn)
        if problems:
            message = "; ".join(f"{name}: {p}" for p in problems)
            results.append(result(ALARM_CONFIG, Status.FAIL, name, message, [evidence]))
        else:
            summary = (
                f"{spec.namespace(env)} {spec.metric} {spec.comparison} {spec.threshold:g} "
                f"({spec.statistic}, {spec.period}s x{spec.evaluation_periods}) -> {topic_arn}"
            )
            results.append(result(ALARM_CONFIG, Status.PASS, name, summary, [evidence]))
    return results


def extra_alarms(env: str, names: Iterable[str]) -> list[str]:
    """Alarms with the project prefix that the contract does not name (other envs' own excluded)."""
    known = {spec.full_name(env) for spec in contract.ALARMS}
    others = tuple(f"{contract.PREFIX}-{e}-" for e in environments() if e != env)
    return sorted(
        n
        for n in names
        if n.startswith(f"{contract.PREFIX}-") and n not in known and not n.startswith(others)
    )


def check_extra_alarms(env: str, names: Iterable[str], source: Evidence) -> list[CheckResult]:
    names = sorted(names)
    extras = extra_alarms(env, names)
    evidence = source.model_copy(update={"observed": {"alarm_names": names}})
    if not extras:
        return [
            result(
                ALARM_EXTRA,
                Status.PASS,
                f"{contract.PREFIX}-{env}-*",
                f"{len(names)} project alarm(s), all in the contract",
                [evidence],
            )
        ]
    return [
        result(
            ALARM_EXTRA,
            Status.FAIL,
            name,
            f"{name}: alarm with the project prefix is not in the contract",
            [evidence],
        )
        for name in extras
    ]


# -- states ------------------------------------------------------------------------------
def check_baseline(
    name: str, initial: dict[str, Any], baselined: Evidence | None, source: Evidence
) -> CheckResult:
    """ALARM-003: OK before the probe; INSUFFICIENT_DATA is baselined to OK and recorded."""
    state = initial.get("StateValue")
    observed = {"StateValue": state, "StateReason": initial.get("StateReason")}
    evidence = [source.model_copy(update={"observed": observed})]
    if state == "OK":
        return result(ALARM_BASELINE, Status.PASS, name, "OK before the probe", evidence)
    if state == "INSUFFICIENT_DATA" and baselined is not None:
        return result(
            ALARM_BASELINE,
            Status.PASS,
            name,
            f"was INSUFFICIENT_DATA; set to OK ({BASELINE_REASON})",
            [*evidence, baselined],
        )
    return result(
        ALARM_BASELINE,
        Status.FAIL,
        name,
        f"{name}: state is {state} before the probe ({initial.get('StateReason') or 'no reason'}); "
        "investigate the condition, the alarm was not driven",
        evidence,
    )


def drivable(initial: dict[str, Any]) -> bool:
    """Drive only alarms that are OK (or baselined): an alarm in ALARM may be a real condition."""
    return initial.get("StateValue") in ("OK", "INSUFFICIENT_DATA")


def check_transition(name: str, observed: list[Evidence]) -> CheckResult:
    """ALARM-004: the reads after set ALARM / set OK saw exactly those states."""
    seen = [
        (e.observed.get("phase"), e.observed.get("StateValue") or e.observed.get("to"))
        for e in observed
    ]
    after_alarm = [s for p, s in seen if p == "ALARM"]
    after_ok = [s for p, s in seen if p == "OK"]
    states = " -> ".join(str(s) for _, s in seen)
    return pass_if(
        bool(after_alarm and after_alarm[-1] == "ALARM" and after_ok and after_ok[-1] == "OK"),
        ALARM_TRANSITION,
        name,
        f"observed {states}",
        f"expected ALARM then OK, observed {states or 'nothing'}",
        observed,
    )


def history_states(items: Iterable[dict[str, Any]]) -> list[str]:
    """New states of DescribeAlarmHistory StateUpdate items, oldest first."""
    states = []
    for item in sorted(items, key=lambda i: str(i.get("Timestamp", ""))):
        try:
            data = json.loads(item.get("HistoryData") or "{}")
        except ValueError:
            continue
        state = (data.get("newState") or {}).get("stateValue")
        if state:
            states.append(state)
    return states


def check_history(name: str, items: list[dict[str, Any]], source: Evidence) -> CheckResult:
    states = history_states(items)
    evidence = [source.model_copy(update={"observed": {"new_states": states}})]
    return pass_if(
        "ALARM" in states and "OK" in states[states.index("ALARM") :],
        ALARM_HISTORY,
        name,
        f"history: {' -> '.join(states)}",
        f"history since the probe shows {states or 'no state updates'}, expected ALARM then OK",
        evidence,
    )


def skipped(check_id: str, subject: str, reason: str) -> CheckResult:
    return result(check_id, Status.SKIPPED, subject, reason, [])


# -- SNS / SQS messages -----------------------------------------------------------------
def sns_envelope(body: str) -> dict[str, Any]:
    """The SNS notification of an SQS body (non-raw delivery); {} if it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) and "Message" in data else {}


def alarm_notification(body: str) -> dict[str, Any] | None:
    """(AlarmName, NewStateValue, ...) of a CloudWatch alarm notification body, else None."""
    envelope = sns_envelope(body)
    text = envelope.get("Message", body)
    try:
        message = json.loads(text)
    except (TypeError, ValueError):
        return None
    if isinstance(message, dict) and "AlarmName" in message and "NewStateValue" in message:
        return message
    return None


def check_notification(name: str, bodies: Iterable[str], source: Evidence) -> CheckResult:
    states = [
        n["NewStateValue"]
        for n in (alarm_notification(b) for b in bodies)
        if n and n.get("AlarmName") == name
    ]
    evidence = [source.model_copy(update={"observed": {"notified_states": states}})]
    return pass_if(
        "ALARM" in states,
        ALARM_NOTIFICATION,
        name,
        f"notified: {', '.join(states)}",
        "no ALARM notification arrived on the probe queue through the ops topic",
        evidence,
    )


def alert_text(probe_id: str) -> str:
    return f"{TEST_MESSAGE} (mirror-rollout probe {probe_id})"


def find_test_alert(bodies: Iterable[str], probe_id: str) -> dict[str, Any] | None:
    """The SNS notification carrying the test alert of ``probe_id``, if received."""
    for body in bodies:
        envelope = sns_envelope(body)
        message = str(envelope.get("Message", ""))
        if probe_id in message and TEST_MESSAGE in message:
            return envelope
    return None


def check_test_alert(
    topic_arn: str, bodies: list[str], probe_id: str, waited: float, source: Evidence
) -> CheckResult:
    found = find_test_alert(bodies, probe_id)
    if found is None:
        evidence = [
            source.model_copy(update={"observed": {"probe_id": probe_id, "received": len(bodies)}})
        ]
        return result(
            SNS_RECEIPT,
            Status.FAIL,
            topic_arn,
            f"{topic_arn}: the test alert of probe {probe_id} did not arrive within {waited:.0f}s",
            evidence,
        )
    observed = {
        "probe_id": probe_id,
        "MessageId": found.get("MessageId"),
        "Subject": found.get("Subject"),
        "Timestamp": found.get("Timestamp"),
        "TopicArn": found.get("TopicArn"),
        "waited_seconds": round(waited, 2),
    }
    evidence = [source.model_copy(update={"observed": observed})]
    if found.get("Subject") != TEST_SUBJECT or found.get("TopicArn") != topic_arn:
        return result(
            SNS_RECEIPT,
            Status.FAIL,
            topic_arn,
            f"{topic_arn}: probe message arrived with subject {found.get('Subject')!r} "
            f"from {found.get('TopicArn')}",
            evidence,
        )
    return result(
        SNS_RECEIPT,
        Status.PASS,
        topic_arn,
        f"received {TEST_SUBJECT!r} (probe {probe_id}) in {waited:.1f}s",
        evidence,
    )


def check_email_subscriptions(
    topic_arn: str, subscriptions: list[dict[str, Any]], source: Evidence
) -> list[CheckResult]:
    """SNS-003: a warning per e-mail subscription still PendingConfirmation, else one PASS."""
    emails = [s for s in subscriptions if s.get("Protocol") in EMAIL_PROTOCOLS]
    observed = {
        "subscriptions": [
            {k: s.get(k) for k in ("Protocol", "Endpoint", "SubscriptionArn")}
            for s in subscriptions
        ]
    }
    evidence = [source.model_copy(update={"observed": observed})]
    pending = [s for s in emails if s.get("SubscriptionArn") == PENDING]
    if not pending:
        return [
            result(
                SNS_EMAIL,
                Status.PASS,
                topic_arn,
                f"{len(emails)} e-mail subscription(s), none pending confirmation",
                evidence,
            )
        ]
    return [
        result(
            SNS_EMAIL,
            Status.FAIL,
            f"{topic_arn} {s.get('Endpoint')}",
            f"e-mail subscription of {s.get('Endpoint')} to {topic_arn} is {PENDING}: "
            "confirm it from the link AWS sent to that inbox",
            evidence,
            Severity.warning,
        )
        for s in pending
    ]
