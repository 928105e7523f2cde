"""Pure: which GitHub Actions secrets an environment needs and where each value comes from.

``AWS_ROLE_ARN_<ENV>`` and ``OPS_SNS_TOPIC_ARN_<ENV>`` are Terraform outputs of the
environment's workspace. ``TERRAFORM_STATE_BUCKET`` is the bucket of the S3 backend
the provisioner actually uses (backend.tf plus any backend overrides): that is where
the state lives. Every workspace keeps its state in that one bucket, so the name has
no environment suffix. The ``state_bucket_name`` output, which the deploy role's
policy is written against, must name the same bucket, or CI could not read state.

Values are ``SecretStr`` and never leave this module in clear text except through
``SecretToSet.plaintext()``, which only the client calls, to encrypt.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, SecretStr

from mirror_rollout.environments import Environment
from mirror_rollout.errors import ConfigError

#: Output the deploy role's state-read policy is written against (main.tf local).
STATE_BUCKET_OUTPUT = "state_bucket_name"
REPO = re.compile(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+")
BACKEND_SOURCE = 'backend "s3" bucket (infra/terraform/backend.tf)'


class SecretSource(BaseModel):
    """One secret's name (with ``{ENV}`` for the environment) and the output it comes from."""

    name: str
    output: str | None = None  # None: the S3 backend's bucket

    def secret_name(self, environment: Environment) -> str:
        return self.name.format(ENV=environment.upper())


SOURCES: tuple[SecretSource, ...] = (
    SecretSource(name="AWS_ROLE_ARN_{ENV}", output="github_deploy_role_arn"),  # OIDC deploy role
    SecretSource(name="OPS_SNS_TOPIC_ARN_{ENV}", output="sns_topic_arn"),  # ops-alerts topic
    SecretSource(name="TERRAFORM_STATE_BUCKET"),  # one bucket for all workspaces: no suffix
)


class SecretToSet(BaseModel):
    name: str
    output: str | None  # None: the S3 backend's bucket
    value: SecretStr | None = None  # None: the output is not in the state (yet)

    @property
    def source(self) -> str:
        return f"terraform output {self.output}" if self.output else BACKEND_SOURCE

    @property
    def ready(self) -> bool:
        return self.value is not None

    def plaintext(self) -> str:
        if self.value is None:
            raise ValueError(f"{self.name} has no value")  # require_values() runs first
        return self.value.get_secret_value()


def _text(value: Any) -> SecretStr | None:
    """A usable secret value: a non-empty string, else None (missing)."""
    if isinstance(value, str) and value.strip():
        return SecretStr(value)
    return None


def check_state_bucket(outputs: dict[str, Any], backend_bucket: str) -> None:
    """The backend bucket and the ``state_bucket_name`` output must agree (when it exists).

    The message names neither value: they are secret values here.
    """
    declared = outputs.get(STATE_BUCKET_OUTPUT)
    if declared is not None and declared != backend_bucket:
        raise ConfigError(
            f"the S3 backend's bucket differs from output {STATE_BUCKET_OUTPUT}, which the "
            "deploy role's state-read policy grants: CI could not read the state",
            "make local.state_bucket_name in infra/terraform/main.tf name the backend bucket "
            "(or fix the backend config), apply, and run again",
        )


def secrets_for(
    environment: Environment | str, outputs: dict[str, Any], backend_bucket: str
) -> list[SecretToSet]:
    """The secrets of ``environment``, each with its value from ``outputs`` / the backend."""
    env = environment
    check_state_bucket(outputs, backend_bucket)
    return [
        SecretToSet(
            name=spec.secret_name(env),
            output=spec.output,
            value=_text(outputs.get(spec.output) if spec.output else backend_bucket),
        )
        for spec in SOURCES
    ]


def require_values(secrets: list[SecretToSet], environment: str) -> None:
    """Refuse to set anything while one value is missing: all three belong together."""
    missing = [s for s in secrets if not s.ready]
    if missing:
        named = ", ".join(f"{s.name} ({s.source})" for s in missing)
        raise ConfigError(
            f"not in the {environment} state: {named}; nothing was set",
            f"apply {environment} first (mirror-rollout rehearse --env {environment}); "
            "a sensitive output is not read, keep these outputs non-sensitive",
        )


def check_repo(repo: str) -> str:
    if not REPO.fullmatch(repo):
        raise ConfigError(
            f"repository {repo!r} is not OWNER/NAME", "pass e.g. --repo PhaseMirror/Phase-Mirror"
        )
    return repo
