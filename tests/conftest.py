"""Shared fixtures: one real sandbox (moto, GCS emulator, Prefect) per test session.

Tests talk to these servers over HTTP through the standard variables
(AWS_ENDPOINT_URL, STORAGE_EMULATOR_HOST, PREFECT_API_URL); nothing is patched.

With MIRROR_ROLLOUT_TEST_REUSE_SANDBOX=1 an already-running sandbox (found from
the usual MIRROR_ROLLOUT_* variables / defaults) is used if all its health checks
pass; it is then left running at the end.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import NamedTuple

import pytest

from mirror_rollout import sandbox as sb


class RunningSandbox(NamedTuple):
    config: sb.SandboxConfig
    exports: dict[str, str]
    reused: bool


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports the kernel reports free (bound to port 0 together)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def fresh_config(state_dir: Path) -> sb.SandboxConfig:
    """A config on free ports in ``state_dir``, independent of the caller's env."""
    moto, gcs, prefect = free_ports(3)
    return sb.SandboxConfig.resolve(
        state_dir=state_dir, moto_port=moto, gcs_port=gcs, prefect_port=prefect, env={}
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: starts its own sandbox servers (runs by default)")


#: The files that run whole rollouts with Terraform, longest first (measured): handed out
#: first, the two workers of `make test` finish at about the same time.
LONGEST_FIRST = (
    "test_rollout_flow.py",
    "test_scripts.py",
    "test_faults.py",
    "test_terraform_faults.py",
    "test_concurrency.py",
    "test_drift.py",
    "test_bad_input.py",
    "test_nonce.py",
    "test_terraform_fidelity.py",
    "test_deployments.py",
    "test_nonce_ownership.py",
    "test_terraform_cli.py",
    "test_browser_approval.py",
    "test_github_secrets.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first (stable otherwise): `--dist loadfile` hands them out in this order.

    The modules sharing one applied staging come together, as one unit of work (below).
    """
    from tests.applied import SHARED_STAGING_MODULES

    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    shared = min(rank.get(name, len(rank)) for name in SHARED_STAGING_MODULES)
    items.sort(
        key=lambda item: (
            shared
            if item.path.name in SHARED_STAGING_MODULES
            else rank.get(item.path.name, shared + 1)
        )
    )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadfile`, except that the modules sharing one applied staging go to one worker.

    Applied once (about 30 s of Terraform), the environment then serves each of them in turn
    (tests.applied.shared_staging).
    """
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    from tests.applied import SHARED_STAGING_MODULES

    class SharedStagingScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return "shared-staging" if scope.rsplit("/", 1)[-1] in SHARED_STAGING_MODULES else scope

    return SharedStagingScheduling(config, log)


@pytest.fixture
def fresh_sandbox_config(tmp_path: Path) -> sb.SandboxConfig:
    """A config of an own sandbox (free ports, temp state dir), not yet started."""
    return fresh_config(tmp_path / "sandbox-state")


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    reused = False
    if os.environ.get("MIRROR_ROLLOUT_TEST_REUSE_SANDBOX") == "1":
        config = sb.SandboxConfig.resolve()
        reused = all(s.healthy for s in sb.status(config))
    if not reused:
        config = fresh_config(tmp_path_factory.mktemp("sandbox"))
        try:
            sb.up(config)
        except BaseException:
            sb.down(config)  # up leaves the servers that did come up running
            raise
    previous = sb.activate(config)
    try:
        yield RunningSandbox(config, sb.exports(config), reused)
    finally:
        sb.restore_env(previous)
        if not reused:
            sb.down(config)


@pytest.fixture
def infra(tmp_path: Path):
    """A copy of infra/ under tmp_path; ``infra.root`` is the project root to pass on."""
    from tests.infra_copy import InfraCopy

    return InfraCopy(tmp_path)


@pytest.fixture(scope="session")
def prefect_api(sandbox):
    """Point Prefect at the sandbox's server (settings are read when prefect is imported)."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    with temporary_settings(
        updates={
            PREFECT_API_URL: sandbox.exports["PREFECT_API_URL"],
            # The sandbox API refuses calls without its basic-auth string.
            PREFECT_API_AUTH_STRING: sandbox.exports["PREFECT_API_AUTH_STRING"],
        }
    ):
        yield sandbox.exports["PREFECT_API_URL"]
        # Send the last run logs while the server is still up.
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()


def reset_moto() -> None:
    """Forget every AWS resource in the sandbox's moto (its own /moto-api/reset).

    Terraform's state bucket and lock table go too; they are bootstrapped again,
    as `sandbox up` does, so the next plan starts from an empty workspace.
    """
    import urllib.request

    import boto3

    from mirror_rollout.provisioners.state_backend import BackendSpec, bootstrap
    from tests.applied import moto_was_reset

    request = urllib.request.Request(
        os.environ["AWS_ENDPOINT_URL"] + "/moto-api/reset", method="POST"
    )
    urllib.request.urlopen(request, timeout=10).read()
    moto_was_reset()
    bootstrap(boto3.session.Session(), BackendSpec())


@pytest.fixture
def clean_aws(sandbox):
    reset_moto()
    return sandbox


@pytest.fixture
def rollout(prefect_api, clean_aws, tmp_path):
    """Run infra-rollout with outputs under tmp_path; short approval timeout."""
    from tests.rollout_run import run_rollout

    def run(answer, **params):
        params.setdefault("approval_timeout_seconds", 60)
        return run_rollout(answer, out_dir=str(tmp_path / "out"), **params)

    return run
