"""Flow `nonce-rotation-test`: a real rotation, checked during its grace period (the old test-nonce-rotation.sh).

1. runs `nonce-rotation` (a subflow): v(N+1) is created next to vN and the grace
   cleanup is scheduled;
2. checks, during the grace period, that both versions are live and readable with
   distinct real nonces, and that the Oracle's reference client redacts with the
   newest one (v(N+1));
3. ends the test (``end``): ``rollback`` (default) undoes the rotation, so vN stays
   the nonce; ``cleanup`` ends the grace early, so v(N+1) stays; ``keep`` leaves the
   rotation in its grace period for the scheduled cleanup. After rollback/cleanup
   it checks that exactly the remaining version is live, readable and used.

Values are compared in memory only; results, logs and the ``{env}-nonce-rotation-test``
artifact carry names, versions and booleans.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.nonce_rotation import cancel_scheduled_cleanup, nonce_grace_cleanup, nonce_rotation
from mirror_rollout.aws import AwsClients
from mirror_rollout.errors import ConfigError
from mirror_rollout.evidence import failure_results, publish, raise_if_blocking
from mirror_rollout.results import CheckResult, Evidence, Status
from mirror_rollout.target import RolloutTarget, target_of
from tasks.e2e.oracle import OracleClient
from tasks.nonce import store
from tasks.nonce.rules import DEFAULT_GRACE_SECONDS, decide_rotation, format_time, parameter_prefix

ENDS = ("rollback", "cleanup", "keep")
FLOW_NAME = "nonce-rotation-test"


def _result(
    check_id: str, title: str, ok: bool, subject: str, message: str, **observed
) -> CheckResult:
    return CheckResult(
        check_id=check_id,
        title=title,
        status=Status.PASS if ok else Status.FAIL,
        subject=subject,
        message=message,
        evidence=[Evidence(source=observed.pop("source", "ssm"), observed=observed)],
    )


def _redaction_version(aws: AwsClients, env: str) -> tuple[int | None, str]:
    """The nonce version the Oracle's reference client redacts with now, or (None, why not)."""
    oracle = OracleClient(aws, env, f"{FLOW_NAME}-{flow_run.get_id() or 'local'}")
    try:
        loaded = oracle.load_nonce()
        if loaded.status is not Status.PASS:
            return None, loaded.message
        # The context the Oracle would store: digest + nonceVersion (never the value).
        return int(oracle._redacted_context()["nonceVersion"]), loaded.message
    finally:
        oracle._forget_nonces()


def _readable(aws: AwsClients, env: str, versions: list[int]) -> tuple[dict[int, bool], bool]:
    """Per version: holds a real nonce; and whether those nonces are pairwise distinct."""
    values = {v: store.read_value(aws, parameter_prefix(env) + str(v)) for v in versions}
    try:
        real = {v: value is not None for v, value in values.items()}
        secrets = [value.get_secret_value() for value in values.values() if value is not None]
        return real, len(set(secrets)) == len(secrets)
    finally:
        values.clear()


@task(
    name="nonce-grace-check",
    task_run_name="nonce-grace-check-{target.environment}",
    cache_policy=NO_CACHE,
)
def grace_check(
    target: RolloutTarget, rotation_id: str, old_version: int, new_version: int
) -> list[CheckResult]:
    """During the grace period: both versions live and readable, the newest one used."""
    environment = target.environment
    aws = AwsClients.of(target)
    state = store.read_state(aws, environment)
    prefix = parameter_prefix(environment)
    grace = state.grace
    now = datetime.now(UTC)
    in_grace = (
        grace is not None
        and grace.rotation_id == rotation_id
        and old_version in grace.old_versions
        and grace.new_version == new_version
        and grace.grace_until is not None
        and grace.grace_until > now
    )
    until = format_time(grace.grace_until) if grace and grace.grace_until else "?"
    results = [
        _result(
            "NTEST-001",
            "Both versions live during the grace period",
            in_grace,
            f"{prefix}{old_version}, {prefix}{new_version}",
            f"live {state.summary()}"
            if in_grace
            else f"expected v{old_version} and v{new_version} of rotation {rotation_id} in grace; "
            f"found {state.summary()}",
            source=f"ssm:DescribeParameters {prefix}* ({aws.region})",
            live=state.live,
            rotation_id=grace.rotation_id if grace else None,
            grace_until=until,
        )
    ]
    real, distinct = _readable(aws, environment, [old_version, new_version])
    readable = all(real.values()) and distinct
    results.append(
        _result(
            "NTEST-002",
            "Both versions readable with distinct real nonces",
            readable,
            f"{prefix}{old_version}, {prefix}{new_version}",
            "both decrypt to 64-hex nonces, and they differ"
            if readable
            else (
                f"not a real nonce: {', '.join(f'v{v}' for v, ok in real.items() if not ok)}"
                if not all(real.values())
                else "both versions hold the same value"
            ),
            source="ssm:GetParameter WithDecryption (format and equality only, values discarded)",
            real={f"v{v}": ok for v, ok in real.items()},
            distinct=distinct,
        )
    )
    used, why = _redaction_version(aws, environment)
    results.append(
        _result(
            "NTEST-003",
            "The newest version is used for redaction",
            used == new_version,
            f"{prefix}{new_version}",
            f"Oracle reference client redacts with v{used}"
            + ("" if used == new_version else f", not v{new_version} ({why})"),
            source="OracleClient.load_nonce + redaction (nonceVersion only)",
            used_version=used,
        )
    )
    return results


