"""Prefect tasks of the nonce step: bootstrap, rotate, grace cleanup, rollback.

Every version is created here (bootstrap: v1 when none exists; rotation: v(N+1)),
always with the project CMK found by its alias, never by Terraform.

Every task takes names and numbers only and returns typed results without any
value; the values stay inside ``tasks.nonce.store``. Refusals raise
``NonceRefused`` (problem + fix, nothing changed) and are not retried; transient
AWS/API errors are retried by Prefect with backoff on top of botocore's standard
retries. Results are never cached (``NO_CACHE``): a retry re-reads SSM.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from mirror_rollout.aws import AwsClients
from mirror_rollout.errors import RolloutError
from mirror_rollout.results import CheckResult, Evidence, Status
from mirror_rollout.retries import retry_if_transient
from mirror_rollout.target import RolloutTarget
from tasks.common import publish_or_fail
from tasks.nonce import store
from tasks.nonce.rules import (
    ROTATION_FLOW,
    SECURE_STRING,
    Action,
    Decision,
    NonceRefused,
    NonceState,
    NonceVersion,
    bootstrap_description,
    bootstrap_tags,
    decide_bootstrap,
    decide_cleanup,
    decide_rollback,
    decide_rotation,
    format_time,
    kms_alias,
    no_project_key,
    parameter_prefix,
    rotation_tags,
)

RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
    "cache_policy": NO_CACHE,
}


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("mirror_rollout.nonce")


class RotationResult(BaseModel):
    environment: str
    rotation_id: str
    from_version: int
    new_version: int
    previous_parameter: str
    new_parameter: str
    key_id: str | None
    grace_until: datetime | None
    created: bool  # False: an earlier attempt of this rotation had created it
    versions_before: list[int]
    versions_after: list[int]


class RemovalResult(BaseModel):
    """What a cleanup or rollback deleted (or found already deleted)."""

    environment: str
    rotation_id: str
    version: int
    parameter: str
    deleted: bool  # False: it was already gone (idempotent retry)
    versions_after: list[int]
    note: str = ""


# -- read -------------------------------------------------------------------------
@task(name="nonce-state", task_run_name="nonce-state-{target.environment}", **RETRIES)
def read_nonce_state(target: RolloutTarget) -> NonceState:
    """Names, versions, key ids and tags of the nonce versions (never a value)."""
    return store.read_state(AwsClients.of(target), target.environment)


# -- bootstrap --------------------------------------------------------------------
def _no_first_version(env: str, message: str, evidence: Evidence) -> list[CheckResult]:
    """Bootstrap ended without a nonce version: the one FAIL saying why."""
    return [
        CheckResult(
            check_id="NONCE-001",
            title="Nonce parameter exists as a SecureString",
            status=Status.FAIL,
            subject=parameter_prefix(env) + "1",
            message=message,
            evidence=[evidence],
        )
    ]


def evaluate_bootstrap(environment: str, aws: AwsClients) -> list[CheckResult]:
    """Create v1 (project CMK) when no version exists, else change nothing; check the current one.

    No Prefect here. Results: NONCE-001 (SecureString), NONCE-002 (project CMK),
    NONCE-003 (holds a real nonce). Without the project CMK alias nothing is created.
    """
    env = environment
    alias = kms_alias(env)
    project = store.key_arn(aws, alias)
    state = store.read_state(aws, env)
    source = f"ssm:DescribeParameters {parameter_prefix(env)}* ({aws.region})"
    decision = decide_bootstrap(state, project, aws.region)
    if decision.action is Action.REFUSE:
        return _no_first_version(
            env,
            f"{decision.reason}; nothing was created — {decision.fix}",
            Evidence(
                source=f"{source}; kms:DescribeKey {alias}",
                observed={"live_versions": state.live, "project_key_arn": project},
            ),
        )
    outcome = "already present: nothing created or changed"
    if decision.action is Action.PROCEED:
        assert project is not None  # decide_bootstrap refuses without it
        outcome = _create_first_version(env, aws, project)
        state = store.read_state(aws, env)
    else:
        _logger().info("Nonce bootstrap of %s: %s", env, decision.reason)
    current = state.current
    if current is None:
        return _no_first_version(
            env,
            f"v1 is not visible in SSM ({aws.region}) after it was created — "
            "run the bootstrap again; it creates v1 only while no version exists",
            Evidence(source=source, observed={"live_versions": state.live}),
        )
    parameter = _check_parameter(env, aws, state, current, source, project)
    if parameter[0].blocking or parameter[1].blocking:
        skipped = CheckResult(
            check_id="NONCE-003",
            title="Nonce holds a real value",
            status=Status.SKIPPED,
            subject=current.name,
            message="value not checked: the parameter itself failed its checks",
        )
        return [*parameter, skipped]
    return [*parameter, _check_value(aws, state, current, outcome)]


def _create_first_version(env: str, aws: AwsClients, project_key: str) -> str:
    """PutParameter v1 (never overwriting); the outcome text for the evidence."""
    name = parameter_prefix(env) + "1"
    try:
        ssm_version = store.put_new_version(
            aws, name, project_key, bootstrap_tags(), bootstrap_description(env)
        )
    except store.ParameterExists:
        # A concurrent bootstrap, or this one whose PutParameter response was lost.
        _logger().info("Nonce %s was created meanwhile; left unchanged", name)
        return "created meanwhile by another attempt: left unchanged"
    _logger().info("Nonce bootstrap of %s: created %s (SSM version %s)", env, name, ssm_version)
    return "created v1"


def _check_parameter(
    env: str,
    aws: AwsClients,
    state: NonceState,
    current: NonceVersion,
    source: str,
    project: str | None,
) -> list[CheckResult]:
    observed = {
        "parameter": current.name,
        "type": current.type,
        "key_id": current.key_id,
        "live_versions": state.live,
    }
    is_secure = current.type == SECURE_STRING
    kind = CheckResult(
        check_id="NONCE-001",
        title="Nonce parameter exists as a SecureString",
        status=Status.PASS if is_secure else Status.FAIL,
        subject=current.name,
        message=(
            f"{current.type}; live versions: {', '.join(f'v{n}' for n in state.live)}"
            if is_secure
            else f"type is {current.type or 'unknown'}, must be SecureString — the bootstrap "
            f"never overwrites a version: run {ROTATION_FLOW} to create v{current.version + 1} "
            "as a SecureString"
        ),
        evidence=[Evidence(source=source, observed=observed)],
    )
    alias = kms_alias(env)
    used = store.key_arn(aws, current.key_id)
    key_ok = project is not None and used == project
    if project is None:
        problem, fix = no_project_key(env, aws.region)
        why = f"{problem} — {fix}"
    elif used is None:
        why = f"KeyId {current.key_id!r} is not a KMS key in {aws.region}"
    else:
        why = f"encrypted with {used}, not with the project CMK {alias} ({project})"
    key = CheckResult(
        check_id="NONCE-002",
        title="Nonce encrypted with the project CMK",
        status=Status.PASS if key_ok else Status.FAIL,
        subject=current.name,
        message=f"KeyId {current.key_id} = {alias}" if key_ok else why,
        evidence=[
            Evidence(
                source=f"kms:DescribeKey {alias} and {current.key_id}",
                observed={"key_id": current.key_id, "key_arn": used, "project_key_arn": project},
            )
        ],
    )
    return [kind, key]


def _check_value(
    aws: AwsClients, state: NonceState, current: NonceVersion, outcome: str
) -> CheckResult:
    name = current.name
    if not store.holds_nonce(aws, name):
        return CheckResult(
            check_id="NONCE-003",
            title="Nonce holds a real value",
            status=Status.FAIL,
            subject=name,
            message=f"{name} does not hold 64 lowercase hex characters — the bootstrap never "
            f"overwrites a version: run {ROTATION_FLOW} to create v{current.version + 1}",
            evidence=[
                Evidence(
                    source=f"ssm:GetParameter {name} (format check only, value discarded)",
                    observed={"parameter": name, "outcome": outcome},
                )
            ],
        )
    return CheckResult(
        check_id="NONCE-003",
        title="Nonce holds a real value",
        status=Status.PASS,
        subject=name,
        message=(
            f"{outcome}: {SECURE_STRING}, KeyId {current.key_id}, "
            f"{len(state.live)} live version(s), SSM version {current.ssm_version}"
        ),
        evidence=[
            Evidence(
                source=f"ssm:GetParameter {name} (format check only, value discarded)",
                observed={
                    "parameter": name,
                    "version": current.version,
                    "type": SECURE_STRING,
                    "key_id": current.key_id,
                    "live_versions": len(state.live),
                    "ssm_version": current.ssm_version,
                    "outcome": outcome,
                },
            )
        ],
    )


@task(name="nonce-bootstrap", task_run_name="nonce-bootstrap-{target.environment}", **RETRIES)
def nonce_bootstrap(target: RolloutTarget) -> list[CheckResult]:
    """Create nonce v1 when no version exists (a no-op otherwise) and check the current version.

    Publishes ``{env}-nonce``; raises ``ValidationFailed`` on a blocking failure.
    """
    env = target.environment
    results = evaluate_bootstrap(env, AwsClients.of(target))
    return publish_or_fail(
        f"{env}-nonce", results, f"Redaction nonce bootstrap ({env})", "nonce bootstrap failed"
    )


# -- rotation ---------------------------------------------------------------------
@task(
    name="rotate-nonce",
    task_run_name="rotate-nonce-{target.environment}-from-v{from_version}",
    **RETRIES,
)
def rotate_nonce(
    target: RolloutTarget, from_version: int, grace_seconds: int, rotation_id: str
) -> RotationResult:
    """Create v(from_version + 1); both stay valid until the grace end (tag ``grace-until``).

    Idempotent per ``rotation_id``: a retry finds the version it created by its tag.
    """
    env = target.environment
    if isinstance(grace_seconds, bool) or not isinstance(grace_seconds, int) or grace_seconds < 0:
        raise NonceRefused(
            f"grace_seconds must be 0 or more, got {grace_seconds!r}; nothing was changed",
            "pass the grace period in seconds (default 3600)",
        )
    if not rotation_id:
        raise NonceRefused("rotation_id is empty; nothing was changed", "pass the flow run id")
    aws = AwsClients.of(target)
    state = store.read_state(aws, env)
    decision = decide_rotation(state, from_version, rotation_id)
    if decision.action is Action.DONE:
        _logger().info("%s; not creating another version", decision.reason)
        return _rotation_result(env, aws, rotation_id, state, state, created=False)
    decision.raise_if_refused()
    assert decision.version is not None and decision.other_version is not None
    source = state.get(decision.other_version)
    assert source is not None
    new_name = parameter_prefix(env) + str(decision.version)
    key_id = store.key_arn(aws, kms_alias(env))
    if key_id is None:
        problem, fix = no_project_key(env, aws.region)
        raise NonceRefused(f"{problem}; nothing was changed", fix)
    grace_until = datetime.now(UTC) + timedelta(seconds=grace_seconds)
    try:
        store.put_new_version(
            aws,
            new_name,
            key_id,
            rotation_tags(rotation_id, grace_until, decision.other_version),
            description=(
                f"Mirror Dissonance {env} redaction nonce v{decision.version} "
                f"(rotation {rotation_id}; value managed by the nonce-rotation flow)"
            ),
            tier=source.tier or "Standard",
        )
    except store.ParameterExists:
        after = store.read_state(aws, env)
        if after.by_rotation(rotation_id) is None:
            raise NonceRefused(
                f"{new_name} was created meanwhile by someone else (rotation "
                f"{(after.get(decision.version) or source).rotation_id or 'unknown'}); "
                "nothing was changed by this run",
                "check the nonce-rotation runs; rotate again after that rotation's grace period",
            ) from None
        _logger().info("%s already created by an earlier attempt of this rotation", new_name)
        return _rotation_result(env, aws, rotation_id, state, after, created=False)
    after = store.read_state(aws, env)
    result = _rotation_result(env, aws, rotation_id, state, after, created=True)
    _logger().info(
        "Rotation %s: created %s; v%s and v%s both valid until %s",
        rotation_id,
        new_name,
        result.from_version,
        result.new_version,
        format_time(result.grace_until) if result.grace_until else "?",
    )
    return result


def _rotation_result(
    env: str,
    aws: AwsClients,
    rotation_id: str,
    before: NonceState,
    after: NonceState,
    created: bool,
) -> RotationResult:
    new = after.by_rotation(rotation_id)
    if new is None:
        raise RolloutError(
            f"the version created by rotation {rotation_id} is not visible in SSM ({aws.region})",
            "run the rotation again with the same rotation id; it will not create a second one",
        )
    old = new.rotated_from or new.version - 1
    return RotationResult(
        environment=env,
        rotation_id=rotation_id,
        from_version=old,
        new_version=new.version,
        previous_parameter=parameter_prefix(env) + str(old),
        new_parameter=new.name,
        key_id=new.key_id,
        grace_until=new.grace_until,
        created=created,
        versions_before=[v for v in before.live if v != new.version],
        versions_after=after.live,
    )


# -- cleanup and rollback ---------------------------------------------------------
def _remove(
    target: RolloutTarget,
    rotation_id: str,
    decision_fn: Callable[[NonceState], Decision],
    what: str,
) -> RemovalResult:
    """Delete the version ``decision_fn`` names (if it says PROCEED); what is left after."""
    env, aws = target.environment, AwsClients.of(target)
    state = store.read_state(aws, env)
    decision = decision_fn(state)
    decision.raise_if_refused()
    version = decision.version
    if version is None:  # pragma: no cover - cleanup and rollback decisions name their version
        raise TypeError(f"the {what} decision names no version")
    name = parameter_prefix(env) + str(version)
    deleted = False
    note = decision.reason
    if decision.action is Action.PROCEED:
        deleted = store.delete_version(aws, name)
        note = f"{what}: deleted {name}; v{decision.other_version} remains"
        if not deleted:
            note = f"{what}: {name} was already gone; v{decision.other_version} remains"
    after = store.read_state(aws, env)
    _logger().info("Rotation %s — %s", rotation_id, note)
    return RemovalResult(
        environment=env,
        rotation_id=rotation_id,
        version=version,
        parameter=name,
        deleted=deleted,
        versions_after=after.live,
        note=note,
    )


@task(
    name="nonce-cleanup-previous",
    task_run_name="nonce-cleanup-{target.environment}-v{old_version}",
    **RETRIES,
)
def cleanup_previous(
    target: RolloutTarget, old_version: int, rotation_id: str, force: bool = False
) -> RemovalResult:
    """End the grace period: delete v{old_version} once rotation ``rotation_id``'s version exists.

    Refuses if that newer version is missing (never leaves zero versions) or, unless
    ``force``, before the grace end; idempotent when v{old_version} is already gone.
    """
    return _remove(
        target,
        rotation_id,
        lambda s: decide_cleanup(s, old_version, rotation_id, force=force),
        "grace cleanup",
    )


@task(
    name="nonce-rollback",
    task_run_name="nonce-rollback-{target.environment}-v{new_version}",
    **RETRIES,
)
def rollback_rotation(target: RolloutTarget, new_version: int, rotation_id: str) -> RemovalResult:
    """Undo rotation ``rotation_id``: delete v{new_version} (only if tagged with it), keep vN."""
    return _remove(
        target, rotation_id, lambda s: decide_rollback(s, new_version, rotation_id), "rollback"
    )
