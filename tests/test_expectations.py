"""Great Expectations suites: pass on good data, fail on precisely the broken row/column."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mirror_rollout import PROJECT_ROOT, contract
from mirror_rollout.results import Status
from tasks.expectations import (
    SUITES,
    build_alarm_inventory_frame,
    build_fp_events_frame,
    build_pitr_status_frame,
    build_plan_changes_frame,
    run_suite,
    to_check_results,
)

ENV = "staging"
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
TOPIC_ARN = f"arn:aws:sns:us-east-1:123456789012:mirror-dissonance-{ENV}-ops-alerts"


# -- good data -------------------------------------------------------------------------------
def plan_changes(action: str = "create") -> list[dict]:
    """resource_changes of a first apply, in Terraform's JSON plan shape."""
    return [
        {
            "address": address,
            "mode": "managed",
            "type": address.split(".")[0],
            "name": address.split(".")[1].split("[")[0],
            "change": {"actions": [action], "before": None, "after": {}},
        }
        for address in contract.EXPECTED_ADDRESSES
    ] + [
        {
            "address": "data.aws_caller_identity.current",
            "mode": "data",
            "type": "aws_caller_identity",
            "name": "current",
            "change": {"actions": ["read"]},
        }
    ]


def alarms() -> list[dict]:
    """describe_alarms()["MetricAlarms"] as the live account returns them."""
    return [
        {
            "AlarmName": a.full_name(ENV),
            "Namespace": a.namespace(ENV),
            "MetricName": a.metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in a.dimensions(ENV).items()],
            "Threshold": float(a.threshold),
            "ComparisonOperator": a.comparison,
            "Statistic": a.statistic,
            "Period": a.period,
            "EvaluationPeriods": a.evaluation_periods,
            "StateValue": "OK",
            "AlarmActions": [TOPIC_ARN],
        }
        for a in contract.ALARMS
    ]


def pitr_records() -> list[dict]:
    """{"table": name, **describe_continuous_backups(TableName=name)}."""
    return [
        {
            "table": t.name(ENV),
            "ContinuousBackupsDescription": {
                "ContinuousBackupsStatus": "ENABLED",
                "PointInTimeRecoveryDescription": {
                    "PointInTimeRecoveryStatus": "ENABLED",
                    "EarliestRestorableDateTime": NOW - timedelta(hours=1),
                    "LatestRestorableDateTime": NOW,
                },
            },
        }
        for t in contract.TABLES
    ]


def fp_event(i: int, **changes) -> dict:
    at = NOW - timedelta(minutes=i)
    ts = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    item = {
        "pk": "rule#MD-001",
        "sk": f"event#{ts}#evt-{i}",
        "gsi1pk": f"finding#fnd-{i}",
        "gsi1sk": "rule#MD-001#1.2.0",
        "eventId": f"evt-{i}",
        "ruleId": "MD-001",
        "ruleVersion": "1.2.0",
        "findingId": f"fnd-{i}",
        "outcome": "block",
        "isFalsePositive": True,
        "timestamp": ts,
        "context": {"repo": "org/repo", "pr": 42},
        "expiresAt": int(at.timestamp()) + 90 * 86400,
        "recordedAt": int(at.timestamp() * 1000),
    }
    item.update(changes)
    return item


def fp_events() -> list[dict]:
    return [fp_event(i) for i in range(4)]


def failed(outcome) -> dict[str, tuple[str | None, list]]:
    """check id -> (column, unexpected rows or missing members) of the failed expectations."""
    return {e.check_id: (e.column, e.unexpected_rows or e.missing) for e in outcome.failed}


def check_id(suite: str, description_start: str) -> str:
    """The id of the expectation whose description starts so (ids are positions)."""
    from tasks.expectations.suites import get_suite

    params = {"environment": ENV}
    built = get_suite(suite).build_suite(**params)
    for n, e in enumerate(built.expectations, start=1):
        if (e.description or "").startswith(description_start):
            return f"GX-{suite}-{n}"
    raise AssertionError(f"no expectation {description_start!r} in {suite}")


