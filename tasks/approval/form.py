"""The approval form (a Prefect RunInput) and the pure rules an approval must satisfy."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect.input import RunInput
from pydantic import BaseModel, Field, create_model
from pydantic.fields import FieldInfo

from mirror_rollout.errors import RolloutError
from mirror_rollout.provisioners.document import PlanSummary

AUTO_REVIEWER = "sandbox-auto"


class ApprovalForm(RunInput):
    """What the reviewer fills in, in the Prefect UI or with `mirror-rollout approve`."""

    approve: bool = Field(False, description="Apply exactly this plan?")
    reviewer: str = Field(..., min_length=1, description="Your name (recorded with the approval)")
    comment: str = Field("", description="Why you approve or reject")
    plan_sha256: str = Field(
        ...,
        min_length=64,
        max_length=64,
        description="sha256 of the plan you reviewed (pre-filled)",
    )
    allow_destroy: bool = Field(
        False, description="Required when the plan deletes or replaces stateful resources"
    )


def prefilled_form(description: str, **defaults) -> type[ApprovalForm]:
    """ApprovalForm with these defaults, each field keeping its description and limits.

    Prefect's RunInput.with_initial_data rebuilds the fields from their types alone,
    so the UI form would lose "Apply exactly this plan?" and the sha256 length check.
    """
    fields = {
        name: (
            ApprovalForm.model_fields[name].annotation,
            FieldInfo.merge_field_infos(ApprovalForm.model_fields[name], default=value),
        )
        for name, value in defaults.items()
    }
    form = create_model(ApprovalForm.__name__, __base__=ApprovalForm, **fields)
    form._description = description
    return form


class ApprovalRecord(BaseModel):
    reviewer: str
    decided_at: datetime
    plan_sha256: str
    comment: str = ""
    allow_destroy: bool = False


class ApprovalRejected(RolloutError):
    """The run ends here; nothing was applied."""


def check_approval(
    form: ApprovalForm,
    summary: PlanSummary,
    previous: list[ApprovalRecord],
    backend: str,
    now: datetime | None = None,
) -> ApprovalRecord:
    """Accept ``form`` for the plan ``summary`` or raise ApprovalRejected saying why."""
    reviewer = form.reviewer.strip()
    if not reviewer:
        raise ApprovalRejected("the approval names no reviewer", "fill in the reviewer field")
    if not form.approve:
        reason = f": {form.comment}" if form.comment else ""
        raise ApprovalRejected(
            f"plan rejected by {reviewer}{reason}", "fix what the reviewer asked for and run again"
        )
    if form.plan_sha256.lower() != summary.sha256:
        raise ApprovalRejected(
            f"{reviewer} approved plan {form.plan_sha256[:12]}…, but this run's plan is {summary.sha256[:12]}…",
            "approve the plan of this run (its sha256 is in the plan artifact)",
        )
    if summary.is_destructive and not form.allow_destroy:
        targets = ", ".join(d.address for d in summary.destructive)
        raise ApprovalRejected(
            f"the plan deletes or replaces stateful resources ({targets}) and the approval does not set allow_destroy",
            "re-run and approve with allow_destroy if destroying them is intended",
        )
    if reviewer.startswith(AUTO_REVIEWER) and backend != "sandbox":
        raise ApprovalRejected(
            "auto-approval is only allowed on the sandbox", "have a person approve this plan"
        )
    if any(p.reviewer.casefold() == reviewer.casefold() for p in previous):
        raise ApprovalRejected(
            f"{reviewer} already approved this plan; production needs two different reviewers",
            "ask a second reviewer to approve",
        )
    return ApprovalRecord(
        reviewer=reviewer,
        decided_at=now or datetime.now(UTC),
        plan_sha256=summary.sha256,
        comment=form.comment,
        allow_destroy=form.allow_destroy,
    )


def approvals_needed(environment: str) -> int:
    return 2 if environment == "production" else 1


def approval_markdown(environment: str, records: list[ApprovalRecord]) -> str:
    lines = [
        f"# Approval record — {environment}",
        "",
        "| # | reviewer | decided at (UTC) | plan sha256 | allow_destroy | comment |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {i} | {r.reviewer} | {r.decided_at:%Y-%m-%d %H:%M:%S} | `{r.plan_sha256}` | {r.allow_destroy} | {r.comment} |"
        for i, r in enumerate(records, 1)
    ]
    return "\n".join(lines) + "\n"
