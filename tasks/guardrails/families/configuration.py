"""The configuration as a whole: state backend, tfvars per environment, lifecycle, tags."""

from __future__ import annotations

from collections.abc import Iterator

from mirror_rollout import contract
from mirror_rollout.documents import as_list
from tasks.guardrails.base import not_planned, plan_check, shown, static_check
from tasks.guardrails.common import Observation, observations, observe, unless
from tasks.guardrails.families.s3 import PUBLIC_ACCESS_FLAGS
from tasks.guardrails.plan_view import AFTER_APPLY, PlanView
from tasks.guardrails.view import InfraView, Tfvars


@static_check("MR-060", "S3 state backend encrypted, locked, with a workspace key prefix")
def state_backend(view: InfraView) -> Iterator[Observation]:
    backend = view.aws.module.backend
    if backend is None:
        yield Observation(
            "terraform.backend",
            view.tfvars_dir,
            False,
            "no backend block: state would be local",
        )
        return
    kind, c = backend.type, backend.body
    problems = (
        unless(kind == "s3", "", f"backend is {kind!r}, expected s3")
        + unless(c.get("encrypt") is True, "encrypt", "encrypt must be true")
        + unless(
            bool(c.get("dynamodb_table") or c.get("use_lockfile") is True),
            "",
            "a lock (dynamodb_table or use_lockfile) is required",
        )
        + unless(
            bool(c.get("workspace_key_prefix")),
            "",
            "workspace_key_prefix must be set so each environment has its own state",
        )
    )
    problems += [
        ("", f"{key} must be set") for key in ("bucket", "key", "region") if not c.get(key)
    ]
    yield from observations(
        f'backend "{kind}"',
        backend.location,
        backend.at,
        problems,
        f"s3://{c.get('bucket')}/{c.get('workspace_key_prefix')}/…",
    )


#: Variables whose value is allowed to differ between environments.
PER_ENVIRONMENT = frozenset(
    {"environment", "kms_deletion_window_days", "alert_email", "tags", "backup_retention_days"}
)


def _tfvars_observations(view: InfraView, env: str, tfvars: Tfvars):
    """One tfvars file on its own: its environment, its keys against the variables."""
    declared = view.aws.module.variables
    required = {n for n, b in declared.items() if "default" not in b.body}
    values = tfvars.values
    if values.get("environment") != env:
        yield Observation(
            tfvars.file,
            tfvars.at("environment"),
            False,
            f"environment = {values.get('environment')!r}, expected {env!r}",
        )
    for key in sorted(values.keys() - declared.keys()):
        yield Observation(
            tfvars.file,
            tfvars.at(key),
            False,
            f"{key} is not a variable of infra/terraform (typo?)",
        )
    for key in sorted(required - values.keys()):
        yield Observation(
            tfvars.file,
            declared[key].location,
            False,
            f"variable {key} has no default and {tfvars.file} does not set it",
        )
    yield Observation(tfvars.file, tfvars.file, True, "valid")


def _drift_observations(tfvars: Tfvars, reference: Tfvars):
    """Values of ``tfvars`` that differ from production's where they must not."""
    for key in sorted((tfvars.values.keys() | reference.values.keys()) - PER_ENVIRONMENT):
        if tfvars.values.get(key) != reference.values.get(key):
            yield Observation(
                f"{tfvars.file} ↔ {reference.file}",
                tfvars.at(key) if key in tfvars.values else reference.at(key),
                False,
                f"{key} = {shown(tfvars.values.get(key, '(unset)'))} here but "
                f"{shown(reference.values.get(key, '(unset)'))} at {reference.at(key)}; only "
                f"{', '.join(sorted(PER_ENVIRONMENT))} may differ between environments",
            )


@static_check(
    "MR-061", "Every <env>.tfvars valid and differing from the others only where it should"
)
def tfvars_consistency(view: InfraView) -> Iterator[Observation]:
    for env in ("staging", "production"):
        if env not in view.tfvars:
            yield Observation(f"{env}.tfvars", view.tfvars_dir, False, f"{env}.tfvars is missing")
    for env, tfvars in sorted(view.tfvars.items()):
        yield from _tfvars_observations(view, env, tfvars)
    reference = view.tfvars.get("production")
    for _, tfvars in sorted(view.tfvars.items()):
        if reference is not None and tfvars is not reference:
            yield from _drift_observations(tfvars, reference)


#: Arguments the guardrails vouch for: ignoring their drift would void the guarantee.
GUARDED_ARGUMENTS = frozenset(
    {
        "point_in_time_recovery",
        "server_side_encryption",
        "kms_key_arn",
        "kms_key_id",
        "kms_master_key_id",
        "enable_key_rotation",
        "deletion_window_in_days",
        "policy",
        "assume_role_policy",
        "alarm_actions",
        "threshold",
        "period",
        "versioning_configuration",
        "rule",
        "enable_log_file_validation",
        "dashboard_body",
        "hash_key",
        "range_key",
        "ttl",
        "global_secondary_index",
        *PUBLIC_ACCESS_FLAGS,
    }
)


@static_check("MR-063", "No lifecycle.ignore_changes hides drift of a guarded setting")
def lifecycle_keeps_guarantees(view: InfraView) -> Iterator[Observation]:
    resources = view.aws.module.resources + (view.gcp.module.resources if view.gcp else [])
    for resource in resources:
        lifecycle = resource.lifecycle()
        if not lifecycle or "ignore_changes" not in lifecycle:
            continue
        ignored = {
            str(v).removeprefix("${").removesuffix("}").split(".")[0].split("[")[0]
            for v in as_list(lifecycle["ignore_changes"])
        }
        hidden = sorted(ignored & (GUARDED_ARGUMENTS | {"all"}))
        yield from observe(
            resource,
            unless(
                not hidden,
                "lifecycle.ignore_changes",
                f"ignore_changes hides drift of {hidden}",
            ),
            f"ignores {sorted(ignored)} only",
        )
    yield Observation(
        "lifecycle", view.tfvars_dir, True, f"{len(resources)} resources' lifecycle read"
    )


@plan_check("MR-064", "Every taggable resource carries Project, Environment and ManagedBy tags")
def default_tags(plan: PlanView) -> Iterator[Observation]:
    wanted = {"Project": contract.PREFIX, "Environment": plan.env, "ManagedBy": "terraform"}
    taggable = [r for r in plan.resources if "tags_all" in r.values or "tags_all" in r.unknown]
    if not taggable:
        yield not_planned(plan, "a taggable resource")
    for resource in taggable:
        tags = resource.values.get("tags_all")
        if not isinstance(tags, dict) or resource.unknown.get("tags_all") is True:
            yield Observation(
                resource.address, resource.where("tags_all"), None, f"tags_all {AFTER_APPLY}"
            )
            continue
        wrong = {k: tags.get(k) for k, v in wanted.items() if tags.get(k) != v}
        if wrong and "tags_all" in plan.not_kept.get(resource.address, ()):
            yield Observation(
                resource.address,
                resource.where("tags_all"),
                None,
                "tags_all is not kept by this backend (a declared sandbox gap); checked on AWS",
            )
            continue
        yield from observe(
            resource,
            unless(not wrong, "tags_all", f"tags {wrong} differ from {wanted}"),
            "tagged",
        )
