"""The approval form (a Prefect RunInput) and the pure rules an approval must satisfy."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect.input import RunInput
from pydantic import BaseModel, Field, create_model
from pydantic.fields import FieldInfo

from mirror_rollout import markdown as md
from mirror_rollout.errors import ConfigError, RolloutError
from mirror_rollout.plan_digest import PlanDigest
from mirror_rollout.provisioners.document import PlanSummary
from mirror_rollout.reviewer_keys import (
    AUTO_REVIEWER,
    approval_message,
    decode_signature,
    display_name,
    same_name,
    skeletons,
    verifies,
)
from mirror_rollout.target import rules_for
from tasks.approval.reviewers import EnvironmentReviewers


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
    signature: str = Field(
        "",
        description=(
            "Registered reviewers (always in production): paste the output of "
            "`mirror-rollout sign RUN_ID --key YOUR_KEY_FILE` (add --allow-destroy or --reject "
            "to match the boxes above); it binds your key to this run, stage, plan and decision"
        ),
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
    # pydantic types create_model's field definitions per name; built ones are checked above.
    form = create_model(ApprovalForm.__name__, __base__=ApprovalForm, **fields)  # type: ignore[call-overload]
    form._description = description
    return form


#: What an approval without a signature records as its key.
UNSIGNED = "unsigned"


class ApprovalRecord(BaseModel):
    reviewer: str
    decided_at: datetime
    plan_sha256: PlanDigest
    comment: str = ""
    allow_destroy: bool = False
    #: The registered key that signed (``ed25519:…``), or "unsigned" where the registry allows it.
    key_fingerprint: str = UNSIGNED
    stage: str = ""


class ApprovalRejected(RolloutError):
    """The run ends here; nothing was applied."""


def _approved_digest(form: ApprovalForm, reviewer: str) -> PlanDigest:
    """The form's plan sha256 as a digest (the UI form checks only its length)."""
    try:
        return PlanDigest(form.plan_sha256)
    except ConfigError as exc:
        raise ApprovalRejected(f"{reviewer} approved {exc.problem}", exc.fix) from None


def check_approval(
    form: ApprovalForm,
    summary: PlanSummary,
    previous: list[ApprovalRecord],
    backend: str,
    reviewers: EnvironmentReviewers,
    flow_run_id: str,
    stage: str,
    now: datetime | None = None,
) -> ApprovalRecord:
    """Accept ``form`` for the plan ``summary`` or raise ApprovalRejected saying why.

    ``reviewers`` is the environment's registry entry; ``flow_run_id`` and ``stage``
    (the pause key) are what a signature must name.
    """
    reviewer = display_name(form.reviewer)
    if not reviewer:
        raise ApprovalRejected("the approval names no reviewer", "fill in the reviewer field")
    if not form.approve:
        reason = f": {form.comment}" if form.comment else ""
        raise ApprovalRejected(
            f"plan rejected by {reviewer}{reason}", "fix what the reviewer asked for and run again"
        )
    approved = _approved_digest(form, reviewer)
    if approved != summary.sha256:
        raise ApprovalRejected(
            f"{reviewer} approved plan {approved.short}, but this run's plan is {summary.sha256[:12]}…",
            "approve the plan of this run (its sha256 is in the plan artifact)",
        )
    if summary.is_destructive and not form.allow_destroy:
        targets = ", ".join(d.address for d in summary.destructive)
        raise ApprovalRejected(
            f"the plan deletes or replaces stateful resources ({targets}) and the approval does not set allow_destroy",
            "re-run and approve with allow_destroy if destroying them is intended",
        )
    if backend != "sandbox" and _looks_automatic(reviewer):
        raise ApprovalRejected(
            "auto-approval is only allowed on the sandbox", "have a person approve this plan"
        )
    reviewer, key = _identify(form, approved, reviewer, reviewers, flow_run_id, stage)
    for earlier in previous:
        if key != UNSIGNED and earlier.key_fingerprint == key:
            raise ApprovalRejected(
                f"key {key} already approved this plan (as {earlier.reviewer}); "
                "production needs two different reviewers",
                "ask a second registered reviewer to approve with their own key",
            )
        if same_name(earlier.reviewer, reviewer):
            raise ApprovalRejected(
                f"{reviewer} already approved this plan (as {earlier.reviewer}); "
                "production needs two different reviewers",
                "ask a second reviewer to approve",
            )
    return ApprovalRecord(
        reviewer=reviewer,
        decided_at=now or datetime.now(UTC),
        plan_sha256=summary.sha256,
        comment=form.comment,
        allow_destroy=form.allow_destroy,
        key_fingerprint=key,
        stage=stage,
    )


def _looks_automatic(reviewer: str) -> bool:
    """``sandbox-auto``, ``sandbox-auto-2`` or a look-alike of either."""
    auto = skeletons(AUTO_REVIEWER)
    return any(s.startswith(a) for s in skeletons(reviewer) for a in auto)


def _identify(
    form: ApprovalForm,
    approved: PlanDigest,
    reviewer: str,
    reviewers: EnvironmentReviewers,
    flow_run_id: str,
    stage: str,
) -> tuple[str, str]:
    """(registered name, key fingerprint) of a signed approval, (name, "unsigned") otherwise."""
    registered = reviewers.find(reviewer)
    signature = form.signature.strip()
    if not signature:
        if registered is not None:
            raise ApprovalRejected(
                f"{reviewer} is a registered reviewer (as {registered.name}), but the approval is not signed",
                f"sign it: mirror-rollout approve {flow_run_id} --key YOUR_KEY_FILE, "
                "or paste `mirror-rollout sign` output into the signature field",
            )
        if not reviewers.allow_unsigned:
            raise ApprovalRejected(
                f"unsigned approval by {reviewer}: this environment accepts only approvals "
                "signed by a reviewer registered in deployments/reviewers.yaml",
                "register with `mirror-rollout reviewer new NAME`, then approve with --key",
            )
        return reviewer, UNSIGNED
    if registered is None:
        raise ApprovalRejected(
            f"{reviewer} signed, but is not a registered reviewer of this environment",
            "add the entry `mirror-rollout reviewer new` printed to deployments/reviewers.yaml",
        )
    raw = decode_signature(signature)
    message = approval_message(flow_run_id, stage, approved, form.approve, form.allow_destroy)
    if raw is None or not verifies(registered.key, message, raw):
        raise ApprovalRejected(
            f"the signature does not verify against {registered.name}'s registered key "
            f"{registered.fingerprint} for run {flow_run_id}, {stage}, plan {approved.short}, "
            f"approve={form.approve}, allow_destroy={form.allow_destroy}",
            f"sign this run's approval with your own key: mirror-rollout sign {flow_run_id} --key YOUR_KEY_FILE",
        )
    return registered.name, registered.fingerprint


def approvals_needed(environment: str) -> int:
    return rules_for(environment).reviewers_required


def approval_markdown(environment: str, records: list[ApprovalRecord]) -> str:
    """The approval record; every value a reviewer typed is escaped (one row per approval)."""
    lines = [md.heading(1, f"Approval record — {environment}"), ""]
    lines += md.table(
        [
            "#",
            "reviewer",
            "key",
            "decided at (UTC)",
            "plan sha256",
            "allow_destroy",
            "comment",
        ],
        [
            [
                i,
                r.reviewer,
                md.code_cell(r.key_fingerprint),
                f"{r.decided_at:%Y-%m-%d %H:%M:%S}",
                md.code_cell(r.plan_sha256),
                r.allow_destroy,
                r.comment,
            ]
            for i, r in enumerate(records, 1)
        ],
    )
    return "\n".join(lines) + "\n"
