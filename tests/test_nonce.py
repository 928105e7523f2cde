"""Nonce bootstrap, rotation with grace period, cleanup and rollback.

Pure rules are unit-tested; everything else runs against the sandbox's moto and
Prefect servers. Only this test module reads nonce values (to compare them and
to prove that none of them reached a Prefect log, artifact, result, flow-run
parameter or the captured Python logs).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from prefect import flow

from mirror_rollout.contract import NONCE_VALUE
from mirror_rollout.errors import RolloutError
from mirror_rollout.evidence import ValidationFailed
from mirror_rollout.results import Status
from tasks.nonce import rules, store
from tasks.nonce.rules import Action, NonceRefused
from tests.artifacts import latest_artifact
from tests.support.targets import sandbox_target

ENV = "staging"
REGION = "us-east-1"
PREFIX = "/guardian/staging/redaction_nonce_v"
KEY = "arn:aws:kms:us-east-1:123456789012:key/k"
T0 = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)


# -- pure rules -------------------------------------------------------------------
def desc(n: int, env: str = ENV, **tags: str) -> dict:
    return {
        "Name": f"/guardian/{env}/redaction_nonce_v{n}",
        "Type": "SecureString",
        "KeyId": "arn:aws:kms:us-east-1:123456789012:key/k",
        "Version": 1,
        "Tier": "Standard",
        "LastModifiedDate": T0,
        "Tags": [{"Key": k.replace("_", "-"), "Value": v} for k, v in tags.items()],
    }


def rotated(n: int, rotation_id: str, grace_until: datetime, from_version: int | None = None):
    return desc(
        n,
        rotation_id=rotation_id,
        grace_until=rules.format_time(grace_until),
        rotated_from=str(from_version if from_version is not None else n - 1),
        created_by="mirror-rollout",
    )


def state(*descriptions: dict, now: datetime = T0) -> rules.NonceState:
    return rules.nonce_state(ENV, descriptions, now)


def test_state_lists_live_versions_and_ignores_foreign_names():
    s = state(
        desc(2),
        desc(1),
        desc(1, env="production"),
        {"Name": "/guardian/staging/redaction_nonce_vx", "Type": "SecureString"},
        {"Name": "/guardian/staging/redaction_nonce_v0", "Type": "SecureString"},
    )
    assert s.live == [1, 2] and s.current is not None and s.current.version == 2
    assert s.ignored == [
        "/guardian/production/redaction_nonce_v1",
        "/guardian/staging/redaction_nonce_v0",
        "/guardian/staging/redaction_nonce_vx",
    ]
    assert rules.parameter_prefix(ENV) == PREFIX
    single = state(desc(1))
    assert not single.in_grace and single.grace is None and single.summary() == "v1"
    assert state().current is None and state().summary() == "no version"


def test_grace_detected_from_two_live_versions_and_tags():
    until = T0 + timedelta(hours=1)
    s = state(desc(1), rotated(2, "r1", until))
    assert s.in_grace
    grace = s.grace
    assert grace is not None
    assert (grace.rotation_id, grace.old_versions, grace.new_version) == ("r1", [1], 2)
    assert grace.grace_until == until and not grace.ended
    assert state(desc(1), rotated(2, "r1", until), now=until).grace.ended
    assert s.by_rotation("r1").version == 2 and s.by_rotation("r2") is None
    assert "in grace until 2026-01-01T07:00:00Z" in s.summary()


def test_tags_and_times_round_trip():
    tags = rules.rotation_tags("abc", T0, 3)
    assert tags == {
        "rotation-id": "abc",
        "grace-until": "2026-01-01T06:00:00Z",
        "rotated-from": "3",
        "created-by": "mirror-rollout",
    }
    assert rules.parse_time(tags["grace-until"]) == T0
    assert rules.parse_time("garbage") is None and rules.parse_time(None) is None


def test_rotation_allowed_from_the_current_version():
    d = rules.decide_rotation(state(desc(1)), 1, "r1")
    assert (d.action, d.version, d.other_version) == (Action.PROCEED, 2, 1)
    d = rules.decide_rotation(state(desc(4)), None, "r1")
    assert (d.action, d.version) == (Action.PROCEED, 5)


def test_rotation_retry_finds_its_own_version():
    s = state(desc(1), rotated(2, "r1", T0 + timedelta(hours=1)))
    d = rules.decide_rotation(s, 1, "r1")
    assert (d.action, d.version, d.other_version) == (Action.DONE, 2, 1)
    # the id wins over from_version: a flow retry resolves "current" to the new version
    assert rules.decide_rotation(s, 2, "r1").action is Action.DONE


@pytest.mark.parametrize(
    ("from_version", "words"),
    [
        (0, ["from_version must be 1 or more, got 0", "nonce bootstrap"]),
        (-1, ["from_version must be 1 or more, got -1", "(now: v1)"]),
        (5, ["v5 (/guardian/staging/redaction_nonce_v5) does not exist", "from_version=1"]),
        ("1", ["must be a version number"]),
        (True, ["must be a version number"]),
    ],
)
def test_rotation_refuses_bad_versions(from_version, words):
    d = rules.decide_rotation(state(desc(1)), from_version, "r1")
    assert d.action is Action.REFUSE
    text = f"{d.reason} — {d.fix}"
    for word in words:
        assert word in text
    with pytest.raises(NonceRefused, match="nothing was changed"):
        d.raise_if_refused()


def test_rotation_refuses_during_grace_and_after_an_unfinished_grace():
    until = T0 + timedelta(hours=1)
    s = state(desc(1), rotated(2, "r1", until))
    d = rules.decide_rotation(s, 2, "r2")
    assert d.action is Action.REFUSE
    assert "rotation r1 is still in its grace period until 2026-01-01T07:00:00Z" in d.reason
    assert "rollback=true" in d.fix
    late = state(desc(1), rotated(2, "r1", until), now=until + timedelta(minutes=5))
    d = rules.decide_rotation(late, 2, "r2")
    assert d.action is Action.REFUSE and "ended at 2026-01-01T07:00:00Z" in d.reason
    assert "nonce-grace-cleanup" in d.fix and "old_version=1" in d.fix
    # not the current version (only reachable with a single live version → never; with grace → grace)
    assert rules.decide_rotation(s, 1, "r2").action is Action.REFUSE


def test_rotation_without_any_version_points_to_the_rollout():
    d = rules.decide_rotation(state(), None, "r1")
    assert d.action is Action.REFUSE and "no nonce parameter" in d.reason
    assert "infra-rollout" in d.fix and "nonce-bootstrap step creates v1" in d.fix


def test_bootstrap_creates_v1_only_when_no_version_exists():
    d = rules.decide_bootstrap(state(), KEY, REGION)
    assert (d.action, d.version) == (Action.PROCEED, 1)
    # names that are not versions do not count as a bootstrapped nonce
    foreign = state({"Name": "/guardian/staging/redaction_nonce_v0", "Type": "SecureString"})
    assert rules.decide_bootstrap(foreign, KEY).action is Action.PROCEED
    until = T0 + timedelta(hours=1)
    for live, current in (
        ([desc(1)], 1),
        ([desc(1), rotated(2, "r1", until)], 2),  # a rotation in its grace period
        ([rotated(2, "r1", until)], 2),  # v1 deleted by the grace cleanup
        ([rotated(7, "r6", until)], 7),
    ):
        d = rules.decide_bootstrap(state(*live), KEY)
        assert (d.action, d.version) == (Action.DONE, current), live
        assert "creates nothing" in d.reason
        # a no-op needs no key: it never writes
        assert rules.decide_bootstrap(state(*live), None).action is Action.DONE


def test_bootstrap_without_the_project_cmk_is_refused():
    d = rules.decide_bootstrap(state(), None, REGION)
    assert d.action is Action.REFUSE
    assert "alias/mirror-dissonance-staging does not exist in us-east-1" in d.reason
    assert "infra-rollout for staging first" in d.fix
    with pytest.raises(NonceRefused, match="nothing was changed") as raised:
        d.raise_if_refused()
    assert "\n" not in str(raised.value)


def test_cleanup_rules():
    until = T0 + timedelta(hours=1)
    grace = state(desc(1), rotated(2, "r1", until))
    after = state(desc(1), rotated(2, "r1", until), now=until)
    assert rules.decide_cleanup(after, 1, "r1").action is Action.PROCEED
    early = rules.decide_cleanup(grace, 1, "r1")
    assert early.action is Action.REFUSE and "lasts until 2026-01-01T07:00:00Z" in early.reason
    assert rules.decide_cleanup(grace, 1, "r1", force=True).action is Action.PROCEED
    # a worker may start the scheduled run slightly early
    nearly = state(desc(1), rotated(2, "r1", until), now=until - timedelta(seconds=30))
    assert rules.decide_cleanup(nearly, 1, "r1").action is Action.PROCEED
    gone = rules.decide_cleanup(state(rotated(2, "r1", until), now=until), 1, "r1")
    assert gone.action is Action.DONE and "already deleted" in gone.reason
    orphan = rules.decide_cleanup(state(desc(1), now=until), 1, "r1")
    assert orphan.action is Action.REFUSE and "could leave no valid nonce" in orphan.reason
    wrong = rules.decide_cleanup(after, 2, "r1")
    assert wrong.action is Action.REFUSE and "old_version=1" in wrong.fix
    assert rules.decide_cleanup(after, 0, "r1").action is Action.REFUSE


def test_rollback_rules():
    until = T0 + timedelta(hours=1)
    grace = state(desc(1), rotated(2, "r1", until))
    d = rules.decide_rollback(grace, 2, "r1")
    assert (d.action, d.version, d.other_version) == (Action.PROCEED, 2, 1)
    other = rules.decide_rollback(grace, 2, "r9")
    assert other.action is Action.REFUSE and "created by rotation r1, not by rotation r9" in (
        other.reason
    )
    untagged = rules.decide_rollback(state(desc(1), desc(2)), 2, "r1")
    assert untagged.action is Action.REFUSE and "no rotation" in untagged.reason
    cleaned = rules.decide_rollback(state(rotated(2, "r1", until)), 2, "r1")
    assert cleaned.action is Action.REFUSE and "would leave no valid nonce" in cleaned.reason
    assert rules.decide_rollback(state(desc(1)), 2, "r1").action is Action.DONE
    v1 = rules.decide_rollback(grace, 1, "r1")
    assert v1.action is Action.REFUSE and "created by the nonce bootstrap" in v1.reason
    assert rules.decide_rollback(grace, -1, "r1").action is Action.REFUSE
    assert rules.rollback_target(grace).version == 2
    assert rules.rollback_target(state(desc(1))).action is Action.REFUSE


def test_only_transient_errors_are_retried(prefect_api):
    from botocore.exceptions import ClientError, EndpointConnectionError
    from prefect import task

    from mirror_rollout.retries import is_transient
    from tasks.nonce.task import RETRIES

    def client_error(code: str, status: int = 400) -> ClientError:
        response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return ClientError(response, "PutParameter")

    assert is_transient(client_error("ThrottlingException"))
    assert is_transient(client_error("Whatever", 503))
    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert not is_transient(client_error("AccessDeniedException"))
    assert not is_transient(NonceRefused("refused", "fix"))
    assert not is_transient(store.ParameterExists("taken", "ParameterAlreadyExists"))

    attempts: list[str] = []
    fast = {**RETRIES, "retry_delay_seconds": 0, "retry_jitter_factor": None}

    @task(**fast)
    def flaky() -> str:
        attempts.append("flaky")
        if attempts.count("flaky") < 3:
            raise client_error("ThrottlingException")
        return "ok"

    @task(**fast)
    def refusing() -> None:
        attempts.append("refusing")
        raise NonceRefused("no", "never")

    @flow(name="test-nonce-retries")
    def both() -> str:
        result = flaky()
        refusing()
        return result

    state = both(return_state=True)
    assert state.is_failed() and "no" in state.message
    assert attempts == ["flaky", "flaky", "flaky", "refusing"]


# -- sandbox fixtures and helpers -------------------------------------------------
@functools.cache
def _clients():
    return boto3.client("ssm", region_name=REGION), boto3.client("kms", region_name=REGION)


class NonceValues:
    """Reads nonce values and tags (test-only); remembers every real nonce it saw."""

    def __init__(self):
        self.ssm, self.kms = _clients()
        self.seen: set[str] = set()

    def values(self) -> dict[int, str]:
        """Version -> value (test-only read); remembers every real nonce seen."""
        found: dict[int, str] = {}
        with store.wire_logging_off():
            for d in store.describe_versions(store.AwsClients(REGION), ENV):
                value = self.ssm.get_parameter(Name=d["Name"], WithDecryption=True)["Parameter"][
                    "Value"
                ]
                found[int(d["Name"].rsplit("_v", 1)[1])] = value
        self.seen |= {v for v in found.values() if NONCE_VALUE.match(v)}
        return found

    def tags(self, version: int) -> dict[str, str]:
        tags = self.ssm.list_tags_for_resource(
            ResourceType="Parameter", ResourceId=PREFIX + str(version)
        )
        return {t["Key"]: t["Value"] for t in tags["TagList"]}

    def snapshot(self) -> tuple:
        described = store.describe_versions(store.AwsClients(REGION), ENV)
        for d in described:
            d.pop("LastModifiedDate", None)
        return (sorted(described, key=lambda d: d["Name"]), self.values())


class NonceSandbox(NonceValues):
    """The Terraform-owned piece the nonce steps need (the CMK + alias), made with boto3 for speed."""

    def __init__(self):
        super().__init__()
        self.key_arn = self.kms.create_key(Description="project CMK")["KeyMetadata"]["Arn"]
        self.kms.create_alias(AliasName=f"alias/mirror-dissonance-{ENV}", TargetKeyId=self.key_arn)

    def put_version(
        self, n: int, value: str, key_id: str | None = None, type_: str = "SecureString"
    ) -> None:
        """A version written by someone else than the nonce steps (for the refusal tests)."""
        self.ssm.put_parameter(
            Name=PREFIX + str(n),
            Value=value,
            Type=type_,
            **({"KeyId": key_id or self.key_arn} if type_ == "SecureString" else {}),
        )


@pytest.fixture
def nonce(clean_aws, prefect_api) -> NonceSandbox:
    return NonceSandbox()


@pytest.fixture
def live_nonce(nonce) -> NonceSandbox:
    """v1 holding a real nonce, as after the rollout's bootstrap."""
    from tasks.nonce.task import evaluate_bootstrap

    evaluate_bootstrap(ENV, store.AwsClients(REGION))
    assert NONCE_VALUE.match(nonce.values()[1])
    return nonce


