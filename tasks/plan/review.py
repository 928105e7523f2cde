"""The review document: what will change, destructive changes first, and the sha256 to approve."""

from __future__ import annotations

from mirror_rollout import markdown as md
from mirror_rollout.provisioners.base import PlanResult
from mirror_rollout.results import CheckResult, Status

_ORDER: dict[str, int] = {
    "replace": 0,
    "delete": 1,
    "create": 2,
    "update": 3,
    "no-op": 4,
    "read": 5,
}


def review_markdown(plan: PlanResult, guardrails: list[CheckResult] | None = None) -> str:
    s = plan.summary
    lines = [
        f"# Plan for {plan.environment} (Terraform {plan.plan_document.terraform_version}, "
        f"workspace `{plan.workspace}`)",
        "",
        f"**{s.headline()}**",
        "",
        f"Plan file `{plan.plan_file.rsplit('/', 1)[-1]}` — sha256 `{s.sha256}`",
        f"Prior state serial: {plan.prior_serial if plan.prior_serial is not None else 'none (new workspace)'}",
        "",
    ]
    if s.destructive:
        lines += ["## ⚠ Destructive changes (approval needs allow_destroy)", ""]
        lines += [f"- **{d.action.upper()}** `{d.address}` ({d.type})" for d in s.destructive]
        lines.append("")
    if s.missing_expected:
        lines += ["## Resources the contract expects but this plan lacks", ""]
        lines += [f"- `{a}`" for a in s.missing_expected]
        lines.append("")
    if plan.override is not None:
        lines += _override_section(plan)
    # Addresses, types and argument names come from the plan: every cell is escaped.
    lines += ["## Counts", ""]
    lines += md.table(
        ["action", "count"],
        sorted(s.counts.items(), key=lambda kv: _ORDER.get(str(kv[0]), 9)),
    )
    lines += ["", "## By type", ""]
    lines += md.table(
        ["type", "changes"],
        [
            [md.code_cell(t), ", ".join(f"{n} {a}" for a, n in sorted(c.items()))]
            for t, c in s.by_type.items()
        ],
    )
    lines += ["", "## Every resource", ""]
    changes = sorted(
        plan.plan_document.managed_changes(), key=lambda c: (_ORDER.get(c.action, 9), c.address)
    )
    lines += md.table(
        ["action", "address", "changed arguments"],
        [
            [c.action, md.code_cell(c.address), md.code_cell(_changed(c)) if _changed(c) else ""]
            for c in changes
        ],
    )
    if guardrails is not None:
        failed = [r for r in guardrails if r.status is Status.FAIL]
        checks = len({r.check_id for r in guardrails})
        lines += ["", "## Guardrails", ""]
        lines.append(
            f"{checks - len({r.check_id for r in failed})} of {checks} guardrails passed"
            + ("" if not failed else ": failing " + ", ".join(sorted({r.check_id for r in failed})))
        )
    return "\n".join(lines) + "\n"


def summary_lines(plan: PlanResult) -> list[str]:
    """The terminal summary of a plan: counts per action, destructive changes first."""
    s = plan.summary
    lines = []
    if s.destructive:
        lines.append(f"DESTRUCTIVE ({len(s.destructive)}):")
        lines += [f"  {d.action:<8} {d.address}" for d in s.destructive]
    lines.append(s.headline())
    counts = sorted(s.counts.items(), key=lambda kv: _ORDER.get(kv[0], 9))
    lines += [f"  {action:<8} {n}" for action, n in counts]
    if s.missing_expected:
        lines.append("missing from the plan: " + ", ".join(s.missing_expected))
    lines += [f"sandbox gap: {g.address} — {g.consequence}" for g in plan.gaps]
    lines.append(f"sha256 {s.sha256}")
    return lines


def _override_section(plan: PlanResult) -> list[str]:
    """The sandbox override, in full: a reviewer sees exactly what differs from production."""
    lines = ["## Sandbox override (`sandbox_override.tf`, not in infra/)", ""]
    if plan.gaps:
        lines += ["Moto gaps it works around (each a SKIPPED checklist line):", ""]
        lines += [f"- `{g.address}`: {g.consequence} — {g.moto_behaviour}" for g in plan.gaps]
        lines.append("")
    lines += ["```hcl", (plan.override or "").rstrip(), "```", ""]
    return lines


def _changed(change) -> str:
    if change.action in ("create", "delete", "no-op"):
        return ""
    if change.change.replace_paths:
        return "forces replacement: " + ", ".join(
            ".".join(map(str, p)) for p in change.change.replace_paths
        )
    before, after = change.change.before or {}, change.change.after or {}
    unknown = change.change.after_unknown or {}
    keys = sorted(
        k
        for k in after
        if before.get(k) != after.get(k) or (isinstance(unknown, dict) and unknown.get(k))
    )
    return ", ".join(keys[:8]) + (" …" if len(keys) > 8 else "")


def approval_description(plan: PlanResult, reviewers_needed: int, position: int) -> str:
    """The text above the approval form in the Prefect UI."""
    s = plan.summary
    lines = [
        f"## Approve the {plan.environment} plan ({position} of {reviewers_needed} approvals)",
        "",
        f"**{s.headline()}**",
        "",
        f"sha256 `{s.sha256}`",
        "",
        f"Review the `{plan.environment}-plan` artifact of this run, then set **approve**, your name as **reviewer**, and a comment.",
    ]
    if s.destructive:
        lines += [
            "",
            "⚠ This plan deletes or replaces stateful resources: "
            + ", ".join(f"`{d.address}`" for d in s.destructive)
            + ". Set **allow_destroy** to approve it.",
        ]
    lines += [
        "",
        "Registered reviewers sign: run `mirror-rollout sign RUN_ID --key YOUR_KEY_FILE` "
        "(with `--allow-destroy` if you tick allow_destroy) and paste its output into "
        "**signature**, or answer from a terminal with `mirror-rollout approve RUN_ID --key YOUR_KEY_FILE`.",
    ]
    if reviewers_needed > 1:
        lines += [
            "",
            "Production needs two approvals signed by two different registered reviewers "
            "(deployments/reviewers.yaml); unsigned approvals are refused.",
        ]
    return "\n".join(lines)
