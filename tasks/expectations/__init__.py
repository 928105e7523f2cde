"""Data validation with Great Expectations: plan changes, alarm inventory, PITR status, FP events.

Importing this package does not import Great Expectations (or pandas); the
Prefect task lives in ``tasks.expectations.task``.
"""

from tasks.expectations.frames import (
    build_alarm_inventory_frame,
    build_fp_events_frame,
    build_pitr_status_frame,
    build_plan_changes_frame,
    build_restore_drill_frame,
)
from tasks.expectations.runner import SuiteOutcome, run_suite, to_check_results
from tasks.expectations.suites import SUITES, get_suite

__all__ = [
    "SUITES",
    "SuiteOutcome",
    "build_alarm_inventory_frame",
    "build_fp_events_frame",
    "build_pitr_status_frame",
    "build_plan_changes_frame",
    "build_restore_drill_frame",
    "get_suite",
    "run_suite",
    "to_check_results",
]
