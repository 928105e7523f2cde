"""Data-plane contract: infra/data-plane.yaml against table shapes (pure), against staging
applied by the real Terraform on moto, and against a copy of infra whose consent table is
reverted to the old orgId key (the stage FAILs naming both sides; moving back to pk/sk is a
destructive replace that needs allow_destroy)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mirror_rollout import PROJECT_ROOT, contract
from mirror_rollout.errors import ConfigError
from mirror_rollout.results import Status
from tasks.data_plane.checks import TableShape, mismatches, shape_from_describe
from tasks.data_plane.spec import SPEC_PATH, load_data_plane
from tests.applied import apply_environment, shared_staging
from tests.aws_inventory import client
from tests.infra_copy import InfraCopy
from tests.support.targets import sandbox_target

ENV = "staging"
REGION = "us-east-1"
pytestmark = pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")
PLANE = load_data_plane()
BY_ID = {p.id: p for p in PLANE.patterns}
CMK = "arn:aws:kms:us-east-1:123456789012:key/k"


def said(*args) -> list[str]:
    return [message for _, message in mismatches(*args)]


def shape(**changes) -> TableShape:
    base = dict(
        name="mirror-dissonance-staging-consent",
        keys={"pk": "S", "sk": "S"},
        sse="KMS",
        sse_key=CMK,
    )
    return TableShape(**(base | changes))


# -- pure ------------------------------------------------------------------------------------
def test_the_access_patterns_agree_with_the_naming_contract():
    for spec in contract.TABLES:
        patterns = [p for p in PLANE.patterns if p.table == spec.key]
        assert patterns, spec.key
        for p in patterns:
            assert list(p.keys) == [k for k in (spec.hash_key, spec.range_key) if k]
            assert p.ttl in (None, spec.ttl_attribute)
            if p.index:
                assert (p.index.name, *p.index.keys) == spec.gsi
    assert BY_ID["block-counter-increment"].ttl == "ttl"
    assert {u.env for u in PLANE.tables.values()} == {
        "FP_TABLE_NAME",
        "CONSENT_TABLE_NAME",
        "BLOCK_COUNTER_TABLE_NAME",
    }


def test_each_mismatch_names_both_sides():
    consent, use = BY_ID["consent-record-put"], PLANE.tables["consent"]
    assert said(consent, use, shape(), CMK) == []
    assert said(consent, use, shape(keys={"orgId": "S"}), CMK) == [
        "consent adapter keys pk/sk; table keys orgId"
    ]
    assert said(consent, use, shape(keys={"pk": "S", "sk": "N"})) == [
        "consent adapter keys pk:S/sk:S; table keys pk:S/sk:N"
    ]
    assert said(consent, use, None) == ["consent adapter uses table consent; no such table"]
    assert said(consent, use, shape(sse="DEFAULT")) == [
        "consent adapter expects SSE-KMS with the project CMK; table SSE is DEFAULT"
    ]
    # the consent adapter writes expiresAt as an ISO string: a TTL on it would never expire
    assert said(consent, use, shape(ttl="expiresAt", ttl_status="ENABLED")) == [
        "consent adapter writes expiresAt as S; table TTL reads expiresAt as epoch seconds (N)"
    ]

    counter, use = BY_ID["block-counter-increment"], PLANE.tables["block-counter"]
    old = shape(keys={"bucketKey": "S"}, ttl="expiresAt", ttl_status="ENABLED")
    assert said(counter, use, old) == [
        "block counter adapter writes its expiry to ttl; table TTL attribute is expiresAt"
    ]
    off = shape(keys={"bucketKey": "S"}, ttl="ttl", ttl_status="DISABLED")
    assert said(counter, use, off) == [
        "block counter adapter writes its expiry to ttl; table TTL on ttl is DISABLED"
    ]

    query, use = BY_ID["fp-event-by-finding"], PLANE.tables["fp-events"]
    keys_only = shape(indexes={"FindingIndex": ({"gsi1pk": "S", "gsi1sk": "S"}, "KEYS_ONLY")})
    assert said(query, use, keys_only) == [
        "FP store adapter queries FindingIndex on gsi1pk:S/gsi1sk:S (ALL); "
        "table FindingIndex is on gsi1pk:S/gsi1sk:S (KEYS_ONLY)"
    ]


def test_describe_responses_become_a_shape():
    table = {
        "TableName": "t",
        "AttributeDefinitions": [
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "pk", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "sk", "KeyType": "RANGE"},
            {"AttributeName": "pk", "KeyType": "HASH"},
        ],
        "SSEDescription": {"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": CMK},
    }
    ttl = {"TimeToLiveDescription": {"AttributeName": "ttl", "TimeToLiveStatus": "ENABLED"}}
    got = shape_from_describe(table, ttl)
    assert list(got.keys) == ["pk", "sk"] and got.ttl == "ttl" and got.sse_key == CMK
    assert shape_from_describe(table | {"SSEDescription": None}, {}).sse == "DEFAULT"


def test_a_broken_access_pattern_file_is_one_clear_error(tmp_path):
    (tmp_path / "infra").mkdir()
    path = tmp_path / SPEC_PATH
    with pytest.raises(ConfigError, match=r"cannot read infra/data-plane\.yaml"):
        load_data_plane(tmp_path)
    text = (PROJECT_ROOT / SPEC_PATH).read_text()
    path.write_text(text.replace("keys: {bucketKey: S}", "keys: {bucketKey: X}"))
    with pytest.raises(ConfigError, match=r"patterns\.4\.keys\.bucketKey"):
        load_data_plane(tmp_path)
    path.write_text(text.replace("table: consent\n", "table: consents\n", 1))
    with pytest.raises(ConfigError, match="uses table 'consents', not listed under tables"):
        load_data_plane(tmp_path)


# -- sandbox ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def staging(sandbox, prefect_api, tmp_path_factory):
    return shared_staging(tmp_path_factory.mktemp("dp-plan")).outputs


def contract_items() -> list[dict]:
    """Items whose values carry the contract stage's test marker, in any project table."""
    found = []
    for spec in contract.TABLES:
        items = client("dynamodb").scan(TableName=spec.name(ENV))["Items"]
        found += [i for i in items if "mirror-rollout-contract#" in repr(i)]
    return found


