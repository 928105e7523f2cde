"""Flow `infra-rollout`: guardrails → plan → review → approval → apply → validations → checklist."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import start_run
from mirror_rollout import contract
from mirror_rollout.evidence import ValidationFailed, failure_results, overall
from mirror_rollout.provisioners.base import ApplyResult, PlanResult
from mirror_rollout.results import CheckResult, Status
from mirror_rollout.rollout_slot import environment_slot
from mirror_rollout.settings import RolloutSettings
from mirror_rollout.target import RolloutTarget
from tasks.alarms.task import alarm_probe
from tasks.app_integration.checks import plan_outputs
from tasks.app_integration.task import app_integration
from tasks.apply.task import apply, replan_is_noop
from tasks.approval.form import ApprovalRecord, approval_markdown, approvals_needed
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
def infra_rollout(  # noqa: PLR0913, PLR0917 - a flow's parameters are its form in the Prefect UI
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
    options = LaterStages(
        e2e_driver=e2e_driver,
        github_repo=github_repo,
        gcp_project=gcp_project,
        gcp_kms_key=gcp_kms_key,
        restore_drill=restore_drill,
        oracle=(oracle_repo, oracle_test_command),
    )
    with environment_slot(settings.environment, settings.busy_wait_seconds, flow_run.get_id()):
        warm_up_expectations()
        gate = _review_and_apply(settings, run_dir)
        validations = _validate(settings, run_dir, gate, options)
        return _conclude(settings, run_dir, gate, validations)


@dataclass(frozen=True)
class LaterStages:
    """The flow's options for the stages after apply (the E2E, GCS, drill, Oracle suite)."""

    e2e_driver: str = "local"
    github_repo: str | None = None
    gcp_project: str | None = None
    gcp_kms_key: str | None = None
    restore_drill: bool | None = None
    oracle: tuple[str | None, str | None] = (None, None)


@dataclass
class Gate:
    """What the gate (guardrails, plan, review, approvals, apply) leaves for the rest."""

    planned: PlanResult
    approvals: list[ApprovalRecord]
    applied: ApplyResult | None
    results: list[CheckResult]
    summary: dict[str, Any]

    @property
    def outputs(self) -> dict[str, Any]:
        """Terraform's outputs: the apply's, or the plan's when nothing was applied."""
        return self.applied.outputs if self.applied else plan_outputs(self.planned.plan_document)


def _review_and_apply(settings: RolloutSettings, run_dir: Path) -> Gate:
    """Guardrails and plan, then (if the plan changes anything) approvals and the apply."""
    env = settings.environment
    logger = get_run_logger()
    checks = guardrails(settings.target)
    planned = plan(settings, run_dir)
    # Evaluated values (names, thresholds, policies) are checked on Terraform's own plan.
    not_kept = {g.address: g.attributes for g in planned.gaps if g.kind == "ignore"}
    plan_checks = plan_guardrails(planned.plan_document.model_dump(mode="json"), env, not_kept)
    checks = [*checks, *plan_checks]
    publish_review(planned, checks)
    logger.info("Plan %s: %s", planned.sha256, planned.summary.headline())
    gate = Gate(
        planned=planned,
        approvals=[],
        applied=None,
        results=[*checks, *plan_results(planned), *gap_results(planned)],
        summary={"environment": env, "plan_sha256": planned.sha256, "output_dir": str(run_dir)},
    )
    if not planned.summary.has_changes:
        logger.info("The plan changes nothing; no approval or apply needed")
        gate.summary |= {"applied": 0, "not_provisioned": {}}
        return gate
    gate.approvals = request_approvals(
        planned, settings.backend, settings.approval_timeout_seconds, settings.root
    )
    approved = gate.approvals[-1]
    # An independent check of the approved plan before anything changes.
    changes = [c.model_dump(mode="json") for c in planned.plan_document.resource_changes]
    # The contract's addresses, less the ones a declared sandbox gap leaves out.
    expected = [
        a for a in contract.EXPECTED_ADDRESSES if a not in planned.summary.not_provisionable
    ]
    gate.results += validate(
        "plan_changes",
        changes,
        env,
        str(run_dir),
        allow_destroy=approved.allow_destroy,
        expected=expected,
    )
    applying = apply(settings, planned.plan_file, approved.plan_sha256, return_state=True)
    gate.results += approval_results(gate.approvals, approvals_needed(env))
    if not applying.is_completed():
        _stop_after_failed_apply(settings, run_dir, gate, applying.result(raise_on_failure=False))
    gate.applied = applying.result()
    gate.results += apply_results(gate.applied, approved.plan_sha256)
    gate.summary |= {
        "applied": len(gate.applied.applied),
        "not_provisioned": gate.applied.not_provisioned,
    }
    return gate


def _stop_after_failed_apply(
    settings: RolloutSettings, run_dir: Path, gate: Gate, error: BaseException
) -> NoReturn:
    """What a stopped apply left behind is evidence too: the orphan scan and the checklist
    run before the run fails with the apply's own error."""
    gate.results += failure_results("APPLY", "apply", error)
    scanned = orphan_scan(settings, run_dir, return_state=True)
    gate.results += _results_of(scanned, "ORPHAN", "orphan scan")
    production_checklist(
        settings.environment,
        gate.results,
        _header(settings, gate.planned),
        approval_markdown(settings.environment, gate.approvals),
        str(run_dir),
    )
    raise error


def _results_of(state: Any, prefix: str, title: str) -> list[CheckResult]:
    """A finished task's results, or one FAIL saying why it stopped."""
    if state.is_completed():
        return state.result()
    return failure_results(prefix, title, state.result(raise_on_failure=False))