# -- plan_changes ----------------------------------------------------------------------------
def test_plan_changes_pass_on_a_first_apply(tmp_path):
    frame = build_plan_changes_frame({"resource_changes": plan_changes()})
    assert len(frame) == len(contract.EXPECTED_ADDRESSES)  # the data source is not managed
    outcome = run_suite("plan_changes", frame, tmp_path, environment=ENV)
    assert outcome.success, failed(outcome)
    assert outcome.evaluated == outcome.successful == len(outcome.expectations)


def test_plan_builder_reads_plan_documents_and_flat_rows():
    from mirror_rollout.provisioners.document import PlanDocument

    doc = PlanDocument(format_version="1.2", resource_changes=plan_changes("no-op"))
    frame = build_plan_changes_frame(doc)
    assert set(frame["action"]) == {"no-op"}
    row = frame.set_index("address").loc["aws_dynamodb_table.consent"]
    assert bool(row["stateful"]) and row["type"] == "aws_dynamodb_table"
    flat = build_plan_changes_frame([{"address": "aws_kms_key.main", "action": "replace"}])
    assert flat.to_dict("records") == [
        {
            "address": "aws_kms_key.main",
            "type": "aws_kms_key",
            "action": "replace",
            "stateful": True,
        }
    ]


def test_replace_of_consent_table_fails_without_allow_destroy(tmp_path):
    changes = plan_changes()
    consent = next(c for c in changes if c["address"] == "aws_dynamodb_table.consent")
    consent["change"]["actions"] = ["delete", "create"]
    frame = build_plan_changes_frame(changes)

    outcome = run_suite("plan_changes", frame, tmp_path)
    assert not outcome.success
    destroy = check_id("plan_changes", "No stateful resource")
    assert failed(outcome) == {
        destroy: ("action", [{"action": "replace", "address": "aws_dynamodb_table.consent"}])
    }
    result = {r.check_id: r for r in to_check_results(outcome)}[destroy]
    assert result.status is Status.FAIL
    assert result.subject == "aws_dynamodb_table.consent"
    assert "replace" in result.message

    allowed = run_suite("plan_changes", frame, tmp_path, allow_destroy=True)
    assert allowed.success, failed(allowed)
    assert allowed.evaluated == outcome.evaluated - 1


def test_stateless_replace_is_not_destructive(tmp_path):
    changes = plan_changes()
    for c in changes:
        if c["address"] == "aws_cloudwatch_dashboard.main":
            c["change"]["actions"] = ["create", "delete"]
    assert run_suite("plan_changes", build_plan_changes_frame(changes), tmp_path).success


def test_missing_expected_address_fails_naming_it(tmp_path):
    changes = [c for c in plan_changes() if c["address"] != "aws_sns_topic.ops_alerts"]
    outcome = run_suite("plan_changes", build_plan_changes_frame(changes), tmp_path)
    contains = check_id("plan_changes", "Every address of the naming contract")
    assert failed(outcome) == {contains: ("address", ["aws_sns_topic.ops_alerts"])}


def test_deleted_expected_address_counts_as_missing(tmp_path):
    changes = plan_changes()
    for c in changes:
        if c["address"] == "aws_cloudwatch_dashboard.main":
            c["change"]["actions"] = ["delete"]
    outcome = run_suite("plan_changes", build_plan_changes_frame(changes), tmp_path)
    contains = check_id("plan_changes", "Every address of the naming contract")
    assert failed(outcome) == {contains: ("address", ["aws_cloudwatch_dashboard.main"])}


# -- alarm_inventory -------------------------------------------------------------------------
def test_alarm_inventory_passes_on_the_contract(tmp_path):
    outcome = run_suite(
        "alarm_inventory", build_alarm_inventory_frame(alarms()), tmp_path, environment=ENV
    )
    assert outcome.success, failed(outcome)
    results = to_check_results(outcome)
    assert [r.check_id for r in results] == [
        f"GX-alarm_inventory-{n}" for n in range(1, len(results) + 1)
    ]
    assert {r.status for r in results} == {Status.PASS}


