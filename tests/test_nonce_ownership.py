"""Nonce versions are runtime data of the nonce flows, never Terraform's (DESIGN, Nonce).

On staging applied by the real Terraform (hashicorp/aws against moto): the apply
creates no nonce version, the bootstrap creates v1 with the project CMK, and after
two rotations with their grace cleanups (v1 -> v2 -> v3) a refreshing re-plan is
a no-op and the drift-detection flow finds nothing — a Terraform-owned v1 would be
re-created by every plan once the first grace cleanup deleted it.

The tests share one applied environment (module scope; nothing here resets moto).
"""

from __future__ import annotations

import logging
import time

import pytest

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.contract import NONCE_VALUE
from mirror_rollout.results import Status
from tasks.nonce import store
from tests.applied import apply_environment, state_addresses, state_document
from tests.conftest import reset_moto
from tests.support.targets import sandbox_target
from tests.test_nonce import (
    ENV,
    PREFIX,
    REGION,
    NonceValues,
    assert_no_leak,
    bootstrap_flow,
    by_check,
    cleanup_runs,
    run_as_worker,
    run_flow_state,
)


@pytest.fixture(scope="module")
def applied(prefect_api, tmp_path_factory):
    """Staging planned and applied by the real Terraform on the sandbox, once."""
    reset_moto()
    started = time.monotonic()
    result = apply_environment(ENV, tmp_path_factory.mktemp("nonce-apply"))
    print(f"\napply_environment({ENV}): {time.monotonic() - started:.1f} s")
    return result