@pytest.fixture
def cleanup_deployment(prefect_api):
    from flows.nonce_rotation import register_cleanup_deployment

    return register_cleanup_deployment()


@pytest.fixture
def debug_logs(caplog):
    """Capture everything, botocore wire dumps included: a leak would land here."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="botocore")
    return caplog


def read_everything() -> str:
    """All logs, artifacts and flow-run parameters on the Prefect server, as one text."""
    from prefect import get_client
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    time.sleep(0.5)
    parts: list[str] = []
    with get_client(sync_client=True) as client:
        offset = 0
        while batch := client.read_logs(limit=200, offset=offset):
            parts += [log.message for log in batch]
            offset += len(batch)
        offset = 0
        while batch := client.read_artifacts(limit=200, offset=offset):
            parts += [f"{a.key} {a.description} {a.data}" for a in batch]
            offset += len(batch)
        offset = 0
        while batch := client.read_flow_runs(limit=200, offset=offset):
            parts += [
                f"{r.name} {r.parameters} {r.state.message if r.state else ''}" for r in batch
            ]
            offset += len(batch)
    return "\n".join(parts)


def assert_no_leak(nonce: NonceSandbox, caplog, *results) -> None:
    assert nonce.seen, "the test saw no nonce value at all"
    everything = read_everything()
    assert everything, "nothing read back from the Prefect API"
    texts = [everything, caplog.text, *(repr(r) for r in results), *(str(r) for r in results)]
    for value in nonce.seen:
        for text in texts:
            assert value not in text


def run_flow_state(fn, **params):
    state = fn(return_state=True, **params)
    return state, str(state.state_details.flow_run_id)


def cleanup_runs(rotation_id: str):
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["scheduled"]))
        )
    return [r for r in runs if (r.parameters or {}).get("rotation_id") == rotation_id]


def run_as_worker(scheduled):
    """Execute exactly the cleanup flow run a rotation scheduled, as a worker would; its state."""
    from prefect.flow_engine import run_flow

    from flows.nonce_rotation import nonce_grace_cleanup

    return run_flow(
        nonce_grace_cleanup,
        flow_run=scheduled,
        parameters=scheduled.parameters,
        return_type="state",
    )


@flow(name="test-nonce-bootstrap")
def bootstrap_flow() -> list:
    from tasks.nonce.task import nonce_bootstrap

    return nonce_bootstrap(sandbox_target(ENV, REGION))


# -- store ------------------------------------------------------------------------
def test_store_reads_only_a_bool_and_never_overwrites_a_version(nonce, debug_logs):
    aws = store.AwsClients(REGION)
    nonce.put_version(1, "not-a-nonce")
    assert store.holds_nonce(aws, PREFIX + "1") is False
    store.put_new_version(aws, PREFIX + "2", nonce.key_arn, {"created-by": "mirror-rollout"}, "d")
    assert store.holds_nonce(aws, PREFIX + "2") is True
    before = nonce.values()
    with pytest.raises(store.ParameterExists) as raised:
        store.put_new_version(aws, PREFIX + "2", nonce.key_arn, {}, "d")
    assert nonce.values() == before
    assert store.delete_version(aws, PREFIX + "2") is True
    assert store.delete_version(aws, PREFIX + "2") is False
    assert store.key_arn(aws, f"alias/mirror-dissonance-{ENV}") == nonce.key_arn
    assert store.key_arn(aws, "alias/nope") is None
    assert "botocore" in debug_logs.text  # wire logging was on around the other calls
    for value in nonce.seen:
        assert value not in debug_logs.text and value not in str(raised.value)


# -- bootstrap --------------------------------------------------------------------
def by_check(results) -> dict:
    return {r.check_id: r for r in results}


def test_bootstrap_creates_v1_with_the_project_cmk_once_then_changes_nothing(nonce, debug_logs):
    assert nonce.values() == {}
    first, first_id = run_flow_state(bootstrap_flow)
    assert first.is_completed(), first.message
    results = by_check(first.result())
    assert {k: v.status for k, v in results.items()} == {
        "NONCE-001": Status.PASS,
        "NONCE-002": Status.PASS,
        "NONCE-003": Status.PASS,
    }
    observed = results["NONCE-003"].evidence[0].observed
    assert observed["outcome"] == "created v1" and observed["type"] == "SecureString"
    assert observed["parameter"] == PREFIX + "1" and observed["key_id"] == nonce.key_arn
    assert observed["live_versions"] == 1 and observed["ssm_version"] == 1
    value = nonce.values()[1]
    assert NONCE_VALUE.match(value)
    (described,) = store.describe_versions(store.AwsClients(REGION), ENV)
    assert described["KeyId"] == nonce.key_arn and described["Type"] == "SecureString"
    assert "created by nonce-bootstrap" in described["Description"]
    assert nonce.tags(1) == {"created-by": "mirror-rollout"}
    assert "created v1" in latest_artifact(f"{ENV}-nonce")

    second, _ = run_flow_state(bootstrap_flow)
    assert second.is_completed(), second.message
    again = by_check(second.result())["NONCE-003"].evidence[0].observed
    assert again["outcome"].startswith("already present") and again["ssm_version"] == 1
    assert nonce.values() == {1: value}  # not overwritten: same value, SSM version 1
    assert "already present" in latest_artifact(f"{ENV}-nonce")
    assert_no_leak(nonce, debug_logs, first.result(), second.result(), first_id)


def test_bootstrap_is_a_no_op_during_a_grace_period_and_after_v1_was_cleaned_up(
    live_nonce, debug_logs
):
    from tasks.nonce.task import cleanup_previous, evaluate_bootstrap, rotate_nonce

    aws = store.AwsClients(REGION)
    rotate_nonce.fn(sandbox_target(ENV, REGION), 1, 3600, "r-grace")
    during = live_nonce.snapshot()
    results = by_check(evaluate_bootstrap(ENV, aws))
    assert all(r.status is Status.PASS for r in results.values())
    assert results["NONCE-003"].subject == PREFIX + "2"  # the current version is checked
    assert live_nonce.snapshot() == during

    cleanup_previous.fn(sandbox_target(ENV, REGION), 1, "r-grace", force=True)
    after = live_nonce.snapshot()
    assert sorted(after[1]) == [2]
    results = by_check(evaluate_bootstrap(ENV, aws))
    assert all(r.status is Status.PASS for r in results.values()), results
    assert results["NONCE-001"].message == "SecureString; live versions: v2"
    assert live_nonce.snapshot() == after  # v1 not re-created, v2 untouched
    assert_no_leak(live_nonce, debug_logs, list(results.values()))


def test_bootstrap_without_the_project_cmk_fails_in_one_line_and_creates_nothing(
    clean_aws, prefect_api
):
    failed, _ = run_flow_state(bootstrap_flow)
    assert failed.is_failed()
    message = failed.message
    assert "project CMK alias/mirror-dissonance-staging does not exist in us-east-1" in message
    assert "nothing was created" in message and "run infra-rollout for staging first" in message
    assert "\n" not in message
    with pytest.raises(ValidationFailed) as raised:
        failed.result()
    assert [r.status for r in raised.value.results] == [Status.FAIL]
    assert store.describe_versions(store.AwsClients(REGION), ENV) == []
    assert "FAIL" in latest_artifact(f"{ENV}-nonce")


@pytest.mark.parametrize(
    ("existing", "failed", "words"),
    [
        ({"value": "not-a-nonce"}, ["NONCE-003"], "does not hold 64 lowercase hex"),
        ({"value": "f" * 64, "foreign_key": True}, ["NONCE-002"], "not with the project CMK"),
        ({"value": "f" * 64, "type_": "String"}, ["NONCE-001", "NONCE-002"], "SecureString"),
    ],
    ids=["not-a-nonce", "foreign-key", "plain-string"],
)
def test_bootstrap_never_overwrites_an_existing_version(nonce, existing, failed, words):
    from tasks.nonce.task import evaluate_bootstrap

    key_id = None
    if existing.pop("foreign_key", False):
        key_id = nonce.kms.create_key(Description="not the project CMK")["KeyMetadata"]["Arn"]
    nonce.put_version(1, key_id=key_id, **existing)
    before = nonce.snapshot()
    results = by_check(evaluate_bootstrap(ENV, store.AwsClients(REGION)))
    assert [r.check_id for r in results.values() if r.status is Status.FAIL] == failed
    assert words in results[failed[0]].message
    if "NONCE-003" not in failed:
        assert results["NONCE-003"].status is Status.SKIPPED
    else:
        assert "never overwrites" in results["NONCE-003"].message
    assert nonce.snapshot() == before  # nothing written, no other version created


def test_bootstrap_racing_another_bootstrap_creates_one_v1(nonce, monkeypatch, debug_logs):
    """PutParameter finding v1 taken (a concurrent run, or a lost response): left as it is."""
    from tasks.nonce import task as nonce_task

    real = store.read_state
    calls = {"n": 0}

    def stale_once(aws_, env, now=None):
        calls["n"] += 1
        state = real(aws_, env, now)
        if calls["n"] == 1:  # the other run writes v1 between our read and our write
            store.put_new_version(aws_, PREFIX + "1", nonce.key_arn, {}, "other run")
        return state

    monkeypatch.setattr(nonce_task.store, "read_state", stale_once)
    results = by_check(nonce_task.evaluate_bootstrap(ENV, store.AwsClients(REGION)))
    monkeypatch.setattr(nonce_task.store, "read_state", real)
    assert all(r.status is Status.PASS for r in results.values()), results
    observed = results["NONCE-003"].evidence[0].observed
    assert observed["outcome"].startswith("created meanwhile")
    values = nonce.values()
    assert sorted(values) == [1] and NONCE_VALUE.match(values[1])
    assert_no_leak(nonce, debug_logs, list(results.values()))


# -- rotation, grace, cleanup, rollback -------------------------------------------
def test_rotation_keeps_both_versions_for_the_grace_period_and_schedules_cleanup(
    live_nonce, cleanup_deployment, debug_logs
):
    from flows.nonce_rotation import nonce_grace_cleanup, nonce_rotation

    v1 = live_nonce.values()[1]
    started = datetime.now(UTC)
    state, run_id = run_flow_state(nonce_rotation, environment=ENV)
    assert state.is_completed(), state.message
    result = state.result()
    values = live_nonce.values()
    assert sorted(values) == [1, 2] and values[1] == v1 and values[2] != v1
    assert NONCE_VALUE.match(values[2])
    tags = live_nonce.tags(2)
    assert tags["rotation-id"] == run_id and tags["created-by"] == "mirror-rollout"
    assert tags["rotated-from"] == "1"
    grace_until = rules.parse_time(tags["grace-until"])
    assert abs((grace_until - started).total_seconds() - 3600) < 30
    described = {d["Name"]: d for d in store.describe_versions(store.AwsClients(REGION), ENV)}
    assert described[PREFIX + "2"]["KeyId"] == live_nonce.key_arn
    assert described[PREFIX + "2"]["Type"] == "SecureString"
    assert (result["from_version"], result["new_version"]) == (1, 2)

    # the cleanup is a scheduled flow run of the deployment, at the grace end
    runs = cleanup_runs(run_id)
    assert len(runs) == 1
    cleanup = runs[0]
    assert str(cleanup.deployment_id) == str(cleanup_deployment)
    assert cleanup.state.is_scheduled()
    scheduled = cleanup.state.state_details.scheduled_time
    assert abs((scheduled - started).total_seconds() - 3600) < 30
    assert cleanup.parameters == {
        "environment": ENV,
        "region": REGION,
        "old_version": 1,
        "rotation_id": run_id,
    }
    assert result["cleanup_flow_run_id"] == str(cleanup.id)
    text = latest_artifact(f"{ENV}-nonce-rotation")
    for part in ("v1 -> v2", "versions before | v1 |", "v1, v2", str(cleanup.id), run_id):
        assert part in text

    # a second rotation during the grace period is refused and changes nothing
    before = live_nonce.snapshot()
    again, again_id = run_flow_state(nonce_rotation, environment=ENV)
    assert again.is_failed()
    assert "still in its grace period" in again.message and run_id in again.message
    assert live_nonce.snapshot() == before and cleanup_runs(again_id) == []

    # the cleanup before the grace end is refused; ended early on purpose, it deletes v1
    early, _ = run_flow_state(nonce_grace_cleanup, **cleanup.parameters)
    assert early.is_failed() and "lasts until" in early.message
    assert sorted(live_nonce.values()) == [1, 2]
    done, _ = run_flow_state(nonce_grace_cleanup, **cleanup.parameters, force=True)
    assert done.is_completed(), done.message
    assert live_nonce.values() == {2: values[2]}
    assert "deleted /guardian/staging/redaction_nonce_v1" in latest_artifact(
        f"{ENV}-nonce-rotation"
    )
    assert f"Rotation {run_id}: created {PREFIX}2" in read_everything()  # logs are read back
    # idempotent
    repeat, _ = run_flow_state(nonce_grace_cleanup, **cleanup.parameters, force=True)
    assert repeat.is_completed() and repeat.result()["deleted"] is False
    assert_no_leak(live_nonce, debug_logs, result, done.result())


def test_scheduled_cleanup_run_deletes_the_old_version_after_the_grace(
    live_nonce, cleanup_deployment, debug_logs
):
    from flows.nonce_rotation import nonce_rotation

    state, run_id = run_flow_state(nonce_rotation, environment=ENV, grace_seconds=1)
    assert state.is_completed(), state.message
    (scheduled,) = cleanup_runs(run_id)
    time.sleep(1.5)
    final = run_as_worker(scheduled)
    assert final.is_completed(), final.message
    assert sorted(live_nonce.values()) == [2]
    from prefect import get_client

    with get_client(sync_client=True) as client:
        assert client.read_flow_run(scheduled.id).state.is_completed()
    # with v1 gone a new rotation is allowed again
    third, _ = run_flow_state(nonce_rotation, environment=ENV)
    assert third.is_completed(), third.message
    assert sorted(live_nonce.values()) == [2, 3]
    assert_no_leak(live_nonce, debug_logs, state.result(), third.result())


def test_rollback_deletes_the_new_version_and_cancels_its_cleanup(
    live_nonce, cleanup_deployment, debug_logs
):
    from flows.nonce_rotation import nonce_rotation
    from tasks.nonce.task import rollback_rotation

    v1 = live_nonce.values()[1]
    state, run_id = run_flow_state(nonce_rotation, environment=ENV)
    assert state.is_completed(), state.message
    assert sorted(live_nonce.values()) == [1, 2]
    with pytest.raises(NonceRefused, match="not by rotation someone-else"):
        rollback_rotation.fn(sandbox_target(ENV, REGION), 2, "someone-else")
    assert sorted(live_nonce.values()) == [1, 2]

    back, _ = run_flow_state(nonce_rotation, environment=ENV, rollback=True)
    assert back.is_completed(), back.message
    assert live_nonce.values() == {1: v1}
    (cleanup,) = cleanup_runs(run_id)
    assert cleanup.state.is_cancelled()
    assert back.result()["cancelled_cleanup_runs"] == [str(cleanup.id)]
    assert "rollback" in latest_artifact(f"{ENV}-nonce-rotation")
    # idempotent task; the flow finds nothing left to roll back
    assert rollback_rotation.fn(sandbox_target(ENV, REGION), 2, run_id).deleted is False
    nothing, _ = run_flow_state(nonce_rotation, environment=ENV, rollback=True)
    assert nothing.is_failed() and "nothing to roll back" in nothing.message
    assert_no_leak(live_nonce, debug_logs, state.result(), back.result())


def test_retried_rotation_creates_exactly_one_version(live_nonce, debug_logs):
    from tasks.nonce.task import rotate_nonce

    rid = f"retry-{uuid.uuid4().hex[:8]}"
    first = rotate_nonce.fn(sandbox_target(ENV, REGION), 1, 3600, rid)
    values = live_nonce.values()
    second = rotate_nonce.fn(sandbox_target(ENV, REGION), 1, 3600, rid)
    assert first.created is True and second.created is False
    assert (first.new_version, second.new_version) == (2, 2)
    assert first.grace_until == second.grace_until
    assert live_nonce.values() == values and sorted(values) == [1, 2]
    assert_no_leak(live_nonce, debug_logs, first, second)


def test_rotation_racing_another_writer(live_nonce, monkeypatch):
    """PutParameter finding v2 taken: ours (a lost response) is accepted, a stranger's refused."""
    from tasks.nonce import task as nonce_task

    real = store.read_state
    aws = store.AwsClients(REGION)

    def stale_once(rotation_id):
        calls = {"n": 0}

        def read(aws_, env, now=None):
            calls["n"] += 1
            state = real(aws_, env, now)
            if calls["n"] == 1:  # somebody writes v2 between our read and our write
                tags = rules.rotation_tags(rotation_id, datetime.now(UTC), 1)
                store.put_new_version(aws, PREFIX + "2", live_nonce.key_arn, tags, "race")
            return state

        return read

    monkeypatch.setattr(nonce_task.store, "read_state", stale_once("other-rotation"))
    with pytest.raises(NonceRefused, match="created meanwhile by someone else"):
        nonce_task.rotate_nonce.fn(sandbox_target(ENV, REGION), 1, 3600, "mine")
    assert live_nonce.tags(2)["rotation-id"] == "other-rotation"

    store.delete_version(aws, PREFIX + "2")
    monkeypatch.setattr(nonce_task.store, "read_state", stale_once("mine"))
    result = nonce_task.rotate_nonce.fn(sandbox_target(ENV, REGION), 1, 3600, "mine")
    assert result.created is False and result.new_version == 2
    monkeypatch.setattr(nonce_task.store, "read_state", real)
    assert sorted(live_nonce.values()) == [1, 2]


