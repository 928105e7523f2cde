"""Pure nonce logic: which versions are live, whether a rotation is in grace, what may be done.

Input is what SSM DescribeParameters (plus ListTagsForResource) reports about the
parameters ``/guardian/{env}/redaction_nonce_v{N}``: names, types, key ids, tags
and modification times — never a value. Output is typed: a ``NonceState`` and a
``Decision`` (proceed / done already / refuse with a reason and a fix).

Every version is runtime data of these steps, never a Terraform resource: the
bootstrap creates v1 when no version exists (and does nothing otherwise), a
rotation creates v(N+1), its grace cleanup deletes vN, a rollback deletes v(N+1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from mirror_rollout.contract import NONCE_NAME, PREFIX, nonce_parameter
from mirror_rollout.errors import RolloutError

# Tags the pipeline puts on every version it creates.
TAG_ROTATION_ID = "rotation-id"
TAG_GRACE_UNTIL = "grace-until"
TAG_ROTATED_FROM = "rotated-from"
TAG_CREATED_BY = "created-by"
CREATED_BY = "mirror-rollout"

SECURE_STRING = "SecureString"
DEFAULT_GRACE_SECONDS = 3600
#: A grace cleanup may start this much before the grace end (workers pick
#: scheduled runs up a little early).
CLEANUP_TOLERANCE = timedelta(seconds=60)
_TAG_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

CLEANUP_FLOW = "nonce-grace-cleanup"
ROTATION_FLOW = "nonce-rotation"


def parameter_prefix(environment: str) -> str:
    """The DescribeParameters ``BeginsWith`` value for an environment's nonce versions."""
    return nonce_parameter(environment, 0)[:-1]


def kms_alias(environment: str) -> str:
    return f"alias/{PREFIX}-{environment}"


def format_time(moment: datetime) -> str:
    """A tag-safe UTC timestamp (SSM tag values allow ``:``, ``-``, letters and digits)."""
    return moment.astimezone(UTC).strftime(_TAG_TIME_FORMAT)


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, _TAG_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def bootstrap_tags() -> dict[str, str]:
    """Tags of the first version, created by the bootstrap (no rotation: no grace)."""
    return {TAG_CREATED_BY: CREATED_BY}


def bootstrap_description(environment: str) -> str:
    return (
        f"Mirror Dissonance {environment} redaction nonce v1 "
        "(created by nonce-bootstrap; versions managed by the nonce-rotation flow)"
    )


def rotation_tags(rotation_id: str, grace_until: datetime, from_version: int) -> dict[str, str]:
    """Tags of a version created by a rotation."""
    return {
        TAG_ROTATION_ID: rotation_id,
        TAG_GRACE_UNTIL: format_time(grace_until),
        TAG_ROTATED_FROM: str(from_version),
        TAG_CREATED_BY: CREATED_BY,
    }


class NonceVersion(BaseModel):
    """One version parameter as DescribeParameters describes it (no value)."""

    name: str
    version: int  # N of ..._v{N}
    type: str = ""
    key_id: str | None = None
    tier: str | None = None
    description: str | None = None
    ssm_version: int | None = None  # SSM's own history counter of this parameter
    last_modified: datetime | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @property
    def rotation_id(self) -> str | None:
        return self.tags.get(TAG_ROTATION_ID)

    @property
    def grace_until(self) -> datetime | None:
        return parse_time(self.tags.get(TAG_GRACE_UNTIL))

    @property
    def rotated_from(self) -> int | None:
        try:
            return int(self.tags[TAG_ROTATED_FROM])
        except (KeyError, ValueError):
            return None


class Grace(BaseModel):
    """Two (or more) live versions: the newest one's rotation is in its grace period."""

    rotation_id: str | None
    old_versions: list[int]
    new_version: int
    grace_until: datetime | None
    ended: bool  # the grace end has passed but the old version(s) still exist


