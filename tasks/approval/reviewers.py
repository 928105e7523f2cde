"""The reviewer registry (deployments/reviewers.yaml): who may approve which environment.

Each environment lists its reviewers (display name + Ed25519 public key) and
whether unregistered, unsigned approvals are allowed (staging may; production
never). On the sandbox backend only, the sandbox's own auto-reviewers (keys made
by `mirror-rollout sandbox up`, listed in the file named by
MIRROR_ROLLOUT_SANDBOX_REVIEWERS) are added: auto-approval exists nowhere else.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.errors import ConfigError
from mirror_rollout.reviewer_keys import (
    decode_public_key,
    display_name,
    encode_public_key,
    fingerprint,
    same_name,
)
from mirror_rollout.target import rules_for

REGISTRY_PATH = Path("deployments") / "reviewers.yaml"
SANDBOX_REVIEWERS_ENV = "MIRROR_ROLLOUT_SANDBOX_REVIEWERS"


class Reviewer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, max_length=64)
    public_key: str

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        value = display_name(value)
        if not value or not value.isprintable():
            raise ValueError("a name must be printable text on one line")
        return value

    @field_validator("public_key")
    @classmethod
    def _ed25519(cls, value: str) -> str:
        decode_public_key(value)
        return value.strip()

    @property
    def key(self) -> bytes:
        return decode_public_key(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)


def _distinct(reviewers: list[Reviewer]) -> list[Reviewer]:
    for i, a in enumerate(reviewers):
        for b in reviewers[:i]:
            if same_name(a.name, b.name):
                raise ValueError(f"reviewers {b.name!r} and {a.name!r} have names that look alike")
            if a.key == b.key:
                raise ValueError(f"reviewers {b.name!r} and {a.name!r} share one public key")
    return reviewers


class EnvironmentReviewers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Approvals by people not in ``reviewers``, without a signature, are accepted.
    allow_unsigned: bool = False
    reviewers: list[Reviewer] = Field(default_factory=list)

    @field_validator("reviewers")
    @classmethod
    def _distinct_reviewers(cls, value: list[Reviewer]) -> list[Reviewer]:
        return _distinct(value)

    def find(self, name: str) -> Reviewer | None:
        """The registered reviewer whose name is (or looks like) ``name``."""
        return next((r for r in self.reviewers if same_name(r.name, name)), None)


class ReviewerRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    environments: dict[str, EnvironmentReviewers] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _production_is_signed(self) -> ReviewerRegistry:
        for name, reviewers in self.environments.items():
            if reviewers.allow_unsigned and not rules_for(name).unsigned_approvals_allowed:
                raise ValueError(
                    f"environments.{name}.allow_unsigned: {name} never accepts unsigned approvals"
                )
        return self

    def of(self, environment: str) -> EnvironmentReviewers:
        """An environment not in the file has no reviewers and needs signatures."""
        return self.environments.get(environment, EnvironmentReviewers())


class SandboxReviewers(BaseModel):
    """The sandbox's auto-reviewers (valid for every environment, on the sandbox only)."""

    model_config = ConfigDict(extra="forbid")

    reviewers: list[Reviewer] = Field(default_factory=list)


def _load_yaml(path: Path, model: type[BaseModel], fix: str):
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"no reviewer registry at {path}", fix) from None
    except (OSError, yaml.YAMLError) as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where else ""
        raise ConfigError(f"{path} is not valid YAML{at}", fix) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "top level"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{path}: {field}: {message}", fix) from None


def load_registry(root: Path) -> ReviewerRegistry:
    """The root's own registry, else this project's: a root given with ``--root`` need only
    hold infra/terraform, and who may approve is the rollout tool's setting."""
    path = root / REGISTRY_PATH
    if not path.is_file() and (PROJECT_ROOT / REGISTRY_PATH).is_file():
        path = PROJECT_ROOT / REGISTRY_PATH
    return _load_yaml(
        path,
        ReviewerRegistry,
        f"fix {path} (see deployments/README.md; `mirror-rollout reviewer new NAME` prints an entry)",
    )


def sandbox_reviewers_file(env: dict[str, str] | None = None) -> Path | None:
    value = (os.environ if env is None else env).get(SANDBOX_REVIEWERS_ENV, "").strip()
    return Path(value) if value else None


def reviewers_for(environment: str, backend: str, root: Path) -> EnvironmentReviewers:
    """Who may approve ``environment`` on ``backend``: the registry, plus the sandbox's own
    auto-reviewers on the sandbox backend only."""
    policy = load_registry(root).of(environment)
    sandbox_file = sandbox_reviewers_file()
    if backend != "sandbox" or sandbox_file is None:
        return policy
    sandbox = _load_yaml(
        sandbox_file,
        SandboxReviewers,
        "restart the sandbox (mirror-rollout sandbox up) and eval its exports",
    )
    try:
        return EnvironmentReviewers(
            allow_unsigned=policy.allow_unsigned, reviewers=[*policy.reviewers, *sandbox.reviewers]
        )
    except ValidationError as exc:
        raise ConfigError(
            f"the sandbox reviewers in {sandbox_file} clash with deployments/reviewers.yaml: "
            + exc.errors()[0]["msg"].removeprefix("Value error, "),
            "rename the registered reviewer; sandbox-auto names are reserved",
        ) from None


def registry_entry(name: str, public_key: bytes) -> str:
    """The YAML lines to add under an environment's ``reviewers:``."""
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'      - name: "{quoted}"\n'
        f"        public_key: {encode_public_key(public_key)}  # {fingerprint(public_key)}\n"
    )
