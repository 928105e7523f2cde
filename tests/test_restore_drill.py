"""PITR restore drill: pure names and comparison; the drill against staging applied on the sandbox.

moto implements RestoreTableToPointInTime but copies the source's items as they are at
the call (it ignores RestoreDateTime, moto 5.2 ``restore_table_to_point_in_time``);
the drill reads nothing written after T, so the comparison holds on both backends.
"""

from __future__ import annotations

import os
import uuid

import pytest

from mirror_rollout import contract
from mirror_rollout.aws import AwsClients
from mirror_rollout.errors import ConfigError
from mirror_rollout.results import Status
from mirror_rollout.retries import is_transient
from mirror_rollout.target import rules_for
from tasks.expectations import build_restore_drill_frame, run_suite
from tasks.guardrails.checks import evaluate_guardrails
from tasks.orphans.checks import LiveResource, Orphan, orphan_results
from tasks.restore_drill.checks import (
    CHECK_ID,
    compare,
    drill_records,
    drill_table_name,
    is_drill_table,
    keyed,
    runs_in_rollout,
    short_run_id,
)
from tasks.restore_drill.task import DrillFailed, DrillRefused, restore_drill, run_drill
from tests.applied import shared_staging
from tests.aws_inventory import client
from tests.support.targets import sandbox_target

pytestmark = pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")
ENV = "staging"
SOURCES = [spec.name(ENV) for spec in contract.TABLES]
RESTORE = "dynamodb.RestoreTableToPointInTime"
DELETE = "dynamodb.DeleteTable"


# -- pure ------------------------------------------------------------------------------------
def test_drill_names_never_a_source_and_distinct_per_run():
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    for spec in contract.TABLES:
        name = drill_table_name(ENV, spec.key, a)
        assert name == f"{spec.name(ENV)}-drill-{a[:8]}"
        assert name not in SOURCES and is_drill_table(ENV, name)
        assert name != drill_table_name(ENV, spec.key, b)
    assert short_run_id("1A2B3C4D-0000-4000-8000-000000000000") == "1a2b3c4d"
    assert not any(is_drill_table(ENV, s) for s in SOURCES)
    assert not is_drill_table("production", drill_table_name(ENV, "consent", a))
    with pytest.raises(ConfigError, match="fewer than 8 hex digits"):
        drill_table_name(ENV, "consent", "run-1")
    with pytest.raises(ConfigError, match="unknown table 'users'"):
        drill_table_name(ENV, "users", a)


def item(pk: str, **values) -> dict:
    return {"pk": {"S": pk}, **values}


def test_comparison_names_the_first_differing_key():
    source = keyed([item("a", n={"N": "1"}), item("b", tags={"SS": ["x", "y"]})], ["pk"])
    same = keyed([item("b", tags={"SS": ["y", "x"]}), item("a", n={"N": "1"})], ["pk"])
    assert compare(source, same).match  # set order and item order do not matter
    assert compare(source, same).source_digest == compare(source, same).copy_digest

    changed = compare(
        source, keyed([item("a", n={"N": "2"}), item("b", tags={"SS": ["x", "y"]})], ["pk"])
    )
    assert (changed.match, changed.first_difference) == (False, "pk=a")
    assert changed.difference == "attribute values differ: n"
    assert changed.source_digest != changed.copy_digest

    lost = compare(source, keyed([item("a", n={"N": "1"})], ["pk"]))
    assert (lost.first_difference, lost.source_items, lost.copy_items) == ("pk=b", 2, 1)
    assert lost.difference == "in the source at T, missing from the copy"
    more = [item("a", n={"N": "1"}), item("b", tags={"SS": ["x", "y"]}), item("c")]
    extra = compare(source, keyed(more, ["pk"]))
    assert (extra.first_difference, extra.difference) == (
        "pk=c",
        "in the copy, not in the source at T",
    )


def test_on_by_default_except_production_where_it_is_a_parameter():
    staging, production = rules_for("staging"), rules_for("production")
    assert runs_in_rollout(staging, None) and runs_in_rollout(rules_for("sandbox"), None)
    assert not runs_in_rollout(production, None) and runs_in_rollout(production, True)
    assert not runs_in_rollout(staging, False)