def test_seven_alarms_fail_naming_the_missing_one(tmp_path):
    live = [a for a in alarms() if not a["AlarmName"].endswith("-ssm-parameter-failures")]
    outcome = run_suite(
        "alarm_inventory", build_alarm_inventory_frame(live), tmp_path, environment=ENV
    )
    count = check_id("alarm_inventory", "Exactly 8 alarms")
    names = check_id("alarm_inventory", "The alarm names are exactly")
    assert failed(outcome) == {
        count: (None, []),
        names: ("name", [contract.name(ENV, "ssm-parameter-failures")]),
    }
    by_id = {e.check_id: e for e in outcome.failed}
    assert by_id[count].observed == 7


def test_alarm_threshold_100_fails_on_that_alarm(tmp_path):
    live = alarms()
    consent_read = contract.name(ENV, "consent-read-throttle")
    next(a for a in live if a["AlarmName"] == consent_read)["Threshold"] = 100.0
    outcome = run_suite(
        "alarm_inventory", build_alarm_inventory_frame(live), tmp_path, environment=ENV
    )
    threshold = check_id("alarm_inventory", "Threshold is 10")
    assert failed(outcome) == {
        threshold: ("threshold", [{"threshold": 100.0, "name": consent_read}])
    }
    result = {r.check_id: r for r in to_check_results(outcome)}[threshold]
    assert result.subject == consent_read
    assert result.evidence[0].observed["unexpected_rows"] == [
        {"threshold": 100.0, "name": consent_read}
    ]


@pytest.mark.parametrize(
    ("short", "threshold", "description"),
    [
        ("ssm-parameter-failures", 10.0, "Threshold is 5"),
        ("circuit-breaker-triggered", 1.0, "Threshold is 0"),
    ],
)
def test_custom_metric_thresholds_are_per_alarm(tmp_path, short, threshold, description):
    live = alarms()
    name = contract.name(ENV, short)
    next(a for a in live if a["AlarmName"] == name)["Threshold"] = threshold
    outcome = run_suite(
        "alarm_inventory", build_alarm_inventory_frame(live), tmp_path, environment=ENV
    )
    assert failed(outcome) == {
        check_id("alarm_inventory", description): (
            "threshold",
            [{"threshold": threshold, "name": name}],
        )
    }


def test_alarm_in_alarm_state_and_without_topic_fail(tmp_path):
    live = alarms()
    live[0]["StateValue"] = "ALARM"
    live[1]["AlarmActions"] = ["arn:aws:sns:us-east-1:123456789012:someone-elses-topic"]
    outcome = run_suite(
        "alarm_inventory", build_alarm_inventory_frame(live), tmp_path, environment=ENV
    )
    assert failed(outcome) == {
        check_id("alarm_inventory", "Every alarm is in state"): (
            "state",
            [{"state": "ALARM", "name": live[0]["AlarmName"]}],
        ),
        check_id("alarm_inventory", "Every alarm's actions name"): (
            "actions",
            [{"actions": live[1]["AlarmActions"][0], "name": live[1]["AlarmName"]}],
        ),
    }


# -- pitr_status -----------------------------------------------------------------------------
def test_pitr_status_passes_when_enabled(tmp_path):
    frame = build_pitr_status_frame(pitr_records())
    assert frame["earliest_restorable"][0] == (NOW - timedelta(hours=1)).isoformat()
    outcome = run_suite("pitr_status", frame, tmp_path, environment=ENV)
    assert outcome.success, failed(outcome)


