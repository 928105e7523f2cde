"""Render the checklist template from typed results (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mirror_rollout import markdown as md
from mirror_rollout.results import CheckResult, Status

_LINE = re.compile(r"^- \[ \] (?P<text>.+?)\s*<!--\s*evidence:\s*(?P<selectors>[^>]*?)\s*-->\s*$")


@dataclass
class ChecklistLine:
    text: str
    selectors: list[str]
    status: Status
    detail: str


def matches(selector: str, check_id: str) -> bool:
    """A selector ending in '-' (or naming a suite) is a prefix; otherwise an exact id."""
    return (
        check_id.startswith(selector)
        if selector.endswith("-") or not selector[-1].isdigit()
        else check_id == selector
    )


#: A group of more ids than this is written as a count ("14 GX-alarm_inventory checks").
LISTED_IDS = 8


def _natural(check_id: str) -> tuple[str, int]:
    stem, _, number = check_id.rpartition("-")
    return (stem, int(number)) if number.isdigit() else (check_id, -1)


def ids_text(ids: set[str]) -> str:
    """Check ids in full, a large group of one prefix as its count; never cut mid-id."""
    groups: dict[str, list[str]] = {}
    for check_id in sorted(ids, key=_natural):
        groups.setdefault(_natural(check_id)[0], []).append(check_id)
    parts = []
    for stem, members in groups.items():
        if len(members) > LISTED_IDS:
            parts.append(f"{len(members)} {stem} checks")
        else:
            parts.extend(members)
    return ", ".join(parts)


def _reasons(results: list[CheckResult], with_subject: bool = False) -> str:
    """Each result's own message in full (a sentence's final period dropped before the ';')."""
    return "; ".join(
        f"{r.check_id}{' ' + r.subject if with_subject and r.subject else ''}: "
        + r.message.rstrip().rstrip(".")
        for r in results
    )


def evaluate_line(selectors: list[str], results: list[CheckResult]) -> tuple[Status, str]:
    found = [r for r in results if any(matches(s, r.check_id) for s in selectors)]
    if not found:
        return Status.SKIPPED, "no evidence was gathered for this line in this run"
    failed = [r for r in found if r.status is Status.FAIL and r.blocking]
    if failed:
        return Status.FAIL, _reasons(failed, with_subject=True)
    passed = [r for r in found if r.status is Status.PASS]
    skipped = [r for r in found if r.status is Status.SKIPPED]
    if skipped and not passed:
        return Status.SKIPPED, _reasons(skipped)
    detail = f"{len(passed)} check(s) passed ({ids_text({r.check_id for r in passed})})"
    if skipped:
        return Status.SKIPPED, f"{detail}; skipped: {_reasons(skipped)}"
    warnings = [r for r in found if r.status is Status.FAIL]
    if warnings:
        detail += f"; warnings: {_reasons(warnings)}"
    return Status.PASS, detail


def render(
    template: str, results: list[CheckResult], header: dict[str, str], approvals_md: str = ""
) -> tuple[str, list[ChecklistLine]]:
    """The filled checklist and its lines; the verdict goes on top."""
    lines: list[ChecklistLine] = []
    body: list[str] = []
    for raw in template.splitlines():
        match = _LINE.match(raw)
        if not match:
            body.append(raw)
            continue
        selectors = [s.strip() for s in match["selectors"].split(",") if s.strip()]
        status, detail = evaluate_line(selectors, results)
        lines.append(ChecklistLine(match["text"], selectors, status, detail))
        box = "x" if status is Status.PASS else " "
        # No **bold** here: the Prefect UI shows it literally inside task-list items.
        # Details quote API and reviewer text: escaped, they cannot add lines or markup.
        body.append(f"- [{box}] {match['text']} — {status.value}: {md.inline(detail)}")
    verdict = verdict_of(lines)
    top = (
        [f"**Verdict: {verdict}**", ""]
        + [f"- {k}: {md.inline(v)}" for k, v in header.items()]
        + [""]
    )
    text = "\n".join(body)
    # Keep the title, replace the template's introduction by the verdict and run facts.
    title = text.split("\n", 1)[0] if text.startswith("#") else "# Production deployment checklist"
    sections = text[text.find("\n## ") + 1 :] if "\n## " in text else text
    out = title + "\n\n" + "\n".join(top) + "\n" + sections
    if approvals_md:
        out += "\n\n## Approval record\n\n" + approvals_md.split("\n", 1)[-1]
    return out.rstrip() + "\n", lines


def verdict_of(lines: list[ChecklistLine]) -> str:
    if any(line.status is Status.FAIL for line in lines):
        return "FAIL — do not promote to production"
    if any(line.status is Status.SKIPPED for line in lines):
        return "INCOMPLETE — every executed check passed; the SKIPPED lines need evidence from a real environment"
    return "PASS — ready for production sign-off"