@pytest.fixture
def debug_logs(caplog):
    """Capture everything, botocore wire dumps included: a leak would land here."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="botocore")
    return caplog


def live_versions() -> list[int]:
    return store.read_state(store.AwsClients(REGION), ENV).live


def test_bootstrap_after_a_real_terraform_apply_creates_v1_with_the_project_cmk(
    applied, debug_logs
):
    # Terraform declares no nonce version: none in state, none in SSM after the apply.
    assert not [a for a in state_addresses(ENV) if a.startswith("aws_ssm_parameter.")]
    assert "redaction_nonce_v1" not in str(state_document(ENV)["resources"])
    assert applied.outputs["nonce_parameter_name"] == PREFIX + "1"  # the name, as a string
    if live_versions():
        pytest.skip("the module's environment already has a nonce (test order changed)")

    values = NonceValues()
    state, run_id = run_flow_state(bootstrap_flow)
    assert state.is_completed(), state.message
    results = by_check(state.result())
    assert [r.status for r in results.values()] == [Status.PASS] * 3, results
    assert results["NONCE-003"].evidence[0].observed["outcome"] == "created v1"
    (described,) = store.describe_versions(store.AwsClients(REGION), ENV)
    assert described["Name"] == PREFIX + "1" and described["Type"] == "SecureString"
    key = store.key_arn(store.AwsClients(REGION), described["KeyId"])
    assert key == applied.outputs["kms_key_arn"]  # the CMK Terraform created, via its alias
    assert NONCE_VALUE.match(values.values()[1])
    assert_no_leak(values, debug_logs, state.result(), run_id)


def test_rotations_and_grace_cleanups_leave_terraform_and_drift_detection_clean(
    applied, debug_logs, tmp_path
):
    """Acceptance: bootstrap v1, rotate v1 -> v2 -> v3 with both grace cleanups, then a
    refreshing re-plan exits 0 with no changes and drift-detection reports no finding."""
    from prefect import flow

    from flows.nonce_rotation import register_cleanup_deployment
    from tasks.drift.task import record_baseline

    @flow(name="test-record-drift-baseline")
    def baseline_flow() -> dict:
        return record_baseline(sandbox_target(ENV, REGION))

    register_cleanup_deployment()
    values = NonceValues()
    outcomes = []

    # The rollout's nonce step (creates v1 unless the previous test did), then its baseline.
    boot, _ = run_flow_state(bootstrap_flow)
    assert boot.is_completed(), boot.message
    outcomes.append(boot.result())
    assert live_versions() == [1]
    assert baseline_flow(return_state=True).is_completed()
    seen = {1: values.values()[1]}

    rotate_with_grace_cleanups(values, seen, outcomes)
    assert len(set(seen.values())) == 3 and all(NONCE_VALUE.match(v) for v in seen.values())

    # The bootstrap again (a rollout re-run): v1 is gone, v3 is the nonce, nothing changes.
    again, _ = run_flow_state(bootstrap_flow)
    assert again.is_completed(), again.message
    outcomes.append(again.result())
    assert by_check(again.result())["NONCE-003"].subject == PREFIX + "3"
    assert values.values() == {3: seen[3]}

    replanned, replan_seconds = assert_replan_is_noop(tmp_path)
    summary, drift_seconds = assert_no_drift(tmp_path)
    outcomes.append(summary)

    # Only v3 remains, and no value reached a Prefect log, artifact, result or parameter.
    assert live_versions() == [3]
    assert values.seen >= set(seen.values())
    assert_no_leak(values, debug_logs, *outcomes)
    print(
        f"\nre-plan: exit {replanned.exit_code}, {replanned.summary.headline()} "
        f"({replan_seconds:.1f} s); drift-detection: {summary['verdict']}, "
        f"replan {summary['replan']}, {len(summary['drifts'])} drift(s) ({drift_seconds:.1f} s)"
    )


def rotate_with_grace_cleanups(values: NonceValues, seen: dict[int, str], outcomes: list) -> None:
    """Two rotations through the real flows, grace 0: each scheduled cleanup run is due at
    once and is executed exactly as a worker would execute it."""
    from flows.nonce_rotation import nonce_rotation

    for new in (2, 3):
        rotated, rotation_id = run_flow_state(nonce_rotation, environment=ENV, grace_seconds=0)
        assert rotated.is_completed(), rotated.message
        result = rotated.result()
        outcomes.append(result)
        assert (result["from_version"], result["new_version"]) == (new - 1, new)
        both = values.values()
        assert sorted(both) == [new - 1, new] and both[new - 1] == seen[new - 1]
        seen[new] = both[new]
        (scheduled,) = cleanup_runs(rotation_id)
        cleaned = run_as_worker(scheduled)
        assert cleaned.is_completed(), cleaned.message
        outcomes.append(cleaned.result())
        assert cleaned.result()["deleted"] is True
        assert live_versions() == [new]


def assert_replan_is_noop(tmp_path):
    """A refreshing re-plan: Terraform knows no nonce version, so nothing to re-create."""
    from mirror_rollout.provisioners import terraform_for

    started = time.monotonic()
    terraform = terraform_for(ENV, "sandbox", PROJECT_ROOT, tmp_path / "replan" / "terraform")
    replanned = terraform.plan(tmp_path / "replan", replan=True)
    replan_seconds = time.monotonic() - started
    # Exit code 0: Terraform itself found nothing to change (a change would show the document).
    changed = (
        [c.address for c in replanned.document.managed_changes() if c.action != "no-op"]
        if replanned.document
        else []
    )
    assert replanned.exit_code == 0, changed
    assert not replanned.summary.has_changes, changed
    return replanned, replan_seconds


def assert_no_drift(tmp_path):
    """The drift-detection flow: re-plan no-op and the live settings match the baseline."""
    from flows.drift import drift_detection

    started = time.monotonic()
    drift = drift_detection(environment=ENV, return_state=True, out_dir=str(tmp_path / "drift"))
    drift_seconds = time.monotonic() - started
    assert drift.is_completed(), drift.message
    summary = drift.result()
    assert (summary["verdict"], summary["replan"], summary["drifts"]) == ("PASS", "PASS", [])
    assert "nonce" not in str(summary["drifts"]) and "ssm" not in str(summary["drifts"])
    return summary, drift_seconds
