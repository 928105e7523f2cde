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
    assert "- [ ] SNS test alert received — FAIL: SNS-001 s: no message" in markdown
    assert "**PASS**" not in markdown and "**FAIL**" not in markdown
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


def test_evidence_ids_are_never_cut_and_long_groups_are_counted():
    many = [result(f"GX-alarm_inventory-{n}", Status.PASS) for n in range(1, 45)]
    few = [result(f"ALARM-00{n}", Status.PASS) for n in range(1, 5)]
    status, detail = evaluate_line(["ALARM-", "GX-alarm_inventory"], many + few)
    assert status is Status.PASS
    assert detail == (
        "48 check(s) passed (ALARM-001, ALARM-002, ALARM-003, ALARM-004, "
        "44 GX-alarm_inventory checks)"
    )
    listed = [result(f"MR-0{n:02d}", Status.PASS) for n in (1, 2, 10)]
    assert evaluate_line(["MR-"], listed)[1] == "3 check(s) passed (MR-001, MR-002, MR-010)"


def test_each_skipped_line_gives_its_own_complete_reason():
    from mirror_rollout.evidence import capabilities

    caps = capabilities("sandbox")
    reasons = [caps.why(c) for c in ("alarm_history", "alarm_notifications", "backup_selections")]
    assert len(set(reasons)) == 3 and all(r.startswith("moto") for r in reasons)
    long_reason = "moto answers with HTTP 500 and " + "x" * 2000 + " so it fails with an error."
    results = [
        result("ALARM-001", Status.PASS),
        result("ALARM-005", Status.SKIPPED, reasons[0]),
        result("BACKUP-001", Status.SKIPPED, reasons[2]),
        result("SANDBOX-001", Status.SKIPPED, long_reason),
    ]
    alarm = evaluate_line(["ALARM-"], results)[1]
    assert alarm.endswith(f"skipped: ALARM-005: {reasons[0]}") and "Backup" not in alarm
    assert evaluate_line(["BACKUP-"], results)[1] == f"BACKUP-001: {reasons[2]}"
    assert evaluate_line(["SANDBOX-"], results)[1] == "SANDBOX-001: " + long_reason.rstrip(".")
    failing = [result(f"MR-{n:03d}", Status.FAIL, long_reason) for n in (1, 2)]
    assert evaluate_line(["MR-"], failing)[1].count("so it fails with an error") == 2