def test_orphan_scan_names_a_leftover_drill_copy_with_the_command_that_removes_it():
    copy = drill_table_name(ENV, "fp-events", uuid.uuid4().hex)
    live = [
        LiveResource("aws_dynamodb_table", copy),
        LiveResource("aws_dynamodb_table", SOURCES[0]),
    ]
    results = orphan_results(ENV, live, [Orphan(live[0], None)], "AWS vs state", "eu-west-1")
    by_id = {r.check_id: r for r in results}
    assert by_id["ORPHAN-001"].status is Status.PASS  # never "adopt" a drill copy
    leftover = by_id["ORPHAN-002"]
    assert leftover.status is Status.FAIL and leftover.blocking
    assert f"aws dynamodb delete-table --region eu-west-1 --table-name {copy}" in leftover.message


def test_guardrail_catches_a_deploy_role_that_may_delete_any_table(infra):
    infra.edit(
        "terraform/github-oidc.tf",
        'Resource = "arn:${local.partition}:dynamodb:${var.region}:${local.account_id}:table/${local.prefix}-*-drill-*"',
        'Resource = "*"',
    )
    results = evaluate_guardrails(ENV, infra.root)
    failed = [r for r in results if r.status is Status.FAIL]
    assert {r.check_id for r in failed} >= {"MR-057"}
    messages = " ".join(r.message for r in failed if r.check_id == "MR-057")
    assert "allows deleting '*', not only drill copies" in messages
    assert all(r.location.startswith("infra/terraform/github-oidc.tf:") for r in failed)


def test_guardrail_catches_restoring_from_or_deleting_a_source_table(infra):
    infra.edit(
        "terraform/github-oidc.tf",
        'Action   = ["dynamodb:RestoreTableToPointInTime", "dynamodb:Scan"]',
        'Action   = ["dynamodb:RestoreTableToPointInTime", "dynamodb:Scan", "dynamodb:DeleteTable"]',
    )
    failed = [r for r in evaluate_guardrails(ENV, infra.root) if r.status is Status.FAIL]
    assert {r.check_id for r in failed} == {"MR-057"}
    assert sorted(r.message.split("'")[1] for r in failed) == sorted(SOURCES)
    assert all("allows deleting" in r.message for r in failed)


def test_guardrail_catches_a_deploy_role_that_cannot_restore(infra):
    infra.edit("terraform/github-oidc.tf", '"dynamodb:RestoreTableToPointInTime", ', "")
    [failed] = [r for r in evaluate_guardrails(ENV, infra.root) if r.status is Status.FAIL]
    assert failed.check_id == "MR-057"
    assert "no statement allows dynamodb:RestoreTableToPointInTime on" in failed.message


# -- against the sandbox --------------------------------------------------------------------
@pytest.fixture(scope="module")
def staging(prefect_api, tmp_path_factory):
    return shared_staging(tmp_path_factory.mktemp("plan"))


@pytest.fixture
def seeded(staging):
    """A few items in each table, written by their live key schema (whatever the E2E writes)."""
    ddb = client("dynamodb")
    for table in SOURCES:
        keys = [
            k["AttributeName"] for k in ddb.describe_table(TableName=table)["Table"]["KeySchema"]
        ]
        for n in range(3):
            ddb.put_item(
                TableName=table,
                Item={
                    **{k: {"S": f"drill-test#{n}#{k}"} for k in keys},
                    "count": {"N": str(n)},
                    "labels": {"SS": ["a", "b"]},
                    "context": {"M": {"rule": {"S": "MD-001"}, "ok": {"BOOL": True}}},
                },
            )
    return ddb


def region() -> str:
    return os.environ["AWS_REGION"]


def drill_tables() -> list[str]:
    return [t for t in client("dynamodb").list_tables()["TableNames"] if "-drill-" in t]