def _validate(
    settings: RolloutSettings, run_dir: Path, gate: Gate, options: LaterStages
) -> Validations:
    """Days 20-24 on the live environment: validations, E2E, restore drill, the suites."""
    target = settings.target
    # The re-plan reads only what Terraform manages, which no validation changes: it runs
    # beside them (its verdict still gates the checklist) rather than after them.
    replanning = replan_is_noop.submit(settings, run_dir)
    # Days 20-22: the L0 guarantees on the live environment, concurrently.
    futures = {prefix: task.submit(target) for prefix, task in VALIDATIONS.items()}
    # A lost create response leaves a resource in AWS that state does not track.
    futures["ORPHAN"] = orphan_scan.submit(settings, run_dir)
    extra: list[CheckResult] = []
    if settings.backend == "sandbox":
        # The sandbox's GCS emulator stands in for the GCP side: Terraform cannot plan infra/gcp
        # here (no google provider in the mirror), so the bucket is a fixture for the GCS checks.
        provision_sandbox_bucket(target.environment)
        extra.append(gcp_plan_skipped(settings.root))
        futures["GCS"] = gcs_baselines.submit(target)
    elif options.gcp_project:
        # Real GCS through application default credentials (infra/gcp applied separately).
        futures["GCS"] = gcs_baselines.submit(
            target, project=options.gcp_project, kms_key_name=options.gcp_kms_key
        )
    found = _collect(futures)
    # What drift detection will compare with, read now (the validations changed what they
    # change) beside the E2E and the re-plan; stored at the end only if the checklist passes.
    snapshotting = capture_snapshot.submit(target)

    # Days 23-24: the Oracle's data-plane cycle against the verified environment.
    e2e = e2e_cycle(
        target, driver=options.e2e_driver, github_repo=options.github_repo, return_state=True
    )
    fp_events: list[dict] = []
    if e2e.is_completed():
        outcome = e2e.result()
        found["E2E"], fp_events = outcome.results, outcome.fp_events
    else:
        found["E2E"] = _results_of(e2e, "E2E", "end-to-end cycle")
    # Recoverability proven, not assumed: restore each table to a time T after the E2E writes.
    found["DRILL"] = run_restore_drill(target, options.restore_drill)
    found |= _collect(_suites(settings, run_dir, gate, options, found, fp_events))
    return Validations(found, extra, replanning, snapshotting)


def _suites(
    settings: RolloutSettings,
    run_dir: Path,
    gate: Gate,
    options: LaterStages,
    found: dict[str, list[CheckResult]],
    fp_events: list[dict],
) -> dict[str, Any]:
    """The Great Expectations suites over the evidence, the data-plane contract and the
    Oracle's own integration suite, submitted together."""
    suites = {
        "pitr_status": pitr_records(found["PITR"]),
        "alarm_inventory": alarm_records(found["ALARM"]),
    }
    if fp_events:
        suites["fp_events"] = fp_events
    if drilled := drill_records(found["DRILL"]):
        suites["restore_drill"] = drilled
    futures: dict[str, Any] = {
        f"GX-{name}": validate.submit(name, records, settings.environment, str(run_dir))
        for name, records in suites.items()
    }
    # After the E2E: the Oracle's access patterns (infra/data-plane.yaml) against the live tables.
    futures["DATAPLANE"] = data_plane_contract.submit(settings.target, str(settings.root))
    # The Oracle's own integration suite, told the names Terraform output (SKIPPED unconfigured).
    futures["APPINT"] = app_integration.submit(
        settings.target, gate.outputs, str(run_dir), *options.oracle
    )
    return futures


@dataclass
class Validations:
    """The validations' results by check prefix, and the two tasks still running beside them."""

    found: dict[str, list[CheckResult]]
    extra: list[CheckResult]
    replanning: Any
    snapshotting: Any


def _conclude(
    settings: RolloutSettings, run_dir: Path, gate: Gate, validations: Validations
) -> dict:
    """The re-plan's verdict, the drift baseline (on a pass) and the production checklist."""
    env = settings.environment
    results = [*gate.results, *validations.extra]
    for found in validations.found.values():
        results += found
    validations.replanning.wait()
    replan = validations.replanning.state
    results += (
        replan_results(replan.result())
        if replan.is_completed()
        else failure_results("REPLAN", "re-plan", replan.result(raise_on_failure=False))
    )
    validations.snapshotting.wait()
    if overall(results) is not Status.FAIL:
        results += _record_baseline(settings.target, validations.snapshotting.state)
    approvals = gate.approvals
    checklist = production_checklist(
        env,
        results,
        _header(settings, gate.planned),
        approval_markdown(env, approvals) if approvals else "",
        str(run_dir),
    )
    verdict = overall(results)
    summary = gate.summary | {
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


def _record_baseline(target: RolloutTarget, snapshotted: Any) -> list[CheckResult]:
    """Drift detection compares the live environment with this snapshot from now on
    (read again here if reading it beside the re-plan failed)."""
    snapshot = snapshotted.result() if snapshotted.is_completed() else None
    baseline = record_baseline(target, snapshot, return_state=True)
    if baseline.is_completed():
        return [baseline_result(baseline.result())]
    return failure_results("DRIFT", "drift baseline", baseline.result(raise_on_failure=False))


def _header(settings: RolloutSettings, planned) -> dict[str, str]:
    """The facts on top of the checklist."""
    return {
        "environment": settings.environment,
        "backend": settings.backend,
        "plan sha256": planned.sha256,
        "flow run": f"{flow_run.get_name()} ({flow_run.get_id()})",
    }
