"""How clients reach the sandbox: its AWS key pair, the Prefect API's auth string and the
variables that point boto3, google-cloud-storage and Prefect at the loopback servers.

Clients find the servers through the standard variables of :func:`exports`
(``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``, ``PREFECT_API_URL``...); nothing
else in the project needs to know it runs against the sandbox.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import string
from collections.abc import Mapping

from mirror_rollout.aws import LOOPBACK
from mirror_rollout.errors import ConfigError
from mirror_rollout.sandbox.config import GCP_PROJECT, SandboxConfig
from mirror_rollout.sandbox.private import write_private
from mirror_rollout.sandbox.reviewers import auto_reviewers

#: Variables ``activate`` sets to the sandbox's own loopback servers (whatever they were).
SANDBOX_SETS = ("AWS_ENDPOINT_URL", "STORAGE_EMULATOR_HOST")

#: Variables that would point clients back at real accounts; ``activate`` drops them.
CONFLICTING_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "PREFECT_API_KEY")


def credentials(config: SandboxConfig) -> tuple[str, str]:
    """This sandbox's AWS key pair, made once and kept (0600) in its state dir.

    moto accepts any key; distinct random values (not "testing") let the secrets
    scan prove that credentials never reach logs, artifacts or state.
    """
    path = config.state_dir / "credentials.json"
    try:
        stored = json.loads(path.read_text())
        return stored["access_key_id"], stored["secret_access_key"]
    except (FileNotFoundError, ValueError, KeyError):
        pass
    alphabet = string.ascii_uppercase + string.digits
    key_id = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    secret = secrets.token_urlsafe(30)
    write_private(path, json.dumps({"access_key_id": key_id, "secret_access_key": secret}))
    return credentials(config)  # whichever writer won a race


def api_auth_string(config: SandboxConfig) -> str:
    """The sandbox Prefect API's basic-auth string ("sandbox:<random>"), made once, kept 0600.

    The server requires it (PREFECT_SERVER_API_AUTH_STRING), clients send it
    (PREFECT_API_AUTH_STRING) and the UI asks for it at login: nobody else on the
    machine can resume a paused rollout.
    """
    path = config.state_dir / "prefect-auth"
    with contextlib.suppress(FileNotFoundError):
        stored = path.read_text().strip()
        if stored:
            return stored
    write_private(path, f"sandbox:{secrets.token_urlsafe(24)}\n")
    return api_auth_string(config)


def api_headers(config: SandboxConfig) -> dict[str, str]:
    token = base64.b64encode(api_auth_string(config).encode()).decode()
    return {"Authorization": f"Basic {token}"}


def exports(config: SandboxConfig) -> dict[str, str]:
    """The variables a client (boto3, google-cloud-storage, Prefect) needs: loopback only."""
    if config.host not in LOOPBACK:
        raise ConfigError(f"sandbox host {config.host!r} is not loopback", "use 127.0.0.1")
    key_id, secret = credentials(config)
    return {
        "AWS_ENDPOINT_URL": config.url("moto"),
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": config.region,
        "AWS_REGION": config.region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "STORAGE_EMULATOR_HOST": config.url("gcs"),
        "GOOGLE_CLOUD_PROJECT": GCP_PROJECT,
        "PREFECT_API_URL": config.url("prefect"),
        "PREFECT_UI_URL": config.ui_url,
        "PREFECT_API_AUTH_STRING": api_auth_string(config),
        "MIRROR_ROLLOUT_SANDBOX_REVIEWERS": str(auto_reviewers(config)),
    }


def activate(config: SandboxConfig) -> dict[str, str | None]:
    """Point this process's clients at the sandbox.

    Returns the previous values (None = unset) so a caller can restore them.
    """
    previous: dict[str, str | None] = {}
    for key in CONFLICTING_ENV:
        if key in os.environ:
            previous[key] = os.environ.pop(key)
    for key, value in exports(config).items():
        previous.setdefault(key, os.environ.get(key))
        os.environ[key] = value
    return previous


def restore_env(previous: Mapping[str, str | None]) -> None:
    """Undo :func:`activate` with the mapping it returned."""
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
