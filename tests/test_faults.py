"""Fault injection: the proxy itself, then a fault at each stage of the rollout.

A ``FaultProxy`` sits between the pipeline and the session's moto; the tests point
AWS_ENDPOINT_URL at it and arm it to refuse, stall, drop, throttle or fail the next N
requests of one service. Every run talks HTTP to the real servers; nothing is patched.

Standard retry mode with AwsClients' max_attempts=5 means up to 6 attempts per call:
a fault on 5 consecutive requests is absorbed, on 6 it surfaces.
"""

from __future__ import annotations

import re
import uuid

import boto3
import httpx
import pytest
from botocore.config import Config
from prefect import flow

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.results import Status
from tests.applied import state_document, state_serial
from tests.aws_inventory import inventory
from tests.conftest import reset_moto
from tests.fault_proxy import FaultProxy, FaultRule, cbor_map, error_response, identify
from tests.rollout_run import approve_as, run_rollout, task_names
from tests.support.targets import sandbox_target

ENV = "staging"
REGION = "us-east-1"
# ``.fn`` calls publish their artifact outside a run, which Prefect 3 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")


@pytest.fixture(scope="module")
def proxy(sandbox):
    with FaultProxy(sandbox.exports["AWS_ENDPOINT_URL"]) as running:
        yield running


@pytest.fixture(autouse=True)
def no_leftover_rules(request):
    yield
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").clear()


