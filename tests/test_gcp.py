"""GCP: pure bucket checks on dict fixtures; the task against the sandbox's GCS emulator."""

from __future__ import annotations

import copy

import pytest

from mirror_rollout.errors import RolloutError
from mirror_rollout.evidence import ValidationFailed
from mirror_rollout.results import Evidence, Status
from tasks.gcp.checks import (
    SANDBOX_SERVICES_REASON,
    SERVICES,
    bucket_name,
    check_bucket,
    check_cmek,
    check_exists,
    check_public_access_prevention,
    check_uniform_access,
    check_versioning,
    services_skipped,
)
from tasks.gcp.provision import provision_sandbox_bucket
from tasks.gcp.task import gcs_baselines, storage_client, verify_gcs
from tests.support.targets import sandbox_target

# ``.fn`` calls publish their artifact outside a run, which Prefect 3 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")

BUCKET = "mirror-dissonance-staging-baselines"
KEY = "projects/p/locations/us-central1/keyRings/mirror-dissonance-staging/cryptoKeys/mirror-dissonance-staging"
OTHER_KEY = KEY.replace("cryptoKeys/mirror-dissonance-staging", "cryptoKeys/other")
EV = Evidence(source="storage.buckets.get test")

#: What real GCS returns for the bucket infra/gcp/main.tf declares.
GOOD = {
    "kind": "storage#bucket",
    "name": BUCKET,
    "location": "US-CENTRAL1",
    "metageneration": "3",
    "versioning": {"enabled": True},
    "iamConfiguration": {
        "bucketPolicyOnly": {"enabled": True, "lockedTime": "2026-02-25T12:00:00Z"},
        "uniformBucketLevelAccess": {"enabled": True, "lockedTime": "2026-02-25T12:00:00Z"},
        "publicAccessPrevention": "enforced",
    },
    "encryption": {"defaultKmsKeyName": KEY},
}


def meta(**changes) -> dict:
    """GOOD with top-level keys replaced (None deletes the key)."""
    out = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def by_id(results):
    return {r.check_id: r for r in results}


# -- pure ------------------------------------------------------------------------------------
def test_bucket_name():
    assert bucket_name("production") == "mirror-dissonance-production-baselines"


def test_exists():
    assert check_exists(BUCKET, GOOD, EV).status is Status.PASS
    missing = check_exists(BUCKET, None, EV)
    assert missing.status is Status.FAIL
    assert missing.message == f"bucket {BUCKET} does not exist"


@pytest.mark.parametrize(
    "versioning, status",
    [
        ({"enabled": True}, Status.PASS),
        ({"enabled": False}, Status.FAIL),
        ({}, Status.FAIL),
        (None, Status.FAIL),
    ],
)
def test_versioning(versioning, status):
    result = check_versioning(BUCKET, meta(versioning=versioning), EV)
    assert (result.check_id, result.status, result.subject) == ("GCS-002", status, BUCKET)
    if status is Status.FAIL:
        assert BUCKET in result.message and "versioning" in result.message


@pytest.mark.parametrize(
    "iam, status",
    [
        ({"uniformBucketLevelAccess": {"enabled": True}}, Status.PASS),
        ({"uniformBucketLevelAccess": {"enabled": False}}, Status.FAIL),
        # The legacy alias alone is not the setting the contract names.
        ({"bucketPolicyOnly": {"enabled": True}}, Status.FAIL),
        ({"uniformBucketLevelAccess": {"enabled": "true"}}, Status.FAIL),
        (None, Status.FAIL),
    ],
)
def test_uniform_access(iam, status):
    result = check_uniform_access(BUCKET, meta(iamConfiguration=iam), EV)
    assert (result.check_id, result.status) == ("GCS-003", status)
    if status is Status.FAIL:
        assert BUCKET in result.message and "uniform bucket-level access" in result.message


