"""The checklist ticks a line only from evidence; SKIPPED lines say why; the verdict is on top."""

from __future__ import annotations

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.results import CheckResult, Severity, Status
from tasks.backup.checks import selection_results
from tasks.checklist.render import evaluate_line, render

TEMPLATE = (PROJECT_ROOT / "docs/ops/PRODUCTION_DEPLOYMENT_CHECKLIST.md").read_text()


def result(
    check_id: str, status: Status, message: str = "ok", severity: Severity = Severity.error
) -> CheckResult:
    return CheckResult(
        check_id=check_id,
        title=check_id,
        status=status,
        subject="s",
        message=message,
        severity=severity,
    )


def test_line_without_evidence_is_not_ticked():
    assert evaluate_line(["PITR-"], [])[0] is Status.SKIPPED


def test_prefix_and_exact_selectors():
    results = [
        result("MR-004", Status.PASS),
        result("MR-005", Status.FAIL, "window 7 in production"),
    ]
    status, detail = evaluate_line(["MR-004", "MR-005"], results)
    assert status is Status.FAIL and "window 7" in detail
    assert evaluate_line(["MR-004"], results)[0] is Status.PASS
    assert evaluate_line(["MR-"], results)[0] is Status.FAIL


def test_skipped_evidence_keeps_the_line_open_and_says_why():
    results = [
        result("SNS-001", Status.PASS),
        result("SNS-002", Status.SKIPPED, "moto sends no e-mail"),
    ]
    status, detail = evaluate_line(["SNS-"], results)
    assert status is Status.SKIPPED and "moto sends no e-mail" in detail


def test_warnings_do_not_block_a_tick():
    results = [
        result("SNS-001", Status.PASS),
        result("SNS-003", Status.FAIL, "subscription pending", Severity.warning),
    ]
    status, detail = evaluate_line(["SNS-"], results)
    assert status is Status.PASS and "subscription pending" in detail


def test_render_puts_the_verdict_on_top_and_ticks_only_passes():
    results = [
        result("MR-001", Status.PASS),
        result("PITR-001", Status.PASS),
        result("SNS-001", Status.FAIL, "no message"),
    ]
    markdown, lines = render(
        TEMPLATE, results, {"environment": "staging"}, "# Approval record — staging\n| # |\n"
    )
    head = markdown.split("\n## ", 1)[0]
    assert "Verdict: FAIL" in head and "environment: staging" in head
    assert "This is the template" not in markdown
    ticked = [line.text for line in lines if line.status is Status.PASS]
    assert any("Point-in-time recovery" in t for t in ticked)
    assert "- [ ] SNS test alert received — **FAIL**: SNS-001 s: no message" in markdown
    assert "## Approval record" in markdown
    # every template line is rendered, with a status
    assert len(lines) == sum(1 for line in TEMPLATE.splitlines() if line.startswith("- [ ]"))


def test_backup_selection_check():
    arns = [
        f"arn:aws:dynamodb:us-east-1:1:table/mirror-dissonance-staging-{t}"
        for t in ("fp-events", "consent")
    ]
    failed = selection_results("staging", "plan", arns)[0]
    assert failed.status is Status.FAIL and "block-counter" in failed.message
    skipped = selection_results("staging", "plan", None, "moto has no backup selections")[0]
    assert skipped.status is Status.SKIPPED and skipped.message == "moto has no backup selections"
