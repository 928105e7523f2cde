"""Flow `infra-rollout`: guardrails → plan → review → approval → apply → validations → checklist."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import start_run
from mirror_rollout import contract
from mirror_rollout.evidence import ValidationFailed, failure_results, overall
from mirror_rollout.results import CheckResult, Status
from mirror_rollout.rollout_slot import environment_slot
from mirror_rollout.settings import RolloutSettings
from tasks.alarms.task import alarm_probe
from tasks.app_integration.checks import plan_outputs
from tasks.app_integration.task import app_integration
from tasks.apply.task import apply, replan_is_noop
from tasks.approval.form import approval_markdown, approvals_needed
from tasks.approval.pause import request_approvals
from tasks.backup.task import backup_coverage
from tasks.checklist.stages import (
    apply_results,
    approval_results,
    baseline_result,
    gap_results,
    gcp_plan_skipped,
    plan_results,
    replan_results,
)
from tasks.checklist.task import production_checklist
from tasks.dashboard.task import dashboard
from tasks.data_plane.task import data_plane_contract
from tasks.drift.task import capture_snapshot, record_baseline
from tasks.e2e.task import e2e_cycle
from tasks.expectations.records import alarm_records, pitr_records
from tasks.expectations.runner import warm_up as warm_up_expectations
from tasks.expectations.task import validate
from tasks.gcp.provision import provision_sandbox_bucket
from tasks.gcp.task import gcs_baselines
from tasks.guardrails.task import guardrails, plan_guardrails
from tasks.nonce.task import nonce_bootstrap
from tasks.orphans.task import orphan_scan
from tasks.pitr.task import pitr
from tasks.plan.task import plan, publish_review
from tasks.restore_drill.checks import drill_records
from tasks.restore_drill.task import run_restore_drill

#: Post-apply validations: check-id prefix for a task that stopped without results.
VALIDATIONS = {
    "PITR": pitr,
    "NONCE": nonce_bootstrap,
    "ALARM": alarm_probe,
    "DASH": dashboard,
    "BACKUP": backup_coverage,
}


def _collect(futures: dict[str, object]) -> dict[str, list[CheckResult]]:
    """Wait for every validation; a failed one contributes its results (or why it stopped)."""
    collected = {}
    for prefix, future in futures.items():
        future.wait()  # type: ignore[attr-defined]
        state = future.state  # type: ignore[attr-defined]
        if state.is_completed():
            collected[prefix] = state.result()
        else:
            error = state.result(raise_on_failure=False)
            collected[prefix] = failure_results(prefix, f"{prefix} validation", error)
    return collected


#: After apply, the re-plan, eight validations and the drift snapshot wait mostly on
#: HTTP and on Terraform: all of them at once (the default pool, cores + 4, queues some).
POST_APPLY_WORKERS = 16


@flow(
    name="infra-rollout",
    log_prints=True,
    task_runner=ThreadPoolTaskRunner(max_workers=POST_APPLY_WORKERS),
)
def infra_rollout(
    environment: str = "staging",
    backend: str = "sandbox",
    approval_timeout_seconds: int = 3600,
    out_dir: str | None = None,
    root: str | None = None,
    e2e_driver: str = "local",
    github_repo: str | None = None,
    gcp_project: str | None = None,
    gcp_kms_key: str | None = None,
    busy_wait_seconds: int = 3600,
    restore_drill: bool | None = None,
    oracle_repo: str | None = None,
    oracle_test_command: str | None = None,
) -> dict:
    """Take infra/terraform to a verified environment; nothing is applied without approval.

    One rollout per environment at a time: another one waits up to busy_wait_seconds
    for the environment's slot (0: fails at once, naming the rollout that holds it).
    restore_drill: run the PITR restore drill after the E2E cycle (None: on for every
    environment but production, where a restore on AWS takes minutes to hours and costs money).
    oracle_repo / oracle_test_command (else the Prefect variables of those names): the
    Oracle's checkout and the command that runs its integration suite against the environment.
    """
    settings, run_dir = start_run(
        environment=environment,
        backend=backend,
        approval_timeout_seconds=approval_timeout_seconds,
        busy_wait_seconds=busy_wait_seconds,
        e2e_driver=e2e_driver,
        out_dir=out_dir,
        root=root,
    )
    with environment_slot(settings.environment, settings.busy_wait_seconds, flow_run.get_id()):
        oracle = (oracle_repo, oracle_test_command)
        return _rollout(
            settings,
            run_dir,
            e2e_driver,
            github_repo,
            gcp_project,
            gcp_kms_key,
            restore_drill,
            oracle,
        )


def _rollout(
    settings: RolloutSettings,
    run_dir: Path,
    e2e_driver: str,
    github_repo: str | None,
    gcp_project: str | None,
    gcp_kms_key: str | None,
    restore_drill: bool | None = None,
    oracle: tuple[str | None, str | None] = (None, None),
) -> dict:
    env = settings.environment
    logger = get_run_logger()
    warm_up_expectations()

    checks = guardrails(env, str(settings.root))
    planned = plan(settings, run_dir)
    # Evaluated values (names, thresholds, policies) are checked on Terraform's own plan.
    not_kept = {g.address: g.attributes for g in planned.gaps if g.kind == "ignore"}
    plan_checks = plan_guardrails(planned.document.model_dump(mode="json"), env, not_kept)
    checks = [*checks, *plan_checks]
    publish_review(planned, checks)
    logger.info("Plan %s: %s", planned.sha256, planned.summary.headline())
    summary = {"environment": env, "plan_sha256": planned.sha256, "output_dir": str(run_dir)}
    results: list[CheckResult] = [*checks, *plan_results(planned), *gap_results(planned)]
    region = planned.document.variables.get("region", {}).get("value", "us-east-1")

    approvals = []
    if planned.summary.has_changes:
        approvals = request_approvals(
            planned, settings.backend, settings.approval_timeout_seconds, settings.root
        )
        # An independent check of the approved plan before anything changes.
        changes = [c.model_dump(mode="json") for c in planned.document.resource_changes]
        # The contract's addresses, less the ones a declared sandbox gap leaves out.
        expected = [
            a for a in contract.EXPECTED_ADDRESSES if a not in planned.summary.not_provisionable
        ]
        results += validate(
            "plan_changes",
            changes,
            env,
            str(run_dir),
            allow_destroy=approvals[-1].allow_destroy,
            expected=expected,
        )
        applying = apply(settings, planned.plan_file, approvals[-1].plan_sha256, return_state=True)
        results += approval_results(approvals, approvals_needed(env))
        if not applying.is_completed():
            # What a stopped apply left behind is evidence too: the orphan scan and the
            # checklist run before the run fails with the apply's own error.
            error = applying.result(raise_on_failure=False)
            results += failure_results("APPLY", "apply", error)
            scanned = orphan_scan(settings, run_dir, region, return_state=True)
            results += (
                scanned.result()
                if scanned.is_completed()
                else failure_results(
                    "ORPHAN", "orphan scan", scanned.result(raise_on_failure=False)
                )
            )
            header = _header(settings, planned)
            production_checklist(
                env, results, header, approval_markdown(env, approvals), str(run_dir)
            )
            raise error
        applied = applying.result()
        results += apply_results(applied, approvals[-1].plan_sha256)
        summary |= {"applied": len(applied.applied), "not_provisioned": applied.not_provisioned}
    else:
        logger.info("The plan changes nothing; no approval or apply needed")
        summary |= {"applied": 0, "not_provisioned": {}}

    # The re-plan reads only what Terraform manages, which no validation changes: it runs
    # beside them (its verdict still gates the checklist) rather than after them.
    replanning = replan_is_noop.submit(settings, run_dir)
    # Days 20-22: the L0 guarantees on the live environment, concurrently.
    futures = {
        prefix: task.submit(env, region)
        if prefix == "NONCE"
        else task.submit(env, region, settings.backend)
        for prefix, task in VALIDATIONS.items()
    }
    # A lost create response leaves a resource in AWS that state does not track.
    futures["ORPHAN"] = orphan_scan.submit(settings, run_dir, region)
    if settings.backend == "sandbox":
        # The sandbox's GCS emulator stands in for the GCP side: Terraform cannot plan infra/gcp
        # here (no google provider in the mirror), so the bucket is a fixture for the GCS checks.
        provision_sandbox_bucket(env)
        results.append(gcp_plan_skipped(settings.root))
        futures["GCS"] = gcs_baselines.submit(env, settings.backend)
    elif gcp_project:
        # Real GCS through application default credentials (infra/gcp applied separately).
        futures["GCS"] = gcs_baselines.submit(
            env, settings.backend, project=gcp_project, kms_key_name=gcp_kms_key
        )
    validations = _collect(futures)
    # What drift detection will compare with, read now (the validations changed what they
    # change) beside the E2E and the re-plan; stored below only if the checklist passes.
    snapshotting = capture_snapshot.submit(env, region)

    # Days 23-24: the Oracle's data-plane cycle against the verified environment.
    e2e = e2e_cycle(
        env, region, settings.backend, driver=e2e_driver, github_repo=github_repo, return_state=True
    )
    fp_events: list[dict] = []
    if e2e.is_completed():
        outcome = e2e.result()
        validations["E2E"], fp_events = outcome.results, outcome.fp_events
    else:
        validations["E2E"] = failure_results(
            "E2E", "end-to-end cycle", e2e.result(raise_on_failure=False)
        )
    # Recoverability proven, not assumed: restore each table to a time T after the E2E writes.
    validations["DRILL"] = run_restore_drill(env, region, settings.backend, restore_drill)
    suites = {
        "pitr_status": pitr_records(validations["PITR"]),
        "alarm_inventory": alarm_records(validations["ALARM"]),
    }
    if fp_events:
        suites["fp_events"] = fp_events
    if drilled := drill_records(validations["DRILL"]):
        suites["restore_drill"] = drilled
    suite_futures = {
        f"GX-{name}": validate.submit(name, records, env, str(run_dir))
        for name, records in suites.items()
    }
    # After the E2E: the Oracle's access patterns (infra/data-plane.yaml) against the live tables.
    suite_futures["DATAPLANE"] = data_plane_contract.submit(
        env, region, settings.backend, str(settings.root)
    )
    # The Oracle's own integration suite, told the names Terraform output (SKIPPED unconfigured).
    outputs = applied.outputs if planned.summary.has_changes else plan_outputs(planned.document)
    suite_futures["APPINT"] = app_integration.submit(env, region, outputs, str(run_dir), *oracle)
    validations |= _collect(suite_futures)
    for found in validations.values():
        results += found

    replanning.wait()
    replan = replanning.state
    results += (
        replan_results(replan.result())
        if replan.is_completed()
        else failure_results("REPLAN", "re-plan", replan.result(raise_on_failure=False))
    )

    header = _header(settings, planned)
    verdict = overall(results)
    snapshotting.wait()
    if verdict is not Status.FAIL:
        # Drift detection compares the live environment with this snapshot from now on
        # (read again here if reading it beside the re-plan failed).
        snapshot = snapshotting.state.result() if snapshotting.state.is_completed() else None
        baseline = record_baseline(env, region, snapshot, return_state=True)
        if baseline.is_completed():
            results.append(baseline_result(baseline.result()))
        else:
            error = baseline.result(raise_on_failure=False)
            results += failure_results("DRIFT", "drift baseline", error)
    checklist = production_checklist(
        env, results, header, approval_markdown(env, approvals) if approvals else "", str(run_dir)
    )
    verdict = overall(results)
    summary |= {
        "approvals": [a.model_dump(mode="json") for a in approvals],
        "checklist": checklist,
        "verdict": verdict.value,
        "skipped": sorted({r.check_id for r in results if r.status is Status.SKIPPED}),
    }
    if verdict is Status.FAIL:
        failed = sorted({r.check_id for r in results if r.blocking})
        raise ValidationFailed(
            f"rollout of {env} applied, but validations failed: {', '.join(failed)}",
            f"see the {env}-production-checklist artifact ({checklist})",
        )
    return summary


def _header(settings: RolloutSettings, planned) -> dict[str, str]:
    """The facts on top of the checklist."""
    return {
        "environment": settings.environment,
        "backend": settings.backend,
        "plan sha256": planned.sha256,
        "flow run": f"{flow_run.get_name()} ({flow_run.get_id()})",
    }
