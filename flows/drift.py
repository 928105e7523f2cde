"""Flow `drift-detection`: a no-op re-plan, and live settings that match the baseline."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger

from flows.common import start_run
from mirror_rollout.evidence import ValidationFailed
from mirror_rollout.results import Status
from mirror_rollout.retries import retry_when
from tasks.apply.task import ReplanNotEmpty, replan_is_noop
from tasks.drift.task import drift_compare, publish_drift, replan_result


@flow(name="drift-detection", log_prints=True)
def drift_detection(
    environment: str = "staging",
    backend: str = "sandbox",
    root: str | None = None,
    out_dir: str | None = None,
) -> dict:
    """Fail when the environment drifted from the code (re-plan) or the last rollout (baseline)."""
    started = time.monotonic()
    settings, run_dir = start_run(
        environment=environment,
        backend=backend,
        root=root,
        out_dir=out_dir,
    )
    env = settings.environment
    logger = get_run_logger()

    # (a) configuration and state agree; a non-empty plan is a finding, not a crash, and
    # a second plan would find the same.
    retry_unless_a_finding = retry_when(lambda error: not isinstance(error, ReplanNotEmpty))
    replan = replan_is_noop.with_options(retry_condition_fn=retry_unless_a_finding)(
        settings, run_dir, first_step=True, return_state=True
    )
    if replan.is_completed():
        results = [replan_result(env, None, replan.result().summary.headline())]
    else:
        results = [replan_result(env, replan.result(raise_on_failure=False))]

    # (b) the live settings against the baseline the last rollout recorded.
    report = drift_compare(settings.target)
    results += report.results
    verdict = publish_drift(env, results, report.drifts)
    seconds = round(time.monotonic() - started, 2)
    findings = [r for r in results if r.status is Status.FAIL]
    for r in findings:
        logger.warning("%s %s: %s", r.check_id, r.subject, r.message)
    summary = {
        "environment": env,
        "region": settings.target.region,
        "verdict": verdict.value,
        "drifts": [d.model_dump(mode="json") for d in report.drifts],
        "replan": results[0].status.value,
        "baseline_run_id": report.baseline_run_id,
        "api_calls": report.api_calls,
        "seconds": seconds,
    }
    logger.info("Drift detection of %s: %s in %.2f s", env, verdict.value, seconds)
    if findings:
        raise ValidationFailed(
            f"{env} drifted: "
            + "; ".join(f"{r.subject} {r.message}" for r in findings[:10])
            + (f" (+{len(findings) - 10} more)" if len(findings) > 10 else ""),
            f"see the {env}-drift artifact; restore the setting (or re-run the rollout, which "
            "re-applies the code and records a new baseline)",
            results=results,
        )
    return summary