@pytest.mark.parametrize(
    "value, status",
    [("enforced", Status.PASS), ("inherited", Status.FAIL), ("unspecified", Status.FAIL)],
)
def test_public_access_prevention(value, status):
    iam = {**GOOD["iamConfiguration"], "publicAccessPrevention": value}
    result = check_public_access_prevention(BUCKET, meta(iamConfiguration=iam), EV)
    assert (result.check_id, result.status) == ("GCS-004", status)
    if status is Status.FAIL:
        assert BUCKET in result.message and f"is '{value}'" in result.message


def test_public_access_prevention_not_reported_fails():
    """A server that drops the field (as an emulator might) never yields a PASS."""
    iam = {"uniformBucketLevelAccess": {"enabled": True}}
    result = check_public_access_prevention(BUCKET, meta(iamConfiguration=iam), EV)
    assert result.status is Status.FAIL
    assert "publicAccessPrevention is None" in result.message


def test_cmek_set_to_the_expected_key_passes():
    result = check_cmek(BUCKET, GOOD, EV, KEY)
    assert (result.check_id, result.status) == ("GCS-005", Status.PASS)
    assert KEY in result.message


def test_cmek_wrong_key_fails_naming_both():
    result = check_cmek(BUCKET, GOOD, EV, OTHER_KEY)
    assert result.status is Status.FAIL
    assert BUCKET in result.message and KEY in result.message and OTHER_KEY in result.message


@pytest.mark.parametrize("encryption", [None, {}, {"defaultKmsKeyName": ""}])
def test_cmek_unset_fails_when_a_key_is_expected(encryption):
    result = check_cmek(BUCKET, meta(encryption=encryption), EV, KEY)
    assert result.status is Status.FAIL
    assert BUCKET in result.message and "no default KMS key" in result.message


@pytest.mark.parametrize("encryption", [None, {"defaultKmsKeyName": KEY}])
def test_cmek_not_expected_is_skipped_with_reason(encryption):
    result = check_cmek(BUCKET, meta(encryption=encryption), EV, None, "the emulator has no KMS")
    assert result.status is Status.SKIPPED
    assert result.message.startswith("the emulator has no KMS")


def test_check_bucket_all_pass_with_shared_evidence():
    results = check_bucket(BUCKET, GOOD, "storage.buckets.get x", KEY)
    assert [(r.check_id, r.status) for r in results] == [
        (f"GCS-00{i}", Status.PASS) for i in range(1, 6)
    ]
    observed = results[0].evidence[0].observed
    assert observed["versioning"] == {"enabled": True}
    assert observed["iamConfiguration"]["publicAccessPrevention"] == "enforced"
    assert observed["encryption"] == {"defaultKmsKeyName": KEY}


def test_check_bucket_missing_fails_once_and_skips_the_settings():
    results = by_id(check_bucket(BUCKET, None, "storage.buckets.get x", KEY))
    assert results["GCS-001"].status is Status.FAIL
    assert results["GCS-001"].evidence[0].observed == {"exists": False}
    for check_id in ("GCS-002", "GCS-003", "GCS-004", "GCS-005"):
        assert results[check_id].status is Status.SKIPPED
        assert "does not exist" in results[check_id].message


def test_services_skipped_name_their_resource_and_reason():
    results = services_skipped("staging", "needs {library}", "backend gcp")
    assert [r.check_id for r in results] == [s[0] for s in SERVICES]
    assert all(r.status is Status.SKIPPED for r in results)
    assert results[0].message == "needs google-cloud-firestore"
    assert results[1].subject == "secret redaction-nonce-staging"


# -- against the sandbox's GCS emulator --------------------------------------------------------
@pytest.fixture(scope="module")
def gcs(sandbox):
    return storage_client()