class NonceState(BaseModel):
    environment: str
    observed_at: datetime
    versions: list[NonceVersion] = Field(default_factory=list)  # ascending by version
    #: Names under the prefix that do not follow the contract (ignored, reported).
    ignored: list[str] = Field(default_factory=list)

    @property
    def live(self) -> list[int]:
        return [v.version for v in self.versions]

    @property
    def current(self) -> NonceVersion | None:
        return self.versions[-1] if self.versions else None

    def get(self, version: int) -> NonceVersion | None:
        return next((v for v in self.versions if v.version == version), None)

    def by_rotation(self, rotation_id: str) -> NonceVersion | None:
        """The version created by rotation ``rotation_id`` (found by its tag)."""
        return next((v for v in self.versions if v.rotation_id == rotation_id), None)

    @property
    def in_grace(self) -> bool:
        return len(self.versions) >= 2

    @property
    def grace(self) -> Grace | None:
        if not self.in_grace:
            return None
        newest = self.versions[-1]
        until = newest.grace_until
        return Grace(
            rotation_id=newest.rotation_id,
            old_versions=[v.version for v in self.versions[:-1]],
            new_version=newest.version,
            grace_until=until,
            ended=until is not None and self.observed_at >= until,
        )

    def summary(self) -> str:
        if not self.versions:
            return "no version"
        text = ", ".join(f"v{n}" for n in self.live)
        grace = self.grace
        if grace is not None:
            until = format_time(grace.grace_until) if grace.grace_until else "unknown"
            text += f" (rotation {grace.rotation_id or '?'} in grace until {until})"
        return text


def _tags(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(t["Key"]): str(t["Value"]) for t in raw}


def nonce_state(
    environment: str, descriptions: Iterable[Mapping[str, Any]], now: datetime | None = None
) -> NonceState:
    """Build the state from DescribeParameters entries (each may carry ``Tags``)."""
    versions: list[NonceVersion] = []
    ignored: list[str] = []
    for d in descriptions:
        name = str(d["Name"])
        match = NONCE_NAME.match(name)
        if not match or match["env"] != environment:
            ignored.append(name)
            continue
        modified = d.get("LastModifiedDate")
        versions.append(
            NonceVersion(
                name=name,
                version=int(match["version"]),
                type=str(d.get("Type", "")),
                key_id=d.get("KeyId"),
                tier=d.get("Tier"),
                description=d.get("Description"),
                ssm_version=d.get("Version"),
                last_modified=modified,
                tags=_tags(d.get("Tags")),
            )
        )
    versions.sort(key=lambda v: v.version)
    return NonceState(
        environment=environment,
        observed_at=now or datetime.now(UTC),
        versions=versions,
        ignored=sorted(ignored),
    )


# -- decisions --------------------------------------------------------------------
class Action(StrEnum):
    PROCEED = "proceed"
    DONE = "done"  # already in the wanted state (an idempotent retry)
    REFUSE = "refuse"


class NonceRefused(RolloutError):
    """A nonce operation was refused; nothing was changed."""


class Decision(BaseModel):
    action: Action
    #: The version the operation acts on (bootstrap: v1 to create, or the current one it
    #: leaves alone; rotation: the new one; cleanup: the old one to delete; rollback:
    #: the new one to delete).
    version: int | None = None
    #: The other version involved (rotation/cleanup/rollback: vN resp. v(N+1)).
    other_version: int | None = None
    reason: str = ""
    fix: str = ""

    def raise_if_refused(self) -> None:
        if self.action is Action.REFUSE:
            raise NonceRefused(f"{self.reason}; nothing was changed", self.fix or None)


def _refuse(reason: str, fix: str = "") -> Decision:
    return Decision(action=Action.REFUSE, reason=reason, fix=fix)


def _versions(state: NonceState) -> str:
    return ", ".join(f"v{n}" for n in state.live) or "none"


def _no_nonce(state: NonceState) -> Decision:
    return _refuse(
        f"no nonce parameter {parameter_prefix(state.environment)}{{N}} exists in "
        f"{state.environment}",
        "run infra-rollout first: its nonce-bootstrap step creates v1",
    )