@pytest.mark.parametrize(
    ("from_version", "message"),
    [
        (0, "from_version must be 1 or more, got 0"),
        (-1, "from_version must be 1 or more, got -1"),
        (7, "v7 (/guardian/staging/redaction_nonce_v7) does not exist"),
    ],
)
def test_bad_from_version_is_refused_and_changes_nothing(
    live_nonce, cleanup_deployment, from_version, message
):
    from flows.nonce_rotation import nonce_rotation
    from tasks.nonce.task import rotate_nonce

    before = live_nonce.snapshot()
    with pytest.raises(NonceRefused) as raised:
        rotate_nonce.fn(sandbox_target(ENV, REGION), from_version, 3600, "r-bad")
    assert message in str(raised.value) and "nothing was changed" in raised.value.problem
    assert raised.value.fix
    state, run_id = run_flow_state(nonce_rotation, environment=ENV, from_version=from_version)
    assert state.is_failed() and message in state.message
    assert live_nonce.snapshot() == before and cleanup_runs(run_id) == []


def test_rotation_from_an_already_deleted_version_is_refused(live_nonce):
    from tasks.nonce.task import cleanup_previous, rotate_nonce

    rotate_nonce.fn(sandbox_target(ENV, REGION), 1, 0, "r-a")
    cleanup_previous.fn(sandbox_target(ENV, REGION), 1, "r-a")  # grace 0: ended at once
    before = live_nonce.snapshot()
    assert sorted(before[1]) == [2]
    with pytest.raises(NonceRefused, match=r"v1 .* does not exist.*from_version=2"):
        rotate_nonce.fn(sandbox_target(ENV, REGION), 1, 3600, "r-b")
    assert live_nonce.snapshot() == before