def test_disabled_table_fails_on_that_table(tmp_path):
    records = pitr_records()
    consent = contract.name(ENV, "consent")
    pitr = records[1]["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert records[1]["table"] == consent
    pitr["PointInTimeRecoveryStatus"] = "DISABLED"
    outcome = run_suite("pitr_status", build_pitr_status_frame(records), tmp_path, environment=ENV)
    assert failed(outcome) == {
        check_id("pitr_status", "Point-in-time recovery is ENABLED"): (
            "status",
            [{"status": "DISABLED", "table": consent}],
        )
    }
    # as AWS reports it: disabled, so no restorable time either
    del pitr["EarliestRestorableDateTime"]
    outcome = run_suite("pitr_status", build_pitr_status_frame(records), tmp_path, environment=ENV)
    assert {column for column, _ in failed(outcome).values()} == {"status", "earliest_restorable"}
    assert all(rows[0]["table"] == consent for _, rows in failed(outcome).values())


def test_pitr_reads_flat_rows_and_counts_tables(tmp_path):
    rows = [
        {"table": t.name(ENV), "status": "ENABLED", "earliest_restorable": "2025-03-04T04:00:00Z"}
        for t in contract.TABLES[:2]
    ]
    outcome = run_suite("pitr_status", build_pitr_status_frame(rows), tmp_path, environment=ENV)
    assert failed(outcome) == {
        check_id("pitr_status", "PITR status read for 3 tables"): (None, []),
        check_id("pitr_status", "The tables are exactly"): (
            "table",
            [contract.name(ENV, "block-counter")],
        ),
    }


# -- fp_events -------------------------------------------------------------------------------
def test_fp_events_pass_as_the_oracle_writes_them(tmp_path):
    outcome = run_suite("fp_events", build_fp_events_frame(fp_events()), tmp_path, now=NOW)
    assert outcome.success, failed(outcome)


def test_fp_events_read_in_dynamodb_wire_format(tmp_path):
    from boto3.dynamodb.types import TypeSerializer

    serialize = TypeSerializer().serialize
    wire = [{k: serialize(v) for k, v in item.items()} for item in fp_events()]
    frame = build_fp_events_frame(wire)
    assert frame["expiresAt"].tolist() == [e["expiresAt"] for e in fp_events()]
    assert json.loads(frame["context"][0]) == {"repo": "org/repo", "pr": 42}
    assert run_suite("fp_events", frame, tmp_path, now=NOW).success


@pytest.mark.parametrize(
    ("broken", "description", "column", "row"),
    [
        (
            {"expiresAt": int(NOW.timestamp()) + 30 * 86400},
            "expiresAt (epoch s) is 90 days ahead",
            "expiresAt",
            {"expiresAt": int(NOW.timestamp()) + 30 * 86400, "eventId": "evt-2"},
        ),
        (
            {"timestamp": "04/03/2025 05:06:07"},
            "timestamp is ISO-8601",
            "timestamp",
            {"timestamp": "04/03/2025 05:06:07", "eventId": "evt-2"},
        ),
        ({"pk": None}, "Every item has pk", "pk", {"pk": None, "eventId": "evt-2"}),
        (
            {"recordedAt": int(NOW.timestamp())},  # seconds, not milliseconds
            "recordedAt is epoch milliseconds",
            "recordedAt",
            {"recordedAt": int(NOW.timestamp()), "eventId": "evt-2"},
        ),
        (
            {"isFalsePositive": "true"},
            "isFalsePositive is a boolean",
            "isFalsePositive",
            {"isFalsePositive": "true", "eventId": "evt-2"},
        ),
        (
            {"sk": "event#yesterday#evt-2"},
            "sk is event#",
            "sk",
            {"sk": "event#yesterday#evt-2", "eventId": "evt-2"},
        ),
    ],
)
def test_broken_fp_event_fails_on_that_row_and_column(tmp_path, broken, description, column, row):
    items = fp_events()
    items[2] = fp_event(2, **broken)
    outcome = run_suite("fp_events", build_fp_events_frame(items), tmp_path, now=NOW)
    assert failed(outcome) == {check_id("fp_events", description): (column, [row])}


def test_fp_event_ttl_window_follows_now(tmp_path):
    frame = build_fp_events_frame(fp_events())
    later = NOW + timedelta(days=5)
    outcome = run_suite("fp_events", frame, tmp_path, now=later)
    assert {column for column, _ in failed(outcome).values()} == {"expiresAt", "recordedAt"}


# -- Data Docs, imports, network -------------------------------------------------------------
def test_data_docs_index_lists_every_suite_run_into_the_directory(tmp_path):
    runs = [
        run_suite("plan_changes", build_plan_changes_frame(plan_changes()), tmp_path),
        run_suite(
            "pitr_status", build_pitr_status_frame(pitr_records()), tmp_path, environment=ENV
        ),
    ]
    index = tmp_path / "data-docs" / "index.html"
    assert index.is_file()
    assert all(Path(o.data_docs_index) == index.resolve() for o in runs)
    html = index.read_text()
    assert "plan_changes" in html and "pitr_status" in html
    for outcome in runs:
        page = Path(outcome.validation_page)
        assert page.is_file() and page.is_relative_to(tmp_path.resolve())
        assert outcome.suite in page.read_text()


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_importing_the_package_does_not_import_great_expectations():
    proc = _python(
        """
        import sys
        import tasks.expectations, tasks.expectations.task
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("great_expectations", "pandas")))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_suite_run_reaches_no_network(tmp_path):
    """Every socket connect / name lookup of a cold run (import included) is recorded."""
    proc = _python(
        f"""
        import json, sys
        seen = []
        def hook(event, args):
            if event in ("socket.connect", "socket.getaddrinfo", "socket.sendto", "urllib.Request"):
                seen.append([event, repr(args)[:200]])
        sys.addaudithook(hook)
        from pathlib import Path
        from tests.test_expectations import NOW, alarms, fp_events
        from tasks.expectations import build_alarm_inventory_frame, build_fp_events_frame, run_suite
        a = run_suite("alarm_inventory", build_alarm_inventory_frame(alarms()), Path({str(tmp_path)!r}), environment="staging")
        b = run_suite("fp_events", build_fp_events_frame(fp_events()), Path({str(tmp_path)!r}), now=NOW)
        print(json.dumps({{"ok": a.success and b.success, "seen": seen}}))
        """
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"ok": True, "seen": []}


def test_unknown_suite_is_a_config_error(tmp_path):
    from mirror_rollout.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown expectation suite"):
        run_suite("alarms", build_alarm_inventory_frame([]), tmp_path)
    assert set(SUITES) == {
        "plan_changes",
        "alarm_inventory",
        "pitr_status",
        "fp_events",
        "restore_drill",
    }


# -- inside a Prefect flow -------------------------------------------------------------------
def test_validate_publishes_artifacts_inside_a_flow_run(prefect_api, tmp_path):
    from prefect import flow

    from mirror_rollout.evidence import ValidationFailed
    from tasks.expectations.task import ExpectationsFailed, validate
    from tests.rollout_run import artifacts_of

    broken = pitr_records()
    broken[0]["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
        "PointInTimeRecoveryStatus"
    ] = "DISABLED"

    @flow(name="expectations-test")
    def check(out_dir: str):
        good = validate("alarm_inventory", alarms(), ENV, out_dir)
        bad = validate("pitr-status", broken, ENV, out_dir, return_state=True)
        return good, bad.is_failed(), bad.result(raise_on_failure=False)

    state = check(str(tmp_path), return_state=True)
    assert state.is_completed()
    good, bad_failed, error = state.result()
    assert {r.status for r in good} == {Status.PASS}
    assert bad_failed
    assert isinstance(error, ExpectationsFailed) and isinstance(error, ValidationFailed)
    assert "GX-pitr_status-3" in str(error)
    (row,) = error.outcome.failed[0].unexpected_rows
    assert row == {"status": "DISABLED", "table": contract.name(ENV, "fp-events")}

    artifacts = artifacts_of(str(state.state_details.flow_run_id))
    table = artifacts[f"{ENV}-expectations-alarm-inventory"]
    assert "GX-alarm_inventory-1" in table and "PASS" in table
    assert "FAIL" in artifacts[f"{ENV}-expectations-pitr-status"]
    docs = artifacts[f"{ENV}-expectations-pitr-status-docs"]
    index = tmp_path / "data-docs" / "index.html"
    assert str(index.resolve()) in docs and index.resolve().as_uri() in docs
    assert "alarm_inventory" in index.read_text() and "pitr_status" in index.read_text()