def raw(proxy: FaultProxy, service: str, attempts: int = 3, read_timeout: float = 5):
    """A plain boto3 client through the proxy: ``attempts`` in total, standard mode."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=2,
        read_timeout=read_timeout,
    )
    return boto3.client(service, region_name=REGION, endpoint_url=proxy.url, config=config)


def client(service: str):
    """A plain boto3 client on AWS_ENDPOINT_URL (the proxy, with no fault armed)."""
    return boto3.client(service, region_name=REGION)


# -- the proxy on its own -----------------------------------------------------------------------
def test_requests_are_identified_and_errors_have_each_protocols_wire_shape():
    headers = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/"
        "aws4_request, SignedHeaders=host, Signature=x",
        "X-Amz-Target": "DynamoDB_20120810.PutItem",
        "Content-Type": "application/x-amz-json-1.0",
    }
    put = identify("POST", "/", headers, b"{}")
    assert (put.service, put.operation, put.protocol) == ("dynamodb", "PutItem", "json")
    throttle = error_response(put, FaultRule.parse({"service": "dynamodb", "fault": "throttle"}))
    assert throttle.status == 400 and throttle.headers["x-amzn-ErrorType"] == (
        "ProvisionedThroughputExceededException"
    )
    assert b"#ProvisionedThroughputExceededException" in throttle.body
    describe = identify(
        "POST", "/", {**headers, "X-Amz-Target": "DynamoDB_20120810.DescribeTable"}, b""
    )
    rule = FaultRule.parse({"service": "dynamodb", "fault": "throttle"})
    assert error_response(describe, rule).headers["x-amzn-ErrorType"] == "ThrottlingException"
    sns = identify(
        "POST",
        "/",
        {
            "Authorization": headers["Authorization"].replace("/dynamodb/", "/sns/"),
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        },
        b"Action=Publish&Version=2010-03-31",
    )
    assert (sns.service, sns.operation, sns.protocol) == ("sns", "Publish", "query")
    assert b"<Code>Throttling</Code>" in error_response(sns, rule).body
    s3 = identify(
        "PUT",
        "/bucket/key",
        {"Authorization": headers["Authorization"].replace("/dynamodb/", "/s3/")},
        b"",
    )
    slow = error_response(s3, rule)
    assert slow.status == 503 and b"<Code>SlowDown</Code>" in slow.body
    assert cbor_map({"a": "b"}) == b"\xa1\x61a\x61b"
    unsigned = identify("POST", "/moto-api/reset", {}, b"")
    assert unsigned.service is None and not rule.matches(unsigned.service, unsigned.operation)
    with pytest.raises(Exception, match="unknown fault 'explode'"):
        FaultRule.parse({"service": "s3", "fault": "explode"})


@pytest.mark.parametrize(
    ("service", "fault", "error"),
    [
        ("dynamodb", "throttle", "ProvisionedThroughputExceededException"),
        ("sns", "throttle", "Throttling"),
        ("s3", "throttle", "SlowDown"),
        ("sqs", "error", "InternalFailure"),
        ("monitoring", "refuse", "Connection was closed"),
        ("ssm", "stall", "Read timeout"),
    ],
)
def test_each_fault_is_retried_below_the_attempts_and_surfaces_at_them(
    proxy, service, fault, error
):
    name = f"fault-{uuid.uuid4().hex[:8]}"
    clients = {
        "dynamodb": raw(proxy, "dynamodb"),
        "sns": raw(proxy, "sns"),
        "s3": raw(proxy, "s3"),
        "sqs": raw(proxy, "sqs"),
        "monitoring": raw(proxy, "cloudwatch"),
        "ssm": raw(proxy, "ssm", read_timeout=1),
    }
    if service == "dynamodb":
        clients["dynamodb"].create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    if service == "s3":
        clients["s3"].create_bucket(Bucket=name)
    if service == "ssm":  # moto loads SSM's public parameters on first use: not within 1 s
        raw(proxy, "ssm", read_timeout=60).describe_parameters()
    calls = {
        "dynamodb": lambda: clients["dynamodb"].put_item(TableName=name, Item={"k": {"S": "1"}}),
        "sns": lambda: clients["sns"].create_topic(Name=name),
        "s3": lambda: clients["s3"].put_object(Bucket=name, Key="k", Body=b"x"),
        "sqs": lambda: clients["sqs"].list_queues(QueueNamePrefix=name),
        "monitoring": lambda: clients["monitoring"].describe_alarms(AlarmNamePrefix=name),
        "ssm": lambda: clients["ssm"].describe_parameters(),
    }
    # 2 faults, 3 attempts: retried, then answered.
    rule = proxy.inject(service, fault, 2, stall_seconds=3)
    response = calls[service]()
    assert rule.injected == 2 and response["ResponseMetadata"]["RetryAttempts"] == 2
    proxy.clear()
    # 3 faults, 3 attempts: the caller sees the error, naming what happened.
    proxy.inject(service, fault, 3, stall_seconds=3)
    with pytest.raises(Exception, match=error) as raised:
        calls[service]()
    if fault in ("throttle", "error"):
        assert "reached max retries: 2" in str(raised.value)


def test_drop_applies_the_request_and_loses_the_response(proxy, sandbox):
    sqs = raw(proxy, "sqs", attempts=1)
    name = f"fault-drop-{uuid.uuid4().hex[:8]}"
    proxy.inject("sqs", "drop", 1, operation="CreateQueue")
    with pytest.raises(Exception, match="Connection was closed"):
        sqs.create_queue(QueueName=name)
    moto = boto3.client("sqs", region_name=REGION, endpoint_url=sandbox.exports["AWS_ENDPOINT_URL"])
    url = moto.get_queue_url(QueueName=name)["QueueUrl"]  # it exists all the same
    moto.delete_queue(QueueUrl=url)
    assert [i["operation"] for i in proxy.injected][-1:] == ["CreateQueue"]


def test_control_api_and_named_connection_errors(proxy, monkeypatch):
    api = proxy.url + "/__faults__"
    added = httpx.post(
        api, json={"service": "sts", "fault": "refuse", "count": None}, trust_env=False
    )
    assert added.status_code == 201 and added.json()["rules"][0]["count"] is None
    bad = httpx.post(api, json={"service": "sts", "fault": "throttle", "count": 0}, trust_env=False)
    assert bad.status_code == 400 and "count must be 1 or more" in bad.json()["error"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    clients = AwsClients(REGION, max_attempts=1)  # 2 attempts in all
    with pytest.raises(Exception) as raised:
        clients.client("sts").get_caller_identity()
    assert str(raised.value).startswith(
        "AWS sts GetCallerIdentity: no valid response after up to 2 attempts (unreachable"
    )
    status = httpx.get(api, trust_env=False).json()
    assert status["rules"][0]["injected"] == 2 and status["requests"]["sts.GetCallerIdentity"] == 2
    assert httpx.delete(api, trust_env=False).json()["rules"] == []
    assert clients.client("sts").get_caller_identity()["Account"]


# -- a fault at each stage of the rollout -------------------------------------------------------
@pytest.fixture(scope="module")
def staging(proxy, sandbox, prefect_api, tmp_path_factory):
    """Staging rolled out through the proxy: first run throttled to a stop mid-apply, the
    re-run applies the rest. The environment stays pointed at the proxy for the module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", proxy.url)
        reset_moto()
        out = tmp_path_factory.mktemp("faults")
        # Once the plan is approved, CloudWatch throttles every request: the apply stops at
        # the first alarm (the plan's own checks read CloudWatch before review).
        rules = []
        approve = approve_as("fault-test")

        def throttle_then_approve(run_id: str, key: str) -> None:
            rules.append(proxy.inject("monitoring", "throttle", None))
            approve(run_id, key)

        first = run_rollout(throttle_then_approve, out_dir=str(out), approval_timeout_seconds=60)
        injected = rules[0].injected
        proxy.clear()
        stopped = {
            "state": first.state,
            "serial": state_serial(ENV),
            "inventory": inventory(),
            "injected": injected,
        }
        second = run_rollout(
            approve_as("fault-test"), out_dir=str(out), approval_timeout_seconds=60
        )
        yield {"stopped": stopped, "first": first, "second": second, "out": out}