@task(
    name="nonce-after-check",
    task_run_name="nonce-after-{end}-{target.environment}",
    cache_policy=NO_CACHE,
)
def after_check(target: RolloutTarget, end: str, remaining: int) -> list[CheckResult]:
    """After rollback/cleanup: only ``remaining`` is live, it is readable and it is used."""
    environment = target.environment
    aws = AwsClients.of(target)
    state = store.read_state(aws, environment)
    prefix = parameter_prefix(environment)
    real, _ = _readable(aws, environment, [remaining])
    used, why = _redaction_version(aws, environment)
    ok = state.live == [remaining] and real[remaining] and used == remaining
    problems = []
    if state.live != [remaining]:
        problems.append(f"live versions {state.summary()}, expected only v{remaining}")
    if not real[remaining]:
        problems.append(f"v{remaining} holds no real nonce")
    if used != remaining:
        problems.append(f"redaction uses v{used} ({why})")
    return [
        _result(
            "NTEST-004",
            f"After {end}: one version left, readable and used",
            ok,
            f"{prefix}{remaining}",
            f"only v{remaining} live; readable; used for redaction" if ok else "; ".join(problems),
            source=f"ssm:DescribeParameters+GetParameter {prefix}* ({aws.region})",
            live=state.live,
            used_version=used,
        )
    ]


@flow(name=FLOW_NAME, log_prints=True)
def nonce_rotation_test(
    environment: str = "staging",
    region: str | None = None,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
    end: str = "rollback",
) -> dict:
    """Rotate, prove both versions serve during the grace period and the newest is used, then end."""
    target = target_of(environment, region=region)
    env, region = target.environment, target.region
    if end not in ENDS:
        raise ConfigError(f"unknown end {end!r}", f"use one of: {', '.join(ENDS)}")
    logger = get_run_logger()
    before = store.read_state(AwsClients.of(target), env)
    # The rotation would refuse too; refusing here says so before anything runs.
    decide_rotation(before, None).raise_if_refused()

    rotated = nonce_rotation(environment=env, region=region, grace_seconds=grace_seconds)
    old, new, rotation_id = rotated["from_version"], rotated["new_version"], rotated["rotation_id"]
    # Whatever the checks find (or if they break), the test still ends as asked.
    checked = grace_check(target, rotation_id, old, new, return_state=True)
    results = (
        checked.result()
        if checked.is_completed()
        else failure_results("NTEST", "grace-period checks", checked.result(raise_on_failure=False))
    )

    remaining = None
    if end == "rollback":
        nonce_rotation(environment=env, region=region, rollback=True)
        remaining = old
    elif end == "cleanup":
        nonce_grace_cleanup(env, region, old, rotation_id, force=True)
        cancel_scheduled_cleanup(rotation_id, f"grace ended early by {FLOW_NAME}")
        remaining = new
    if remaining is not None:
        results += after_check(target, end, remaining)

    verdict = publish(
        f"{env}-nonce-rotation-test",
        results,
        f"Nonce rotation test {env}: v{old} -> v{new}, end {end}",
    )
    for r in results:
        logger.info("%s %s %s: %s", r.status.value, r.check_id, r.subject, r.message)
    raise_if_blocking(
        results,
        "nonce rotation test failed",
        f"see the {env}-nonce-rotation-test and {env}-nonce-rotation artifacts",
    )
    return {
        "environment": env,
        "rotation_id": rotation_id,
        "from_version": old,
        "new_version": new,
        "end": end,
        "remaining_version": remaining,
        "verdict": verdict.value,
        "checks": {r.check_id: r.status.value for r in results},
    }
