"""Alarm + SNS probe: pure checks on dict fixtures; the probe against staging on the sandbox."""

from __future__ import annotations

import json
import os

import pytest

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.evidence import ValidationFailed, capabilities
from mirror_rollout.results import Evidence, Severity, Status
from tasks.alarms import checks as c
from tasks.alarms.probe import PROBE_QUEUE_PREFIX, queue_policy
from tasks.alarms.task import alarm_probe, probe_alarms
from tests.applied import shared_staging
from tests.aws_inventory import client
from tests.support.targets import sandbox_target

pytestmark = pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")

ENV = "staging"
TOPIC = f"arn:aws:sns:us-east-1:123456789012:{contract.name(ENV, 'ops-alerts')}"
CONSENT_READ = contract.name(ENV, "consent-read-throttle")
READ = Evidence(source="cloudwatch:DescribeAlarms us-east-1 mirror-dissonance-*")


def contract_alarm(spec: contract.AlarmSpec, **changes) -> dict:
    alarm = {
        "AlarmName": spec.full_name(ENV),
        "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{spec.full_name(ENV)}",
        "Namespace": spec.namespace(ENV),
        "MetricName": spec.metric,
        "Dimensions": [{"Name": k, "Value": v} for k, v in spec.dimensions(ENV).items()],
        "Statistic": spec.statistic,
        "Threshold": float(spec.threshold),
        "ComparisonOperator": spec.comparison,
        "Period": spec.period,
        "EvaluationPeriods": spec.evaluation_periods,
        "AlarmActions": [TOPIC],
        "ActionsEnabled": True,
        "StateValue": "OK",
    }
    return alarm | changes


def by_check(results, check_id):
    return [r for r in results if r.check_id == check_id]


# -- pure: configuration ---------------------------------------------------------------------
def test_contract_alarms_pass():
    results = c.check_alarm_config(ENV, [contract_alarm(s) for s in contract.ALARMS], TOPIC, READ)
    assert [r.status for r in results] == [Status.PASS] * 8
    assert results[0].evidence[0].observed["Threshold"] == 10.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"Threshold": 100.0}, "threshold is 100.0, contract says 10"),
        ({"Period": 60}, "period is 60, contract says 300"),
        ({"EvaluationPeriods": 3}, "evaluation periods is 3, contract says 1"),
        ({"Statistic": "Average"}, "statistic is Average, contract says Sum"),
        (
            {"ComparisonOperator": "GreaterThanOrEqualToThreshold"},
            "comparison is GreaterThanOrEqualToThreshold, contract says GreaterThanThreshold",
        ),
        ({"Namespace": "Custom"}, "namespace is Custom, contract says AWS/DynamoDB"),
        (
            {"MetricName": "ReadThrottles"},
            "metric is ReadThrottles, contract says ReadThrottleEvents",
        ),
        (
            {"Dimensions": [{"Name": "TableName", "Value": "other"}]},
            'dimensions is {"TableName": "other"}, contract says '
            '{"TableName": "mirror-dissonance-staging-consent"}',
        ),
        ({"AlarmActions": []}, f'AlarmActions is [], contract says ["{TOPIC}"]'),
        ({"ActionsEnabled": False}, "ActionsEnabled is False, contract says True"),
    ],
)
def test_each_deviation_is_named(changes, message):
    alarms = [contract_alarm(s) for s in contract.ALARMS if s.full_name(ENV) != CONSENT_READ]
    spec = next(s for s in contract.ALARMS if s.full_name(ENV) == CONSENT_READ)
    results = c.check_alarm_config(ENV, [*alarms, contract_alarm(spec, **changes)], TOPIC, READ)
    failed = [r for r in results if r.status is Status.FAIL]
    assert [r.subject for r in failed] == [CONSENT_READ]
    assert failed[0].message == f"{CONSENT_READ}: {message}"


def test_missing_alarm_fails_naming_it():
    alarms = [contract_alarm(s) for s in contract.ALARMS[1:]]
    failed = [r for r in c.check_alarm_config(ENV, alarms, TOPIC, READ) if r.status is Status.FAIL]
    name = contract.ALARMS[0].full_name(ENV)
    assert [r.message for r in failed] == [f"{name}: does not exist"]


def test_extra_alarms():
    names = [s.full_name(ENV) for s in contract.ALARMS]
    others = ["mirror-dissonance-production-consent-read-throttle", "unrelated-alarm"]
    extras = ["mirror-dissonance-staging-debug", "mirror-dissonance-legacy-throttle"]
    assert c.extra_alarms(ENV, names + others + extras) == sorted(extras)
    results = c.check_extra_alarms(ENV, names + extras, READ)
    assert {r.subject for r in results} == set(extras)
    assert all(r.status is Status.FAIL and "not in the contract" in r.message for r in results)
    assert [r.status for r in c.check_extra_alarms(ENV, names + others, READ)] == [Status.PASS]