def test_apply_throttled_to_a_stop_keeps_state_consistent_and_the_rerun_applies_the_rest(
    staging,
):
    stopped, first, second = staging["stopped"], staging["first"], staging["second"]
    message = stopped["state"].message or ""
    assert stopped["state"].is_failed() and first.pauses == ["approval-1"]
    assert "terraform apply failed" in message and "PutMetricAlarm" in message
    assert "were applied and are in state before aws_cloudwatch_metric_alarm." in message
    assert "run the rollout again" in message
    # The provider's max_retries (2) per call, for the alarms Terraform had started at once.
    assert stopped["injected"] >= 2
    assert stopped["inventory"]["alarms"] == [] and len(stopped["inventory"]["tables"]) == 3
    assert not any(n.startswith(("pitr", "e2e")) for n in task_names(first.flow_run_id))
    # The re-run plans only what is left, has it approved and applies it; nothing twice.
    assert second.state.is_completed(), second.state.message
    assert second.pauses == ["approval-1"]
    result = second.state.result()
    applied_first = int(re.search(r"; (\d+) change\(s\) were applied", message).group(1))
    assert 0 < applied_first < 32 and result["applied"] == 32 - applied_first
    after = inventory()
    assert len(after["alarms"]) == 8 and after["tables"] == stopped["inventory"]["tables"]
    assert after["buckets"] == stopped["inventory"]["buckets"]
    assert after["topics"] == stopped["inventory"]["topics"]
    assert state_serial(ENV) > stopped["serial"]


def test_plan_throttled_is_retried_and_a_rerun_after_apply_changes_nothing(staging, proxy):
    serial, before = state_serial(ENV), inventory()
    rule = proxy.inject("dynamodb", "throttle", 3)  # the plan's first DynamoDB calls
    run = run_rollout(
        approve_as("nobody"), out_dir=str(staging["out"]), approval_timeout_seconds=30
    )
    assert run.state.is_completed(), run.state.message
    assert rule.injected == 3
    assert run.pauses == []  # nothing to approve
    assert run.state.result()["applied"] == 0
    assert not any(n.startswith("apply") for n in task_names(run.flow_run_id))
    assert state_serial(ENV) == serial and inventory()["tables"] == before["tables"]


@flow(name="fault-pitr")
def pitr_flow() -> list:
    from tasks.pitr.task import pitr

    return pitr(sandbox_target(ENV, REGION))


def test_pitr_outlasting_botocore_retries_is_retried_by_prefect(staging, proxy):
    rule = proxy.inject("dynamodb", "refuse", 6)  # the whole first attempt of the task
    state = pitr_flow(return_state=True)
    assert state.is_completed(), state.message
    assert rule.injected == 6
    results = state.result()
    assert [r.status for r in results] == [Status.PASS] * 3
    assert all("enabled by" not in r.message for r in results)  # nothing re-enabled


