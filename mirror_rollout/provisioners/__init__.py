"""One provisioner for both backends: the Terraform CLI with the real provider.

On the sandbox, the same Terraform runs against moto: the working copy gets a
generated ``sandbox_override.tf`` and the S3 backend is pointed at moto.
"""

from __future__ import annotations

import os
from pathlib import Path

from mirror_rollout.environments import Environment, terraform_dir
from mirror_rollout.provisioners.terraform_cli import TerraformCli


def sandbox_role_arn(environment: Environment) -> str | None:
    """On the sandbox, the role whose account holds ``environment`` (None: the default account)."""
    from mirror_rollout.aws import sandbox_account
    from mirror_rollout.provisioners.sandbox_override import SANDBOX_ROLE

    account = sandbox_account(environment)
    return f"arn:aws:iam::{account}:role/{SANDBOX_ROLE}" if account else None


# The two switches are keyword-only: they only tell a run's later steps from its plan.
def terraform_for(
    environment: Environment,
    backend: str,
    root: Path,
    work_dir: Path,
    *,
    bootstrap_state: bool = True,
    keep_copy: bool = False,
) -> TerraformCli:
    """Terraform for ``environment`` in a working copy at ``work_dir`` (created or refreshed).

    ``backend`` "sandbox" reads the moto endpoint from AWS_ENDPOINT_URL (already
    checked to be loopback), makes sure the state bucket and lock table exist there
    (unless ``bootstrap_state`` is False: a later step of a run whose plan did it),
    and writes the override; "aws" runs Terraform exactly as an operator would.
    ``keep_copy``: an existing working copy is used as it is (see TerraformCli).
    """
    if backend != "sandbox":
        return TerraformCli(
            environment, root=root, work_dir=work_dir, backend=backend, keep_copy=keep_copy
        )
    from mirror_rollout.aws import new_session
    from mirror_rollout.provisioners import sandbox_override as so
    from mirror_rollout.provisioners.state_backend import bootstrap, read_backend

    source = terraform_dir(root)
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    spec = read_backend(source)
    if spec is not None and bootstrap_state:
        bootstrap(new_session(), spec)
    raw = so.read_root(source)
    return TerraformCli(
        environment,
        root=root,
        work_dir=work_dir,
        backend_config=so.backend_config(endpoint) if spec is not None else None,
        override=so.render_override(raw, endpoint, assume_role_arn=sandbox_role_arn(environment)),
        gaps=so.sandbox_gaps(raw),
        backend=backend,
        keep_copy=keep_copy,
    )


def make_provisioner(settings, work_dir: Path, *, first_step: bool = False) -> TerraformCli:
    """Terraform for a rollout's settings (environment, backend, root).

    Only a run's ``first_step`` (its plan) bootstraps the sandbox's state backend and
    copies the root; the steps after it use the bucket, lock table and working copy that
    plan used (steps running side by side never copy it at once, and an edit of infra/
    during the run does not change what the re-plan checks).
    """
    return terraform_for(
        settings.environment,
        settings.backend,
        settings.root,
        work_dir,
        bootstrap_state=first_step,
        keep_copy=not first_step,
    )