def test_provisioned_bucket_passes_cmek_skipped(gcs, prefect_api):
    stored = provision_sandbox_bucket("gcpok")
    # What the emulator stores after the PATCH (its insert drops these fields).
    assert stored["versioning"] == {"enabled": True}
    assert stored["iamConfiguration"]["uniformBucketLevelAccess"] == {"enabled": True}
    assert stored["iamConfiguration"]["publicAccessPrevention"] == "enforced"
    assert "encryption" not in stored

    results = by_id(gcs_baselines.fn(sandbox_target("gcpok")))
    for check_id in ("GCS-001", "GCS-002", "GCS-003", "GCS-004"):
        assert results[check_id].status is Status.PASS, results[check_id].message
        assert results[check_id].subject == "mirror-dissonance-gcpok-baselines"
        assert (
            results[check_id].evidence[0].source.startswith("storage.buckets.get http://127.0.0.1:")
        )
    assert results["GCS-005"].status is Status.SKIPPED
    assert "no Cloud KMS" in results["GCS-005"].message
    for check_id, *_ in SERVICES:
        assert results[check_id].status is Status.SKIPPED
        assert results[check_id].message == SANDBOX_SERVICES_REASON


def test_provisioning_is_idempotent(gcs):
    first = provision_sandbox_bucket("gcpidem")
    again = provision_sandbox_bucket("gcpidem")
    assert again["versioning"] == first["versioning"] == {"enabled": True}


def test_bucket_without_versioning_fails_naming_it(gcs, prefect_api):
    provision_sandbox_bucket("gcpnover")
    bucket = gcs.bucket("mirror-dissonance-gcpnover-baselines")
    bucket.versioning_enabled = False
    bucket.patch()
    with pytest.raises(ValidationFailed, match="mirror-dissonance-gcpnover-baselines") as failed:
        gcs_baselines.fn(sandbox_target("gcpnover"))
    results = by_id(failed.value.results)
    assert results["GCS-002"].status is Status.FAIL
    assert "versioning is not enabled" in results["GCS-002"].message
    assert [r.check_id for r in failed.value.results if r.blocking] == ["GCS-002"]


def test_missing_bucket_fails(gcs, prefect_api):
    with pytest.raises(
        ValidationFailed, match="mirror-dissonance-gcpabsent-baselines does not exist"
    ):
        gcs_baselines.fn(sandbox_target("gcpabsent"))


def test_expected_key_is_judged_on_the_same_path(gcs):
    """Given a key name, the emulator's stored encryption is judged like real GCS's."""
    provision_sandbox_bucket("gcpkey")
    assert by_id(verify_gcs(gcs, "gcpkey", "sandbox", KEY))["GCS-005"].status is Status.FAIL
    bucket = gcs.bucket("mirror-dissonance-gcpkey-baselines")
    bucket.default_kms_key_name = KEY
    bucket.patch()
    assert by_id(verify_gcs(gcs, "gcpkey", "sandbox", KEY))["GCS-005"].status is Status.PASS


def test_real_backend_reasons_name_the_missing_libraries(gcs):
    provision_sandbox_bucket("gcpreal")
    results = by_id(verify_gcs(gcs, "gcpreal", "gcp"))
    assert "kms_crypto_key_id" in results["GCS-005"].message
    assert "google-cloud-kms" in results["GCP-012"].message
    assert all(len(r.evidence) == 1 for r in results.values())  # no emulator note


def test_provision_refuses_without_the_emulator(monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    with pytest.raises(RolloutError, match="STORAGE_EMULATOR_HOST"):
        provision_sandbox_bucket("staging")


def test_artifact_published_inside_a_flow_run(gcs, prefect_api):
    from prefect import flow

    from tests.rollout_run import artifacts_of

    provision_sandbox_bucket("gcpflow")

    @flow(name="gcs-test")
    def check():
        return gcs_baselines(sandbox_target("gcpflow"))

    state = check(return_state=True)
    assert state.is_completed()
    artifact = artifacts_of(str(state.state_details.flow_run_id))["gcpflow-gcs"]
    assert "GCS-004" in artifact and "FAIL" not in artifact