def test_drill_passes_with_its_figures_and_leaves_no_drill_table(seeded, tmp_path):
    results = restore_drill.fn(sandbox_target(ENV, region()), run_id=uuid.uuid4().hex)
    assert [(r.check_id, r.subject, r.status) for r in results] == [
        (CHECK_ID, s, Status.PASS) for s in SOURCES
    ]
    rows = drill_records(results)
    for row, result in zip(rows, results, strict=True):
        figures = next(e.observed for e in result.evidence if e.source == "restore drill")
        assert figures["match"] is True and figures["copy_deleted"] is True
        assert figures["source_items"] == figures["copy_items"] >= 3
        assert figures["source_digest"] == figures["copy_digest"]
        assert figures["restore_point"].endswith("+00:00")
        assert figures["to_active_seconds"] >= 0 and figures["total_seconds"] > 0
        assert row["match"] is True and row["table"] == result.subject
        print(
            f"drill {result.subject}: to ACTIVE {figures['to_active_seconds']} s, compare "
            f"{figures['compare_seconds']} s, delete {figures['delete_seconds']} s, total "
            f"{figures['total_seconds']} s, {figures['source_items']} items"
        )
    assert drill_tables() == []
    outcome = run_suite("restore_drill", build_restore_drill_frame(rows), tmp_path, environment=ENV)
    assert outcome.success and outcome.rows == 3


def copy_becomes_active(clients: AwsClients, then) -> None:
    """Call ``then(copy, key schema)`` once, when the drill first sees a copy ACTIVE."""
    done = set()

    def seen(parsed, **_):
        table = parsed.get("Table") or {}
        name = table.get("TableName", "")
        if "-drill-" in name and table.get("TableStatus") == "ACTIVE" and not done:
            done.add(name)
            then(name, [k["AttributeName"] for k in table["KeySchema"]])

    clients.client("dynamodb").meta.events.register("after-call.dynamodb.DescribeTable", seen)


def test_an_item_changed_in_the_copy_fails_naming_its_key(seeded, tmp_path):
    clients, changed = AwsClients(region(), environment=ENV), {}

    def tamper(copy, keys):
        key = {k: {"S": f"drill-test#1#{k}"} for k in keys}
        client("dynamodb").update_item(
            TableName=copy,
            Key=key,
            UpdateExpression="SET #c = :c",
            ExpressionAttributeNames={"#c": "count"},
            ExpressionAttributeValues={":c": {"N": "99"}},
        )
        changed[copy] = ", ".join(f"{k}=drill-test#1#{k}" for k in keys)

    copy_becomes_active(clients, tamper)
    results = run_drill(clients, ENV, uuid.uuid4().hex, sleep=lambda _: None)
    [(copy, key)] = changed.items()
    source = copy.rsplit("-drill-", 1)[0]
    failed = {r.subject: r for r in results if r.status is Status.FAIL}
    assert list(failed) == [source]
    assert f"first differing key {key} (attribute values differ: count)" in failed[source].message
    assert [r.status for r in results if r.subject != source] == [Status.PASS] * 2
    assert drill_tables() == [] and clients.calls[DELETE] == 3
    frame = build_restore_drill_frame(drill_records(results))
    outcome = run_suite("restore_drill", frame, tmp_path, environment=ENV)
    assert not outcome.success
    assert {e.description for e in outcome.failed} == {
        "The digest of keys and attribute values is the source's at T"
    }


def test_a_failure_mid_drill_still_deletes_every_copy(seeded):
    from botocore.exceptions import EndpointConnectionError

    clients = AwsClients(region(), environment=ENV)

    def connection_drops(params, **_):
        if "-drill-" in params.get("TableName", ""):
            raise EndpointConnectionError(endpoint_url=os.environ["AWS_ENDPOINT_URL"])

    clients.client("dynamodb").meta.events.register(
        "before-parameter-build.dynamodb.Scan", connection_drops
    )
    with pytest.raises(DrillFailed) as raised:
        run_drill(clients, ENV, uuid.uuid4().hex, sleep=lambda _: None)
    assert is_transient(raised.value.__cause__)  # so the Prefect task retries the drill
    assert [r.status for r in raised.value.results] == [Status.FAIL] * 3
    assert "Could not connect to the endpoint URL" in raised.value.results[0].message
    assert clients.calls[RESTORE] == 3 and clients.calls[DELETE] == 3
    assert drill_tables() == []


