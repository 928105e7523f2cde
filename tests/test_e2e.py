"""E2E cycle: pure decisions; the local Oracle driver and the github driver (against a local
fake of the GitHub REST API) on staging deployed with the sandbox engine onto moto."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer

import pytest

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.evidence import ValidationFailed
from mirror_rollout.results import Status
from tasks.e2e import checks
from tasks.e2e.github import latest_run
from tasks.e2e.oracle import OracleClient
from tests.applied import nonce_values, shared_staging
from tests.artifacts import latest_artifact
from tests.aws_inventory import client
from tests.local_http import JsonHandler
from tests.support.targets import sandbox_target

ENV = "staging"
REGION = "us-east-1"
# ``.fn`` calls publish their artifact outside a run, which Prefect 3 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")
T0 = datetime(2026, 11, 27, 12, 0, 0, 123000, tzinfo=UTC)
NONCE = "ab" * 32


def item(**changes):
    base = checks.fp_event_item(
        event_id="e-1",
        rule_id="MD-001",
        rule_version="1.0.0",
        finding_id="f-1",
        outcome="block",
        is_false_positive=True,
        context=checks.redact({"line": 1}, NONCE, 2),
        moment=T0,
    )
    return base | changes


# -- pure ------------------------------------------------------------------------------------
def test_item_has_the_contract_shape():
    it = item()
    assert it["pk"] == "rule#MD-001"
    assert it["sk"] == "event#2026-11-27T12:00:00.123Z#e-1"
    assert it["gsi1pk"] == "finding#f-1" and it["gsi1sk"] == "rule#MD-001#1.0.0"
    assert it["expiresAt"] - it["recordedAt"] // 1000 == 90 * 86400
    assert set(it["context"]) == {"digest", "nonceVersion"} and it["context"]["nonceVersion"] == 2
    assert checks.shape_problems(it) == []
    assert checks.shape_problems(item(context={"line": 1})) != []
    assert "missing outcome" in checks.shape_problems(
        {k: v for k, v in it.items() if k != "outcome"}
    )


def test_redaction_is_keyed_and_deterministic():
    a = checks.redact({"x": 1, "y": 2}, NONCE, 1)
    assert a == checks.redact({"y": 2, "x": 1}, NONCE, 1)
    assert a["digest"] != checks.redact({"x": 1, "y": 2}, "cd" * 32, 1)["digest"]
    assert NONCE not in json.dumps(a)


def test_judgements():
    assert checks.judge_duplicate("ConditionalCheckFailedException").status is Status.PASS
    assert checks.judge_duplicate(None).status is Status.FAIL
    assert checks.judge_counter(4, {"count": 5, "ttl": 1_800_000_000}).status is Status.PASS
    assert checks.judge_counter(4, {"count": 6, "ttl": 1_800_000_000}).status is Status.FAIL
    assert checks.judge_counter(4, {"count": 5, "ttl": "tomorrow"}).status is Status.FAIL
    assert checks.judge_counter(4, None).status is Status.FAIL
    head = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "arn:k", "VersionId": "v1"}
    assert checks.judge_baseline(head, "arn:k").status is Status.PASS
    assert checks.judge_baseline(head | {"VersionId": "null"}, "arn:k").status is Status.FAIL
    assert checks.judge_baseline(head | {"ServerSideEncryption": "AES256"}, None).status is (
        Status.FAIL
    )
    done = {"status": "completed", "conclusion": "success"}
    assert checks.judge_check_run(done, 1, 10).status is Status.PASS
    assert checks.judge_check_run(done | {"conclusion": "failure"}, 1, 10).status is Status.FAIL
    assert checks.judge_check_run(None, 10, 10).status is Status.FAIL
    assert checks.judge_read_back([item()], item()).status is Status.PASS
    assert checks.judge_read_back([], item()).status is Status.FAIL


def test_block_counter_and_consent_items_have_the_adapters_shapes():
    assert checks.block_counter_key("MD-001", "acme", T0) == "MD-001:acme:2026-11-27T12:00:00.000Z"
    values = checks.block_counter_values(T0)
    assert values[":ttl"] == int(T0.timestamp()) + 24 * 3600 and values[":one"] == 1
    assert checks.BLOCK_COUNTER_UPDATE == (
        "ADD #count :one SET #ttl = if_not_exists(#ttl, :ttl), #timestamp = :timestamp"
    )
    record = checks.consent_record(
        org_id="acme",
        repo_id="acme/app",
        scope="fp-calibration",
        granted_by="dana",
        record_id="u-1",
        moment=T0,
    )
    digest = hashlib.sha256(b"acme").hexdigest()
    assert record["pk"] == f"org#{digest}" and record["orgId"] == digest
    assert record["sk"] == "consent#fp-calibration#u-1"
    assert record["grantedBy"] == hashlib.sha256(b"dana").hexdigest()
    assert record["expiresAt"] == "2027-11-27T12:00:00.123Z" and record["revoked"] is False
    assert "acme" not in {v for k, v in record.items() if k != "repoId"}
    summary = {"records": [checks.summary_entry(record)]}
    assert checks.judge_consent(summary, record, T0).status is Status.PASS
    assert checks.judge_consent(None, record, T0).status is Status.FAIL
    assert checks.judge_consent({"records": []}, record, T0).status is Status.FAIL
    later = T0.replace(year=2028)
    assert "expired" in checks.judge_consent(summary, record, later).message


def test_report_parsing_and_latest_run():
    text = 'Oracle: 1 FP\n```json\n{"fpEvents": [{"eventId": "a", "findingId": "f"}]}\n```'
    report = checks.parse_report(None, text)
    assert checks.report_events(report) == [{"eventId": "a", "findingId": "f"}]
    assert checks.report_events({"fpEventIds": ["b"]}) == [{"eventId": "b"}]
    assert checks.parse_report("no json here") is None
    runs = {
        "check_runs": [
            {"name": "Oracle", "id": 1},
            {"name": "lint", "id": 3},
            {"name": "Oracle", "id": 2},
        ]
    }
    assert latest_run(runs)["id"] == 2


def test_step_timer_turns_errors_into_fail():
    def boom():
        raise RuntimeError("kaput")

    step = checks.run_step("x", boom)
    assert step.status is Status.FAIL and "kaput" in step.message and step.seconds >= 0
    results = checks.to_check_results([step, checks.run_step("y", lambda: checks.passed("ok"))])
    assert [r.check_id for r in results] == ["E2E-001", "E2E-002"]
    assert results[1].status is Status.PASS and results[1].message.startswith("ok (")


# -- sandbox ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def staging(sandbox, prefect_api, tmp_path_factory):
    """Staging applied with the sandbox engine and its nonce bootstrapped, once."""
    from tasks.nonce.task import nonce_bootstrap

    applied = shared_staging(tmp_path_factory.mktemp("e2e-plan"))
    nonce_bootstrap.fn(sandbox_target(ENV, REGION))
    return applied.outputs


def assert_no_nonce_value_in(*texts: str) -> None:
    values = nonce_values(ENV)
    assert values and all(contract.NONCE_VALUE.match(v) for v in values)  # real ones were read
    for value in values:
        for text in texts:
            assert value not in text


def counter_item(key: str) -> dict:
    return client("dynamodb").get_item(
        TableName=contract.name(ENV, "block-counter"), Key={"bucketKey": {"S": key}}
    )["Item"]


def test_local_cycle_passes_every_step(staging, caplog):
    from tasks.e2e.task import E2EOutcome, e2e_cycle

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="botocore")
    first = e2e_cycle.fn(sandbox_target(ENV, REGION), run_id="run-a")
    assert isinstance(first, E2EOutcome)
    assert [r.status for r in first.results] == [Status.PASS] * 8, [
        (r.check_id, r.message) for r in first.results
    ]
    assert [r.check_id for r in first.results] == [f"E2E-{n:03d}" for n in range(1, 9)]
    assert all("seconds" in r.evidence[0].observed for r in first.results)

    # the item read back has the contract shape, redacted context only
    (fp,) = first.fp_events
    assert checks.shape_problems(fp) == []
    assert fp["context"]["nonceVersion"] == 1 and set(fp["context"]) == {"digest", "nonceVersion"}
    raw = client("dynamodb").get_item(
        TableName=contract.name(ENV, "fp-events"),
        Key={"pk": {"S": fp["pk"]}, "sk": {"S": fp["sk"]}},
    )["Item"]
    assert raw["expiresAt"]["N"] == str(fp["expiresAt"]) and raw["isFalsePositive"] == {
        "BOOL": True
    }

    # duplicate rejected (a PASS step), and a direct duplicate put is refused too
    dup = {r.title: r for r in first.results}["reject duplicate FP event"]
    assert dup.evidence[0].observed["error"] == "ConditionalCheckFailedException"
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        client("dynamodb").put_item(
            TableName=contract.name(ENV, "fp-events"),
            Item=raw,
            ConditionExpression=checks.CONDITION_NEW_EVENT,
        )

    # consent: a grant record and the summary were written as the adapter does, read back
    # through the summary, and removed by the last step (the consent table has no TTL)
    by_title = {r.title: r for r in first.results}
    consented = by_title["record consent, read it through the summary"]
    pk = consented.evidence[0].observed["pk"]
    assert pk == "org#" + hashlib.sha256(b"phase-mirror-test").hexdigest()
    assert consented.evidence[0].observed["sk"].startswith("consent#fp-calibration#")
    assert by_title["remove the consent items this run wrote"].status is Status.PASS
    assert (
        client("dynamodb").query(
            TableName=contract.name(ENV, "consent"),
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
        )["Items"]
        == []
    )

    # the block counter: the adapter's key and UpdateItem; the item stays for inspection
    counted = by_title["increment block counter (adapter's UpdateItem)"]
    key = counted.subject
    assert re.fullmatch(r"MD-E2E-001:phase-mirror-test:\d{4}-\d\d-\d\dT\d\d:00:00\.000Z", key)
    stored = counter_item(key)
    assert set(stored) == {"bucketKey", "count", "ttl", "timestamp"}
    ttl = int(stored["ttl"]["N"])
    assert 0 < ttl - datetime.now(UTC).timestamp() <= 24 * 3600
    after_first = int(stored["count"]["N"])
    second = e2e_cycle.fn(sandbox_target(ENV, REGION), run_id="run-b")
    counted2 = {r.title: r for r in second.results}[
        "increment block counter (adapter's UpdateItem)"
    ]
    if counted2.subject == key:  # same hour bucket: one more, and if_not_exists kept the ttl
        assert int(counter_item(key)["count"]["N"]) == after_first + 1
        assert counter_item(key)["ttl"]["N"] == stored["ttl"]["N"]
    observed = counted2.evidence[-1].observed
    assert observed["after"] == observed["before"] + 1 and observed["attempts"] == 1

    # the baseline object is SSE-KMS with the project CMK and versioned
    head = client("s3").head_object(Bucket=staging["baselines_bucket_name"], Key="e2e/run-a.json")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == staging["kms_key_arn"]
    assert head["VersionId"] and head["VersionId"] != "null"
    body = client("s3").get_object(Bucket=staging["baselines_bucket_name"], Key="e2e/run-a.json")
    report = json.loads(body["Body"].read())
    assert report["fpEvents"][0]["eventId"] == fp["eventId"]

    # no nonce value anywhere
    artifact = latest_artifact(f"{ENV}-e2e")
    assert "E2E-008" in artifact
    assert_no_nonce_value_in(
        caplog.text, artifact, repr(first), first.model_dump_json(), json.dumps(report)
    )


def test_fp_events_feed_the_expectations_suite(staging, tmp_path):
    from tasks.e2e.task import e2e_cycle
    from tasks.expectations.frames import build_fp_events_frame
    from tasks.expectations.runner import run_suite

    outcome = e2e_cycle.fn(sandbox_target(ENV, REGION), run_id="run-gx")
    result = run_suite("fp_events", build_fp_events_frame(outcome.fp_events), tmp_path)
    assert result.success, result.failed


def test_local_cycle_fails_without_a_real_nonce(staging):
    """With a newest version that holds no real nonce, nothing is written and the task fails."""
    from tasks.e2e.task import e2e_cycle

    ssm = client("ssm")
    name = contract.nonce_parameter(ENV, 7)
    ssm.put_parameter(Name=name, Value="placeholder", Type="SecureString")
    try:
        with pytest.raises(ValidationFailed) as failed:
            e2e_cycle.fn(sandbox_target(ENV, REGION), run_id="run-placeholder")
    finally:
        ssm.delete_parameter(Name=name)
    statuses = {r.title: r.status for r in failed.value.results}
    assert statuses["load nonce versions"] is Status.FAIL
    assert statuses["record FP event (conditional put)"] is Status.SKIPPED
    assert "placeholder" in failed.value.results[0].message


# -- github driver against a local fake of the REST API --------------------------------------
class FakeGithub:
    """Answers the REST endpoints the driver uses; records every call.

    Opening a PR "runs the Oracle": with ``conclusion='success'`` the reference Oracle
    client writes an FP event and a baseline to moto and the check run output carries its
    report; the first poll sees the check run still in progress.
    """

    def __init__(self, conclusion: str, token: str):
        self.conclusion = conclusion
        self.token = token
        self.calls: list[tuple[str, str, dict]] = []
        self.branches = {"main": "base000"}
        self.pr_state: str | None = None
        self.polls = 0
        self.output: dict = {}
        fake = self

        class Handler(JsonHandler):
            def _handle(self):
                path, body = self._request()
                fake.calls.append((self.command, path, body))
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._reply(401, {"message": "Bad credentials"})
                code, reply = fake.route(self.command, path, body)
                return self._reply(code, reply)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def route(self, method: str, path: str, body: dict):
        repo = "/repos/PhaseMirror/Phase-Mirror-Test"
        if path.startswith(repo):
            for verb, pattern, answer in self.ROUTES:
                if verb == method and re.fullmatch(pattern, path[len(repo) :]):
                    return answer(self, path[len(repo) :], body)
        return 404, {"message": "Not Found"}

    def _repository(self, path: str, body: dict):
        return 200, {"default_branch": "main"}

    def _ref(self, path: str, body: dict):
        return 200, {"object": {"sha": self.branches[path.rsplit("/heads/", 1)[1]]}}

    def _create_ref(self, path: str, body: dict):
        self.branches[body["ref"].removeprefix("refs/heads/")] = body["sha"]
        return 201, {"ref": body["ref"]}

    def _commit(self, path: str, body: dict):
        self.branches[body["branch"]] = "head111"
        return 201, {"commit": {"sha": "head111"}}

    def _open_pull(self, path: str, body: dict):
        self.pr_state = "open"
        self.oracle_runs()
        return 201, {"number": 7, "head": {"sha": self.branches[body["head"]]}}

    def _check_runs(self, path: str, body: dict):
        self.polls += 1
        run = {"id": 99, "name": "Oracle", "started_at": "2026-11-27T12:00:00Z"}
        if self.polls < 2:
            run |= {"status": "in_progress", "conclusion": None}
        else:
            run |= {"status": "completed", "conclusion": self.conclusion, "output": self.output}
        return 200, {"total_count": 1, "check_runs": [run]}

    def _update_pull(self, path: str, body: dict):
        self.pr_state = body.get("state", self.pr_state)
        return 200, {"number": 7, "state": self.pr_state}

    def _delete_ref(self, path: str, body: dict):
        self.branches.pop(path.removeprefix("/git/refs/heads/"), None)
        return 204, None

    #: (method, path below the repository, answer): the endpoints the driver uses.
    ROUTES = (
        ("GET", "", _repository),
        ("GET", "/git/ref/heads/.*", _ref),
        ("POST", "/git/refs", _create_ref),
        ("PUT", "/contents/.*", _commit),
        ("POST", "/pulls", _open_pull),
        ("GET", "/commits/head111/check-runs", _check_runs),
        ("PATCH", "/pulls/7", _update_pull),
        ("DELETE", "/git/refs/heads/.*", _delete_ref),
    )

    def oracle_runs(self):
        if self.conclusion != "success":
            self.output = {"title": "Oracle", "summary": "2 blocking findings", "text": ""}
            return
        oracle = OracleClient(AwsClients(REGION), ENV, "gh-oracle")
        steps = oracle.run()
        assert all(s.status is Status.PASS for s in steps), [s.message for s in steps]
        report = oracle.report()
        self.output = {
            "title": "Oracle: 1 false positive recorded",
            "summary": "Oracle report",
            "text": f"```json\n{json.dumps(report)}\n```",
        }


def run_github_cycle(fake: FakeGithub, run_id: str, timeout_seconds: float = 10):
    """The E2E task with the github driver against ``fake`` (polling it every 50 ms)."""
    from tasks.e2e.task import e2e_cycle

    return e2e_cycle.fn(
        sandbox_target(ENV, REGION),
        driver="github",
        run_id=run_id,
        github_repo="PhaseMirror/Phase-Mirror-Test",
        github_api=fake.url,
        poll_seconds=0.05,
        timeout_seconds=timeout_seconds,
    )


@pytest.fixture
def fake_github(monkeypatch):
    made: list[FakeGithub] = []

    def make(conclusion: str) -> FakeGithub:
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_test_token_value")
        made.append(FakeGithub(conclusion, "ghs_test_token_value"))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


def test_github_driver_passes_and_cleans_up(staging, fake_github, caplog):
    caplog.set_level(logging.DEBUG)
    fake = fake_github("success")
    outcome = run_github_cycle(fake, "gh-1")
    statuses = [(r.title, r.status) for r in outcome.results]
    assert all(s is Status.PASS for _, s in statuses), statuses
    assert len(outcome.results) == 9
    assert fake.polls >= 2  # it waited for the in-progress check run
    assert fake.pr_state == "closed" and "e2e/gh-1" not in fake.branches
    assert ("DELETE", "/repos/PhaseMirror/Phase-Mirror-Test/git/refs/heads/e2e/gh-1", {}) in (
        fake.calls
    )
    (fp,) = outcome.fp_events
    assert checks.shape_problems(fp) == []
    assert outcome.baseline_key == "e2e/gh-oracle.json"
    assert "ghs_test_token_value" not in caplog.text + outcome.model_dump_json()


def test_github_driver_fails_on_a_failing_oracle_and_still_closes(staging, fake_github):
    fake = fake_github("failure")
    with pytest.raises(ValidationFailed) as failed:
        run_github_cycle(fake, "gh-2")
    by_title = {r.title: r for r in failed.value.results}
    assert by_title["wait for Oracle check run"].status is Status.FAIL
    assert "failure" in by_title["wait for Oracle check run"].message
    assert by_title["read Oracle report"].status is Status.SKIPPED
    assert by_title["close pull request"].status is Status.PASS
    assert by_title["delete branch"].status is Status.PASS
    assert fake.pr_state == "closed" and "e2e/gh-2" not in fake.branches
    assert "FAIL" in latest_artifact(f"{ENV}-e2e")


def test_github_driver_times_out_bounded_and_closes(staging, fake_github):
    fake = fake_github("success")
    fake.polls = -10_000  # stays in progress
    fake.oracle_runs = lambda: None
    with pytest.raises(ValidationFailed) as failed:
        run_github_cycle(fake, "gh-3", timeout_seconds=0.3)
    wait = {r.title: r for r in failed.value.results}["wait for Oracle check run"]
    assert wait.status is Status.FAIL and "in_progress" in wait.message
    assert fake.pr_state == "closed"


def test_github_driver_needs_a_token(staging, monkeypatch):
    from mirror_rollout.errors import ConfigError
    from tasks.e2e.task import e2e_cycle

    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(ConfigError):
        e2e_cycle.fn(sandbox_target(ENV, REGION), driver="github", github_repo="o/r")


def test_oracle_check_workflow_is_valid_actions_yaml():
    from pathlib import Path

    import yaml

    text = (Path(__file__).parents[1] / ".github/workflows/oracle-check.yml").read_text()
    workflow = yaml.safe_load(text)
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "pull_request" in on
    assert workflow["permissions"] == {
        "id-token": "write",
        "contents": "read",
        "checks": "write",
    }
    job = workflow["jobs"]["oracle"]
    assert job["name"] == "Oracle" and job["runs-on"]
    uses = {s.get("uses", "").split("@")[0]: s for s in job["steps"]}
    creds = uses["aws-actions/configure-aws-credentials"]["with"]
    assert creds["role-to-assume"] == "${{ secrets.AWS_ROLE_ARN_STAGING }}"
    assert creds["aws-region"] == "us-east-1"
    assert uses["actions/upload-artifact"]["with"]["path"] == "oracle-report.json"
    assert any(
        "phase-mirror-oracle check --report oracle-report.json" in s.get("run", "")
        for s in job["steps"]
    )
    assert all(("uses" in s) != ("run" in s) for s in job["steps"])