def test_cleanup_never_leaves_zero_versions(live_nonce):
    from tasks.nonce.task import cleanup_previous

    before = live_nonce.snapshot()
    with pytest.raises(NonceRefused, match="could leave no valid nonce"):
        cleanup_previous.fn(sandbox_target(ENV, REGION), 1, "no-such-rotation", force=True)
    assert live_nonce.snapshot() == before


def test_rotation_without_the_project_cmk_is_refused_and_changes_nothing(live_nonce):
    from tasks.nonce.task import rotate_nonce

    live_nonce.kms.delete_alias(AliasName=f"alias/mirror-dissonance-{ENV}")
    before = live_nonce.snapshot()
    with pytest.raises(NonceRefused) as raised:
        rotate_nonce.fn(sandbox_target(ENV, REGION), 1, 3600, "r-nokey")
    assert "project CMK alias/mirror-dissonance-staging does not exist" in raised.value.problem
    assert "infra-rollout for staging first" in raised.value.fix
    assert live_nonce.snapshot() == before


def test_missing_cleanup_deployment_fails_clearly_but_keeps_the_rotation(live_nonce, debug_logs):
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    from flows.nonce_rotation import nonce_rotation

    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name("nonce-grace-cleanup/scheduled")
            client.delete_deployment(deployment.id)
        except ObjectNotFound:
            pass
    state, run_id = run_flow_state(nonce_rotation, environment=ENV)
    assert state.is_failed()
    message = state.message
    for part in (
        "prefect deploy --all",
        "NOT scheduled",
        "is done and valid",
        "nonce-grace-cleanup",
        f"rotation_id={run_id}",
        "old_version=1",
    ):
        assert part in message, message
    assert sorted(live_nonce.values()) == [1, 2]
    assert live_nonce.tags(2)["rotation-id"] == run_id
    assert "NOT scheduled" in latest_artifact(f"{ENV}-nonce-rotation")
    with pytest.raises(RolloutError):
        state.result()
    assert_no_leak(live_nonce, debug_logs)