def test_an_existing_drill_table_name_is_refused_and_nothing_changes(seeded):
    run_id = uuid.uuid4().hex
    taken = drill_table_name(ENV, "consent", run_id)
    ddb = client("dynamodb")
    ddb.create_table(
        TableName=taken,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        clients = AwsClients(region(), environment=ENV)
        with pytest.raises(DrillRefused) as refused:
            run_drill(clients, ENV, run_id, sleep=lambda _: None)
        assert str(refused.value).startswith(
            f"restore drill refused: drill table(s) already exist: {taken} — nothing was "
            f"restored or deleted"
        )
        assert f"aws dynamodb delete-table --region {region()} --table-name {taken}" in str(
            refused.value
        )
        assert RESTORE not in clients.calls and DELETE not in clients.calls
        assert drill_tables() == [taken]
    finally:
        ddb.delete_table(TableName=taken)


def test_weekly_flow_runs_the_drill_on_its_own(seeded, prefect_api):
    from flows.restore_drill import restore_drill_flow
    from tests.rollout_run import artifacts_of

    state = restore_drill_flow(environment=ENV, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["verdict"] == "PASS"
    assert summary["tables"] == dict.fromkeys(SOURCES, "PASS")
    artifact = artifacts_of(str(state.state_details.flow_run_id))[f"{ENV}-restore-drill"]
    assert CHECK_ID in artifact and "PASS" in artifact
    assert drill_tables() == []


def test_a_writer_during_t_is_reported_and_nothing_is_restored(seeded):
    from mirror_rollout.errors import RolloutError

    clients, writes = AwsClients(region(), environment=ENV), []
    fp_events = SOURCES[0]

    def someone_writes(params, **_):
        if params.get("TableName") == fp_events:  # every scan of the source sees a new item
            writes.append(uuid.uuid4().hex)
            client("dynamodb").put_item(
                TableName=fp_events,
                Item={"pk": {"S": f"writer#{writes[-1]}"}, "sk": {"S": "x"}},
            )

    clients.client("dynamodb").meta.events.register(
        "before-parameter-build.dynamodb.Scan", someone_writes
    )
    with pytest.raises(RolloutError, match="the source tables changed while T was recorded, 3"):
        run_drill(clients, ENV, uuid.uuid4().hex, sleep=lambda _: None)
    assert len(writes) == 6  # two scans per attempt
    assert RESTORE not in clients.calls and drill_tables() == []


def test_plan_guardrail_reads_the_deploy_policy_of_a_real_replan(staging, tmp_path):
    """After the first apply Terraform knows the policy (the tables' ARNs): MR-058 judges it."""
    import json

    from mirror_rollout import PROJECT_ROOT
    from mirror_rollout.provisioners import terraform_for
    from tasks.guardrails.plan_checks import evaluate_plan_guardrails

    terraform = terraform_for(ENV, "sandbox", PROJECT_ROOT, tmp_path / "terraform")
    planned = terraform.plan(tmp_path)
    plan = planned.document.model_dump(mode="json")
    # The sandbox's declared moto gaps (attributes moto does not keep), as the rollout passes them.
    not_kept = {g.address: g.attributes for g in planned.gaps if g.kind == "ignore"}
    [passed] = [r for r in evaluate_plan_guardrails(plan, ENV, not_kept) if r.check_id == "MR-058"]
    assert passed.status is Status.PASS, passed.message

    policy = next(
        r
        for r in plan["planned_values"]["root_module"]["resources"]
        if r["address"] == "aws_iam_role_policy.github_deploy"
    )["values"]
    document = json.loads(policy["policy"])
    copies = next(s for s in document["Statement"] if s["Sid"] == "RestoreDrillCopies")
    assert copies["Resource"].endswith(f":table/{contract.name(ENV, '')}*-drill-*")
    copies["Resource"] = copies["Resource"].rsplit(":table/", 1)[0] + ":table/*"
    policy["policy"] = json.dumps(document)
    failed = [r for r in evaluate_plan_guardrails(plan, ENV, not_kept) if r.status is Status.FAIL]
    assert {r.check_id for r in failed} == {"MR-058"}
    assert "statement RestoreDrillCopies allows deleting '*', not only drill copies" in (
        failed[0].message
    )