# -- pure: states, history, notifications ---------------------------------------------------
def test_baseline():
    ok = c.check_baseline(CONSENT_READ, {"StateValue": "OK"}, None, READ)
    assert ok.status is Status.PASS
    baselined = Evidence(source="cloudwatch:SetAlarmState", observed={"to": "OK"})
    insufficient = c.check_baseline(
        CONSENT_READ, {"StateValue": "INSUFFICIENT_DATA"}, baselined, READ
    )
    assert insufficient.status is Status.PASS and c.BASELINE_REASON in insufficient.message
    assert insufficient.evidence[-1] is baselined
    alarm = c.check_baseline(
        CONSENT_READ, {"StateValue": "ALARM", "StateReason": "Threshold Crossed"}, None, READ
    )
    assert alarm.status is Status.FAIL and "Threshold Crossed" in alarm.message
    assert not c.drivable({"StateValue": "ALARM"}) and c.drivable({"StateValue": "OK"})


def states(*pairs) -> list[Evidence]:
    return [Evidence(source="d", observed={"phase": p, "StateValue": s}) for p, s in pairs]


def test_transition():
    good = c.check_transition(
        CONSENT_READ, states(("initial", "OK"), ("ALARM", "ALARM"), ("OK", "OK"))
    )
    assert good.status is Status.PASS and good.message == "observed OK -> ALARM -> OK"
    stuck = c.check_transition(CONSENT_READ, states(("ALARM", "OK"), ("OK", "OK")))
    assert stuck.status is Status.FAIL and "observed OK -> OK" in stuck.message


def history_item(state: str, ts: str) -> dict:
    data = {"oldState": {"stateValue": "OK"}, "newState": {"stateValue": state}}
    return {"Timestamp": ts, "HistoryItemType": "StateUpdate", "HistoryData": json.dumps(data)}


def test_history():
    items = [
        history_item("OK", "2026-11-27T12:00:02"),
        history_item("ALARM", "2026-11-27T12:00:01"),
    ]
    assert c.history_states(items) == ["ALARM", "OK"]
    assert c.check_history(CONSENT_READ, items, READ).status is Status.PASS
    assert c.check_history(CONSENT_READ, items[:1], READ).status is Status.FAIL


def notification(name: str, state: str) -> str:
    message = {"AlarmName": name, "NewStateValue": state, "OldStateValue": "OK"}
    return json.dumps({"Type": "Notification", "TopicArn": TOPIC, "Message": json.dumps(message)})


def test_notifications():
    assert c.alarm_notification(notification(CONSENT_READ, "ALARM"))["NewStateValue"] == "ALARM"
    assert c.alarm_notification("not json") is None
    raw = json.dumps({"AlarmName": CONSENT_READ, "NewStateValue": "OK"})
    assert c.alarm_notification(raw)["NewStateValue"] == "OK"  # raw message delivery
    bodies = [notification(CONSENT_READ, "ALARM"), notification("other", "ALARM")]
    assert c.check_notification(CONSENT_READ, bodies, READ).status is Status.PASS
    assert c.check_notification("x", bodies[:1], READ).status is Status.FAIL


def envelope(subject: str, message: str, topic: str = TOPIC) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "m1",
            "TopicArn": topic,
            "Subject": subject,
            "Message": message,
        }
    )


def test_test_alert():
    body = envelope(c.TEST_SUBJECT, c.alert_text("abc123"))
    assert c.find_test_alert(["junk", body], "abc123")["MessageId"] == "m1"
    assert c.find_test_alert([body], "zzz") is None
    ok = c.check_test_alert(TOPIC, [body], "abc123", 1.5, READ)
    assert ok.status is Status.PASS and ok.evidence[0].observed["MessageId"] == "m1"
    missing = c.check_test_alert(TOPIC, [], "abc123", 60, READ)
    assert missing.status is Status.FAIL and "did not arrive within 60s" in missing.message
    wrong = c.check_test_alert(
        TOPIC, [envelope("other", c.alert_text("abc123"))], "abc123", 1, READ
    )
    assert wrong.status is Status.FAIL