def no_project_key(environment: str, region: str) -> tuple[str, str]:
    """(problem, fix) when the project CMK alias is missing: the infrastructure is not applied."""
    return (
        f"the project CMK {kms_alias(environment)} does not exist in {region} (infra/terraform "
        f"not applied to {environment}?), so no nonce version can be encrypted with it",
        f"run infra-rollout for {environment} first (its apply creates the CMK and its "
        "nonce-bootstrap step then creates v1)",
    )


def _bad_version(what: str, version: Any, state: NonceState) -> Decision | None:
    if isinstance(version, bool) or not isinstance(version, int):
        return _refuse(f"{what} must be a version number (1, 2, …), got {version!r}")
    if version <= 0:
        current = f"v{state.current.version}" if state.current else "none"
        fix = (
            f"pass the number N of the current {parameter_prefix(state.environment)}N "
            f"(now: {current})"
        )
        if version == 0:
            fix = (
                "the initial nonce (the old `rotate-nonce.sh ENV 0`) is v1, created by the "
                "nonce bootstrap of infra-rollout; to rotate, " + fix
            )
        return _refuse(f"{what} must be 1 or more, got {version}", fix)
    return None


def decide_bootstrap(state: NonceState, project_key: str | None, region: str = "") -> Decision:
    """Create v1 when no version exists (with the project CMK ``project_key``); else a no-op.

    Any live version means the nonce is bootstrapped already, whatever its number:
    after a rotation's grace cleanup v1 is gone and v2+ is the nonce. The bootstrap
    never overwrites, so DONE names the current version (to be checked, not written).
    """
    current = state.current
    if current is not None:
        return Decision(
            action=Action.DONE,
            version=current.version,
            reason=f"v{current.version} is the current nonce (live: {_versions(state)}); "
            "the bootstrap creates nothing",
        )
    if not project_key:
        problem, fix = no_project_key(state.environment, region or "this region")
        return _refuse(problem, fix)
    return Decision(
        action=Action.PROCEED,
        version=1,
        reason=f"no nonce version exists in {state.environment}; creating v1",
    )


def decide_rotation(
    state: NonceState, from_version: int | None, rotation_id: str | None = None
) -> Decision:
    """May rotation ``rotation_id`` create v(from_version + 1) now?"""
    if rotation_id:
        done = state.by_rotation(rotation_id)
        if done is not None:
            return Decision(
                action=Action.DONE,
                version=done.version,
                other_version=done.rotated_from or done.version - 1,
                reason=f"rotation {rotation_id} already created v{done.version}",
            )
    return _decide_new_rotation(state, from_version)


def _decide_new_rotation(state: NonceState, from_version: int | None) -> Decision:
    """A rotation not run before: from the current version, when no other is in grace."""
    if from_version is not None:
        bad = _bad_version("from_version", from_version, state)
        if bad is not None:
            return bad
    current = state.current
    if current is None:
        return _no_nonce(state)
    if from_version is None:
        from_version = current.version
    prefix = parameter_prefix(state.environment)
    if state.get(from_version) is None:
        return _refuse(
            f"v{from_version} ({prefix}{from_version}) does not exist in {state.environment}; "
            f"live versions: {_versions(state)}",
            f"rotate from the current version: from_version={current.version} (or omit it)",
        )
    if state.grace is not None:
        return _earlier_rotation_pending(state.grace)
    if from_version != current.version:
        return _refuse(
            f"v{from_version} is not the current version (v{current.version})",
            f"rotate from the current version: from_version={current.version} (or omit it)",
        )
    return Decision(action=Action.PROCEED, version=from_version + 1, other_version=from_version)


def _earlier_rotation_pending(grace: Grace) -> Decision:
    """The refusal while an earlier rotation's old versions still exist."""
    old = ", ".join(f"v{n}" for n in grace.old_versions)
    until = format_time(grace.grace_until) if grace.grace_until else "an unknown time"
    who = f"rotation {grace.rotation_id}" if grace.rotation_id else "an earlier rotation"
    if not grace.ended:
        return _refuse(
            f"{who} is still in its grace period until {until} ({old} and "
            f"v{grace.new_version} are both live)",
            f"wait for the {CLEANUP_FLOW} run to delete {old} after {until}, or undo "
            f"that rotation with {ROTATION_FLOW} rollback=true",
        )
    return _refuse(
        f"the grace period of {who} ended at {until} but {old} still exist(s) next to "
        f"v{grace.new_version}",
        f"run the {CLEANUP_FLOW} flow (old_version={grace.old_versions[0]}, "
        f"rotation_id={grace.rotation_id}) first",
    )


