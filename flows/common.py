"""What every flow does first: validate its parameters and make its output directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.runtime import flow_run

from mirror_rollout.settings import RolloutSettings, parse_settings


def start_run(**values: Any) -> tuple[RolloutSettings, Path]:
    """Settings from the flow's parameters (one clear error if invalid) and this run's directory."""
    settings = parse_settings(**values)
    run_dir = settings.output_dir(flow_run.get_name() or "local")
    run_dir.mkdir(parents=True, exist_ok=True)
    return settings, run_dir