def test_pending_email_subscription_is_a_warning():
    subs = [
        {"Protocol": "email", "Endpoint": "ops@example.com", "SubscriptionArn": c.PENDING},
        {"Protocol": "sqs", "Endpoint": "arn:aws:sqs:...", "SubscriptionArn": f"{TOPIC}:1"},
    ]
    [pending] = c.check_email_subscriptions(TOPIC, subs, READ)
    assert pending.status is Status.FAIL and pending.severity is Severity.warning
    assert not pending.blocking and "confirm it" in pending.message
    assert "ops@example.com" in pending.message
    confirmed = [{"Protocol": "email", "Endpoint": "ops@x", "SubscriptionArn": f"{TOPIC}:2"}]
    [ok] = c.check_email_subscriptions(TOPIC, confirmed, READ)
    assert ok.status is Status.PASS and ok.message.startswith("1 e-mail")


def test_queue_policy_admits_only_the_topic():
    statement = json.loads(queue_policy("arn:aws:sqs:r:1:q", TOPIC))["Statement"][0]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": TOPIC}}


# -- against the sandbox --------------------------------------------------------------------
@pytest.fixture(scope="module")
def staging(prefect_api, tmp_path_factory):
    return shared_staging(tmp_path_factory.mktemp("plan")).outputs


def region() -> str:
    return os.environ["AWS_REGION"]


def probe_queues() -> list[str]:
    return client("sqs").list_queues(QueueNamePrefix=PROBE_QUEUE_PREFIX).get("QueueUrls", [])


def subscriptions(topic: str) -> list[dict]:
    return client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]


def run_probe(clients: AwsClients | None = None, **kwargs):
    clients = clients or AwsClients(region())
    kwargs.setdefault("receive_timeout_seconds", 10)
    return probe_alarms(clients, ENV, capabilities("sandbox"), sleep=lambda _: None, **kwargs)


