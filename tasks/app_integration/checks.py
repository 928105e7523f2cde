"""Pure logic of stage ``app-integration-{env}``: the suite's environment, its JUnit reports,
and the verdict. The glue (``task.py``) runs the command and hands the results over."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mirror_rollout.results import CheckResult, Evidence, Status

CHECK_ID = "APPINT-001"
TITLE = "The Oracle's integration suite passes against the environment"
#: Terraform output -> the environment variable the Oracle's adapters read (DESIGN.md).
OUTPUT_VARIABLES = {
    "fp_events_table_name": "FP_TABLE_NAME",
    "consent_table_name": "CONSENT_TABLE_NAME",
    "block_counter_table_name": "BLOCK_COUNTER_TABLE_NAME",
    "nonce_parameter_name": "NONCE_PARAMETER_NAME",
    "baselines_bucket_name": "BASELINE_BUCKET",
}
#: Failures named in the evidence and the message; the rest are counted.
FIRST_FAILURES = 3
NOT_CONFIGURED = (
    "no Oracle checkout configured: set the flow parameters oracle_repo and "
    "oracle_test_command (or the Prefect variables of the same names) to run its "
    "integration suite against the environment"
)


def suite_environment(
    outputs: Mapping[str, Any], region: str, endpoint: str | None
) -> dict[str, str]:
    """What the suite is told about the environment: names from Terraform's outputs."""
    names = {var: str(outputs[out]) for out, var in OUTPUT_VARIABLES.items() if outputs.get(out)}
    names |= {"CLOUD_PROVIDER": "aws", "AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    if endpoint:
        names["AWS_ENDPOINT_URL"] = endpoint
    return names


def plan_outputs(document: Any) -> dict[str, Any]:
    """Output values a plan shows (``planned_values.outputs``; those known before apply)."""
    planned = getattr(document, "planned_values", None) or {}
    return {k: v["value"] for k, v in planned.get("outputs", {}).items() if "value" in v}


def missing_outputs(outputs: Mapping[str, Any]) -> list[str]:
    return [out for out in OUTPUT_VARIABLES if not outputs.get(out)]


_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def expand(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """``$NAME`` / ``${NAME}`` in the command's words from the suite's environment (no shell)."""
    return [_VARIABLE.sub(lambda m: env.get(m[1] or m[2], m[0]), word) for word in argv]


@dataclass
class JunitSummary:
    tests: int = 0
    failures: int = 0
    skipped: int = 0
    files: list[str] = field(default_factory=list)
    first_failures: list[str] = field(default_factory=list)


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def read_junit(reports: Mapping[str, str]) -> JunitSummary:
    """Counts over every ``testcase`` of the JUnit documents (name -> XML text).

    A document that is not JUnit XML is named among the failures, never skipped silently.
    """
    summary = JunitSummary(files=sorted(reports))
    for name, text in sorted(reports.items()):
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            summary.failures += 1
            summary.first_failures.append(f"{name} is not valid JUnit XML ({exc})")
            continue
        for case in root.iter("testcase"):
            summary.tests += 1
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            if problem is not None:
                summary.failures += 1
                said = first_line(problem.get("message")) or first_line(problem.text)
                summary.first_failures.append(f"{case.get('name', '?')}: {said}".rstrip(": "))
            elif case.find("skipped") is not None:
                summary.skipped += 1
    return summary


def judge(
    command: str,
    returncode: int | None,
    seconds: float,
    junit: JunitSummary,
    output_tail: list[str],
    environment: Mapping[str, str],
    timeout_seconds: float | None = None,
) -> CheckResult:
    """PASS when the command exits 0 and no JUnit test case failed."""
    passed = junit.tests - junit.failures - junit.skipped
    counts = (
        f"{passed} passed, {junit.failures} failed, {junit.skipped} skipped "
        f"({len(junit.files)} JUnit report(s))"
        if junit.files
        else "no JUnit report written"
    )
    named = junit.first_failures[:FIRST_FAILURES]
    more = len(junit.first_failures) - len(named)
    failures = "; ".join(named) + (f"; and {more} more" if more > 0 else "")
    if returncode is None:
        status, message = Status.FAIL, f"`{command}` timed out after {timeout_seconds:.0f} s"
    elif returncode != 0 or junit.failures:
        status = Status.FAIL
        message = f"`{command}` exited {returncode}: {counts}"
        if failures:
            message += f"; first failures: {failures}"
        elif not junit.files and output_tail:
            message += f"; last output: {' | '.join(output_tail)}"
    else:
        status, message = Status.PASS, f"`{command}`: {counts} in {seconds:.1f} s"
    observed = {
        "command": command,
        "exit_code": returncode,
        "seconds": round(seconds, 3),
        "tests": junit.tests,
        "failures": junit.failures,
        "skipped": junit.skipped,
        "junit": junit.files,
        "first_failures": named,
        "environment": dict(environment),
    }
    return CheckResult(
        check_id=CHECK_ID,
        title=TITLE,
        status=status,
        subject=command,
        message=message,
        evidence=[Evidence(source=f"subprocess {command}", observed=observed)],
    )


def skipped(reason: str = NOT_CONFIGURED) -> CheckResult:
    return CheckResult(check_id=CHECK_ID, title=TITLE, status=Status.SKIPPED, message=reason)


def misconfigured(problem: str, fix: str, **observed: Any) -> CheckResult:
    return CheckResult(
        check_id=CHECK_ID,
        title=TITLE,
        status=Status.FAIL,
        subject=str(observed.get("command") or observed.get("oracle_repo") or ""),
        message=f"{problem} — {fix}",
        evidence=[Evidence(source="app-integration configuration", observed=observed)],
    )
