"""What every flow does first: validate its parameters and make its output directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.runtime import flow_run

from mirror_rollout.results import CheckResult
from mirror_rollout.settings import RolloutSettings, parse_settings
from mirror_rollout.target import RolloutTarget


def start_run(**values: Any) -> tuple[RolloutSettings, Path]:
    """Settings from the flow's parameters (one clear error if invalid) and this run's directory."""
    settings = parse_settings(**values)
    run_dir = settings.output_dir(flow_run.get_name() or "local")
    private_dirs(run_dir, levels=3)
    return settings, run_dir


def per_table_summary(target: RolloutTarget, results: list[CheckResult], verdict: str) -> dict:
    """A per-table flow's return value, each result logged on the way out."""
    from prefect import get_run_logger

    for r in results:
        get_run_logger().info("%s %s: %s", r.status.value, r.subject, r.message)
    return {
        "environment": target.environment,
        "region": target.region,
        "tables": {r.subject: r.status.value for r in results},
        "verdict": verdict,
    }


def private_dirs(path: Path, levels: int) -> None:
    """Make ``path`` and keep it and its ``levels - 1`` parents (out/, out/ENV/) mode 0700.

    Plans, state reads and checklists are for the operator only.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for directory in [path, *path.parents][:levels]:
        directory.chmod(0o700)