def test_clean_deployment(staging):
    results = alarm_probe.fn(sandbox_target(ENV, region()), receive_timeout_seconds=10)
    assert [r for r in results if r.status is Status.FAIL] == []
    skipped = [r for r in results if r.status is Status.SKIPPED]
    assert [r.check_id for r in skipped] == ["ALARM-005", "ALARM-006"]
    caps = capabilities("sandbox")  # each its own moto behaviour
    assert [r.message for r in skipped] == [
        caps.why("alarm_history"),
        caps.why("alarm_notifications"),
    ]
    passed = {r.check_id: [] for r in results if r.status is Status.PASS}
    for r in results:
        passed.get(r.check_id, []).append(r)
    assert {k: len(v) for k, v in passed.items()} == {
        "ALARM-001": 8,
        "ALARM-002": 1,
        "SNS-001": 1,
        "SNS-002": 1,
        "SNS-003": 1,
        "ALARM-003": 8,
        "ALARM-004": 8,
        "SNS-004": 1,
    }
    assert all(r.evidence for r in results if r.status is Status.PASS)
    transition = by_check(results, "ALARM-004")[0]
    assert [e.observed["StateValue"] for e in transition.evidence] == ["OK", "ALARM", "OK"]
    assert by_check(results, "ALARM-001")[0].evidence[0].observed["AlarmActions"] == [
        staging["sns_topic_arn"]
    ]
    receipt = by_check(results, "SNS-002")[0]
    assert receipt.evidence[0].observed["Subject"] == c.TEST_SUBJECT
    calls = results[-1].evidence[-1].observed
    assert calls["api_calls_by_operation"]["cloudwatch.SetAlarmState"] == 16
    assert calls["api_calls"] == sum(calls["api_calls_by_operation"].values())
    assert probe_queues() == []
    assert subscriptions(staging["sns_topic_arn"]) == []
    states = {a["StateValue"] for a in client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert states == {"OK"}


def test_insufficient_data_is_baselined_and_recorded(staging):
    cw = client("cloudwatch")
    cw.set_alarm_state(AlarmName=CONSENT_READ, StateValue="INSUFFICIENT_DATA", StateReason="t")
    results = run_probe()
    [baseline] = [r for r in by_check(results, "ALARM-003") if r.subject == CONSENT_READ]
    assert baseline.status is Status.PASS and c.BASELINE_REASON in baseline.message
    assert baseline.evidence[-1].observed["reason"] == c.BASELINE_REASON
    [transition] = [r for r in by_check(results, "ALARM-004") if r.subject == CONSENT_READ]
    assert transition.message == "observed INSUFFICIENT_DATA -> OK -> ALARM -> OK"
    assert not [r for r in results if r.blocking]


def test_alarm_already_in_alarm_is_not_driven(staging):
    cw = client("cloudwatch")
    cw.set_alarm_state(AlarmName=CONSENT_READ, StateValue="ALARM", StateReason="real throttling")
    try:
        results = run_probe()
    finally:
        cw.set_alarm_state(AlarmName=CONSENT_READ, StateValue="OK", StateReason="test reset")
    [baseline] = [r for r in by_check(results, "ALARM-003") if r.subject == CONSENT_READ]
    assert baseline.status is Status.FAIL and "real throttling" in baseline.message
    [transition] = [r for r in by_check(results, "ALARM-004") if r.subject == CONSENT_READ]
    assert transition.status is Status.SKIPPED
    assert len([r for r in by_check(results, "ALARM-004") if r.status is Status.PASS]) == 7


def test_threshold_changed_out_of_band_fails_naming_it(staging):
    cw = client("cloudwatch")
    original = cw.describe_alarms(AlarmNames=[CONSENT_READ])["MetricAlarms"][0]
    keep = (
        "AlarmName", "AlarmDescription", "Namespace", "MetricName", "Dimensions", "Statistic",
        "ComparisonOperator", "Period", "EvaluationPeriods", "AlarmActions", "OKActions",
        "Threshold",
    )  # fmt: skip
    arguments = {k: original[k] for k in keep if k in original}
    cw.put_metric_alarm(**(arguments | {"Threshold": 100.0}))
    try:
        with pytest.raises(ValidationFailed, match=CONSENT_READ):
            alarm_probe.fn(sandbox_target(ENV, region()), receive_timeout_seconds=10)
        results = run_probe()
    finally:
        cw.put_metric_alarm(**arguments)
    failed = [r for r in results if r.status is Status.FAIL]
    assert [(r.check_id, r.message) for r in failed] == [
        ("ALARM-001", f"{CONSENT_READ}: threshold is 100.0, contract says 10")
    ]
    assert probe_queues() == []


def test_extra_project_alarm_fails(staging):
    cw = client("cloudwatch")
    extra = contract.name(ENV, "debug-alarm")
    cw.put_metric_alarm(
        AlarmName=extra, Namespace="X", MetricName="m", ComparisonOperator="GreaterThanThreshold",
        EvaluationPeriods=1, Period=60, Statistic="Sum", Threshold=1,
    )  # fmt: skip
    try:
        results = run_probe()
    finally:
        cw.delete_alarms(AlarmNames=[extra])
    failed = [r for r in results if r.status is Status.FAIL]
    assert [(r.check_id, r.subject) for r in failed] == [("ALARM-002", extra)]


def test_confirmed_email_subscription_passes(staging):
    sns = client("sns")
    arn = sns.subscribe(
        TopicArn=staging["sns_topic_arn"], Protocol="email", Endpoint="ops@example.com",
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]  # fmt: skip
    try:
        results = run_probe()
    finally:
        sns.unsubscribe(SubscriptionArn=arn)
    [email] = by_check(results, "SNS-003")
    assert email.status is Status.PASS and email.message.startswith("1 e-mail subscription")


def test_probe_queue_is_removed_when_the_probe_raises(staging):
    clients = AwsClients(region())

    def explode(**_):
        raise RuntimeError("network gone while publishing")

    clients.client("sns").meta.events.register("before-call.sns.Publish", explode)
    with pytest.raises(RuntimeError, match="network gone"):
        run_probe(clients)
    assert clients.calls["sqs.CreateQueue"] == 1 and clients.calls["sns.Subscribe"] == 1
    assert clients.calls["sqs.DeleteQueue"] == 1 and clients.calls["sns.Unsubscribe"] == 1
    assert probe_queues() == []
    assert subscriptions(staging["sns_topic_arn"]) == []


def test_artifact_published_inside_a_flow_run(staging, prefect_api):
    from prefect import flow

    from tests.rollout_run import artifacts_of

    @flow(name="alarm-probe-test")
    def check():
        return alarm_probe(sandbox_target(ENV, region()), receive_timeout_seconds=10)

    state = check(return_state=True)
    assert state.is_completed()
    artifact = artifacts_of(str(state.state_details.flow_run_id))["staging-alarms"]
    assert "SNS-002" in artifact and "ALARM-004" in artifact and "SKIPPED" in artifact


# Destructive: keep last in this module.
def test_topic_gone_fails_sns_and_leaves_no_probe_queue(staging):
    client("sns").delete_topic(TopicArn=staging["sns_topic_arn"])
    with pytest.raises(ValidationFailed, match="no subscription path"):
        alarm_probe.fn(sandbox_target(ENV, region()), receive_timeout_seconds=5)
    results = run_probe(receive_timeout_seconds=5)
    failed = {r.check_id: r for r in results if r.blocking}
    assert set(failed) == {"SNS-001", "SNS-002", "SNS-003"}
    assert "no subscription path to the probe queue" in failed["SNS-001"].message
    assert "NotFound" in failed["SNS-001"].message
    assert by_check(results, "SNS-004")[0].status is Status.PASS
    assert probe_queues() == []