def decide_cleanup(
    state: NonceState, old_version: int, rotation_id: str, force: bool = False
) -> Decision:
    """May the grace cleanup of rotation ``rotation_id`` delete v{old_version} now?"""
    bad = _bad_version("old_version", old_version, state)
    if bad is not None:
        return bad
    newer = state.by_rotation(rotation_id)
    if newer is None:
        return _refuse(
            f"no nonce version created by rotation {rotation_id} exists (live: "
            f"{_versions(state)}), so deleting v{old_version} could leave no valid nonce",
            "check whether that rotation was rolled back; run a new rotation if one is due",
        )
    expected = newer.rotated_from or newer.version - 1
    if old_version != expected:
        return _refuse(
            f"rotation {rotation_id} replaced v{expected} by v{newer.version}, not v{old_version}",
            f"run the cleanup with old_version={expected}",
        )
    if state.get(old_version) is None:
        return Decision(
            action=Action.DONE,
            version=old_version,
            other_version=newer.version,
            reason=f"v{old_version} is already deleted; v{newer.version} is the current nonce",
        )
    until = newer.grace_until
    if not force and until is not None and state.observed_at < until - CLEANUP_TOLERANCE:
        return _refuse(
            f"the grace period of rotation {rotation_id} lasts until {format_time(until)}; "
            f"v{old_version} must stay valid until then",
            "let the scheduled cleanup run delete it, or pass force=true to end the grace early",
        )
    return Decision(action=Action.PROCEED, version=old_version, other_version=newer.version)


def decide_rollback(state: NonceState, new_version: int, rotation_id: str) -> Decision:
    """May rotation ``rotation_id`` be undone by deleting v{new_version}?"""
    bad = _bad_version("new_version", new_version, state)
    if bad is not None:
        return bad
    if new_version == 1:
        return _refuse(
            "v1 is created by the nonce bootstrap, not by a rotation, and cannot be rolled back",
            "roll back the version a rotation created (v2 or later)",
        )
    target = state.get(new_version)
    if target is None:
        return _already_rolled_back(state, new_version)
    if target.rotation_id != rotation_id:
        made_by = (
            f"rotation {target.rotation_id}"
            if target.rotation_id
            else "no rotation (it has no rotation-id tag)"
        )
        return _refuse(
            f"v{new_version} was created by {made_by}, not by rotation {rotation_id}",
            "pass the rotation_id of the rotation that created it (its rotation-id tag)",
        )
    keep = target.rotated_from or new_version - 1
    if state.get(keep) is None:
        return _refuse(
            f"v{keep} no longer exists (the grace cleanup already deleted it); deleting "
            f"v{new_version} would leave no valid nonce",
            f"rotate forward instead: run {ROTATION_FLOW} from v{new_version}",
        )
    return Decision(action=Action.PROCEED, version=new_version, other_version=keep)


def _already_rolled_back(state: NonceState, new_version: int) -> Decision:
    """v{new_version} is gone: done, unless no version is left at all."""
    if not state.versions:
        return _no_nonce(state)
    return Decision(
        action=Action.DONE,
        version=new_version,
        other_version=state.current.version if state.current else None,
        reason=f"v{new_version} is already deleted; live versions: {_versions(state)}",
    )


def rollback_target(state: NonceState) -> Decision:
    """The rotation ``nonce-rotation rollback=true`` undoes: the newest version, while in grace."""
    grace = state.grace
    if grace is None or grace.rotation_id is None:
        return _refuse(
            f"no rotation is in its grace period in {state.environment} (live versions: "
            f"{_versions(state)}), so there is nothing to roll back",
            "a finished rotation cannot be undone; rotate forward instead",
        )
    return decide_rollback(state, grace.new_version, grace.rotation_id)
