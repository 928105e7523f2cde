"""Read an environment's outputs and state bucket, then list its secrets or set them (no Prefect).

Shared by the Prefect task and the CLI; ``show`` is how each presents the report
(artifact or terminal table) before anything can fail after it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from mirror_rollout.environments import terraform_dir
from mirror_rollout.errors import ConfigError
from mirror_rollout.provisioners import make_provisioner
from mirror_rollout.provisioners.state_backend import read_backend
from mirror_rollout.settings import RolloutSettings
from tasks.github_secrets.client import DEFAULT_API, TOKEN_FIX, SecretsClient
from tasks.github_secrets.plan import check_repo, require_values, secrets_for
from tasks.github_secrets.report import (
    TOKEN_VARIABLE,
    SecretLine,
    SecretsReport,
    how_to_set,
    listed,
)


def token_from_env() -> SecretStr | None:
    """``GITHUB_TOKEN``, never a parameter or argument: those are stored and printed."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    return SecretStr(token) if token else None


def read_outputs(settings: RolloutSettings) -> tuple[dict[str, Any], str]:
    """The environment's current (non-sensitive) outputs and its state bucket.

    Terraform reads them in a throw-away working copy; the bucket is the one in the
    root's ``backend "s3"`` block, which is where ``init`` keeps the state.
    """
    source = terraform_dir(settings.root)
    spec = read_backend(source)
    with tempfile.TemporaryDirectory(prefix="mirror-rollout-outputs-") as work:
        outputs = make_provisioner(settings, Path(work) / "terraform").outputs()
    return outputs, spec.bucket if spec else ""


def github_secrets_of(
    settings: RolloutSettings,
    repo: str | None,
    token: SecretStr | None,
    api_base: str = DEFAULT_API,
    show: Callable[[SecretsReport], None] = lambda report: None,
) -> SecretsReport:
    """Set the secrets when given a repository and a token, else list them and say how."""
    env = settings.environment
    if repo:
        check_repo(repo)  # before reading any state
    outputs, bucket = read_outputs(settings)
    secrets = secrets_for(env, outputs, bucket)
    if not (repo and token):
        report = SecretsReport(
            environment=env,
            repo=repo,
            secrets=listed(secrets),
            next_steps=how_to_set(secrets, env, repo, token is not None, settings.backend),
        )
        show(report)
        if repo:  # the caller meant to set them
            raise ConfigError(
                f"repository {repo} given but {TOKEN_VARIABLE} is not set; nothing was set",
                f"{TOKEN_FIX}, or leave out the repository to only list",
            )
        return report
    require_values(secrets, env)  # all or nothing: a half-configured CI is worse than none
    with SecretsClient(repo, token, api_base) as client:
        done = client.set_all(secrets)
    report = SecretsReport(
        environment=env,
        repo=repo,
        applied=True,
        secrets=[SecretLine(name=s.name, source=s.source, status=done[s.name]) for s in secrets],
    )
    show(report)
    return report