def test_alarm_probe_leaves_no_queue_when_its_create_response_is_lost(staging, proxy):
    from tasks.alarms.task import alarm_probe

    rule = proxy.inject("sqs", "drop", 6, operation="CreateQueue")
    with pytest.raises(Exception) as raised:
        alarm_probe.fn(sandbox_target(ENV, REGION), receive_timeout_seconds=10)
    assert rule.injected == 6
    assert str(raised.value).startswith("AWS sqs CreateQueue: no valid response after up to 6")
    assert probe_queues() == []  # created at moto, found by name, deleted
    results = alarm_probe.fn(sandbox_target(ENV, REGION), receive_timeout_seconds=10)
    assert [r for r in results if r.status is Status.FAIL] == []
    assert probe_queues() == []
    topic = state_document(ENV)["outputs"]["sns_topic_arn"]["value"]
    assert client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []


def probe_queues() -> list[str]:
    from tasks.alarms.probe import PROBE_QUEUE_PREFIX

    return client("sqs").list_queues(QueueNamePrefix=PROBE_QUEUE_PREFIX).get("QueueUrls", [])


def test_e2e_lost_responses_record_one_event_and_count_once(staging, proxy):
    from tasks.e2e.task import e2e_cycle

    lost_put = proxy.inject("dynamodb", "drop", 1, operation="PutItem")
    lost_update = proxy.inject("dynamodb", "drop", 1, operation="UpdateItem")
    throttled = proxy.inject("dynamodb", "throttle", 2, operation="Query")
    run_id = f"faults-{uuid.uuid4().hex[:8]}"
    outcome = e2e_cycle.fn(sandbox_target(ENV, REGION), run_id=run_id)
    assert (lost_put.injected, lost_update.injected, throttled.injected) == (1, 1, 2)
    assert [r.status for r in outcome.results] == [Status.PASS] * len(outcome.results)
    record = outcome.results[1]
    assert "written by an earlier attempt whose response was lost" in record.message
    counter = next(r for r in outcome.results if "block counter" in r.message)
    observed = next(e.observed for e in counter.evidence if "after" in e.observed)
    assert observed["after"] == observed["before"] + 1
    stored = client("dynamodb").get_item(
        TableName=contract.name(ENV, "block-counter"),
        Key={"bucketKey": {"S": observed["bucketKey"]}},
        ConsistentRead=True,
    )["Item"]
    assert int(stored["count"]["N"]) == observed["after"]
    events = client("dynamodb").scan(
        TableName=contract.name(ENV, "fp-events"),
        FilterExpression="begins_with(findingId, :f)",
        ExpressionAttributeValues={":f": {"S": f"e2e-{run_id}-"}},
    )["Items"]
    assert len(events) == 1


def nonce_versions() -> list[int]:
    from tasks.nonce import store

    return store.read_state(AwsClients(REGION), ENV).live


def test_rotation_whose_put_response_is_lost_creates_one_version(staging, proxy):
    from flows.nonce_rotation import nonce_rotation, register_cleanup_deployment

    register_cleanup_deployment()
    assert nonce_versions() == [1]
    rule = proxy.inject("ssm", "drop", 1, operation="PutParameter")
    state = nonce_rotation(environment=ENV, return_state=True)
    assert state.is_completed(), state.message
    assert rule.injected == 1
    result = state.result()
    assert (result["new_version"], result["created"]) == (2, False)  # found by its tag
    assert nonce_versions() == [1, 2]
    undone = nonce_rotation(environment=ENV, rollback=True, return_state=True)
    assert undone.is_completed(), undone.message
    assert nonce_versions() == [1]


def test_rotation_rerun_after_a_failure_past_put_parameter_resumes_it(staging, proxy):
    from flows.nonce_rotation import nonce_rotation
    from tests.test_nonce import cleanup_runs

    # The read after PutParameter is refused for good: the run fails with v2 created.
    proxy.inject(
        "ssm",
        "error",
        None,
        operation="DescribeParameters",
        after=2,
        status=400,
        code="AccessDeniedException",
    )
    failed = nonce_rotation(environment=ENV, return_state=True)
    assert failed.is_failed() and "AccessDeniedException" in (failed.message or "")
    first_id = str(failed.state_details.flow_run_id)
    proxy.clear()
    assert nonce_versions() == [1, 2] and cleanup_runs(first_id) == []
    rerun = nonce_rotation(environment=ENV, return_state=True)
    assert rerun.is_completed(), rerun.message
    result = rerun.result()
    assert (result["rotation_id"], result["new_version"], result["created"]) == (first_id, 2, False)
    assert nonce_versions() == [1, 2]  # no v3
    assert len(cleanup_runs(first_id)) == 1