def test_staging_serves_every_access_pattern(staging):
    from tasks.data_plane.task import data_plane_contract

    results = data_plane_contract.fn(sandbox_target(ENV, REGION))
    assert [(r.check_id, r.status) for r in results] == [
        (f"DATAPLANE-{n:03d}", Status.PASS) for n in range(1, 9)
    ], [r.message for r in results]
    by_subject = {r.subject: r for r in results[:3]}
    consent = by_subject[contract.name(ENV, "consent")].evidence[0].observed
    assert consent["keys"] == {"pk": "S", "sk": "S"} and consent["sse"] == "KMS"
    counter = by_subject[contract.name(ENV, "block-counter")].evidence[0].observed
    assert (counter["ttl"], counter["ttl_status"]) == ("ttl", "ENABLED")
    put = next(r for r in results if "fp-event-put" in r.title).evidence[0].observed
    assert put["duplicate_refused"] is True and put["test_item_removed"] is True
    assert contract_items() == []


def test_a_consent_table_reverted_to_orgid_fails_naming_both_sides(staging, tmp_path):
    from mirror_rollout.evidence import ValidationFailed
    from mirror_rollout.provisioners import terraform_for
    from tasks.approval.form import ApprovalForm, ApprovalRejected, check_approval
    from tasks.approval.reviewers import reviewers_for
    from tasks.data_plane.task import data_plane_contract

    old = InfraCopy(tmp_path / "old")
    old.edit(
        "terraform/main.tf",
        '''  hash_key                    = "pk"
  range_key                   = "sk"''',
        '  hash_key                    = "orgId"',
        within='resource "aws_dynamodb_table" "consent"',
    )
    old.edit(
        "terraform/main.tf",
        '''    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"''',
        '    name = "orgId"',
        within='resource "aws_dynamodb_table" "consent"',
    )
    apply_environment(ENV, tmp_path / "old-plan", root=old.root)
    consent_table = contract.name(ENV, "consent")
    old_item = {
        "orgId": {"S": "acme"},
        "consent": {"S": "granted"},
        "scope": {"S": "fp-events"},
        "grantedAt": {"S": "2026-01-02T03:04:05.000Z"},
        "grantedBy": {"S": "dana"},
    }
    client("dynamodb").put_item(TableName=consent_table, Item=old_item)
    export = tmp_path / "consent-orgid.json"
    export.write_text(json.dumps(client("dynamodb").scan(TableName=consent_table)))
    with pytest.raises(ValidationFailed) as failed:
        data_plane_contract.fn(sandbox_target(ENV, REGION))
    by_id = {r.check_id: r for r in failed.value.results}
    consent = next(r for r in by_id.values() if r.subject == contract.name(ENV, "consent"))
    assert consent.status is Status.FAIL
    assert consent.message == "consent adapter keys pk/sk; table keys orgId"
    performed = [
        r for r in by_id.values() if "consent" in r.title and r.check_id != consent.check_id
    ]
    assert [r.status for r in performed] == [Status.SKIPPED, Status.SKIPPED]
    assert all(consent.check_id in r.message for r in performed)
    # the other tables still serve their patterns
    assert {r.status for r in by_id.values() if "consent" not in r.subject} == {Status.PASS}

    # Back to the project's infra: Terraform replaces the consent table, a destructive change.
    terraform = terraform_for(ENV, "sandbox", PROJECT_ROOT, tmp_path / "new" / "terraform")
    planned = terraform.plan(tmp_path / "new")
    assert [(d.address, d.action) for d in planned.summary.destructive] == [
        ("aws_dynamodb_table.consent", "replace")
    ]
    form = dict(approve=True, reviewer="dana", plan_sha256=planned.sha256)
    # Staging's registry takes an unsigned approval from an unregistered name.
    gate = (reviewers_for(ENV, "sandbox", PROJECT_ROOT), "run-of-the-migration", "approval-1")
    with pytest.raises(ApprovalRejected, match=r"aws_dynamodb_table\.consent.*allow_destroy"):
        check_approval(ApprovalForm(**form), planned.summary, [], "sandbox", *gate)
    check_approval(ApprovalForm(**form, allow_destroy=True), planned.summary, [], "sandbox", *gate)
    terraform.apply(Path(planned.plan_file), planned.sha256)
    results = data_plane_contract.fn(sandbox_target(ENV, REGION))
    assert {r.status for r in results} == {Status.PASS}

    # The README's migration: the export re-keyed by scripts/rekey_consent.py, written back,
    # and read as the consent adapter reads it (the summary of org#sha256(orgId)).
    assert client("dynamodb").scan(TableName=consent_table)["Items"] == []  # replaced: empty
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "rekey_consent.py"), str(export)],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stdout.splitlines():
        client("dynamodb").put_item(TableName=consent_table, Item=json.loads(line))
    pk = "org#" + hashlib.sha256(b"acme").hexdigest()
    summary = client("dynamodb").get_item(
        TableName=consent_table, Key={"pk": {"S": pk}, "sk": {"S": "consent#summary"}}
    )["Item"]
    (entry,) = summary["records"]["L"]
    assert entry["M"]["scope"] == {"S": "fp-events"} and entry["M"]["revoked"] == {"BOOL": False}
    record = client("dynamodb").get_item(
        TableName=consent_table, Key={"pk": {"S": pk}, "sk": entry["M"]["sk"]}
    )["Item"]
    assert record["grantedBy"] == {"S": hashlib.sha256(b"dana").hexdigest()}
    assert "acme" not in json.dumps(record)
    for line in done.stdout.splitlines():
        item = json.loads(line)
        client("dynamodb").delete_item(
            TableName=consent_table, Key={"pk": item["pk"], "sk": item["sk"]}
        )


def test_the_rekey_script_refuses_what_is_no_scan_export(tmp_path):
    bad = tmp_path / "old.json"
    bad.write_text("[]")
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "rekey_consent.py"), str(bad)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"cannot read {bad} as a DynamoDB scan export")
    assert "aws dynamodb scan --table-name TABLE --output json" in done.stderr
