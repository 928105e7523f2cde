"""The sandbox's auto-reviewers: Ed25519 keys that approve rehearsals on the sandbox only."""

from __future__ import annotations

import contextlib
from pathlib import Path

from mirror_rollout.errors import ConfigError
from mirror_rollout.sandbox.config import SandboxConfig
from mirror_rollout.sandbox.private import private_dir, write_private

#: Enough auto-reviewers for production's two distinct approvals.
AUTO_REVIEWERS = 2


def auto_reviewer_name(nth: int) -> str:
    """The nth auto-approval's reviewer: sandbox-auto, sandbox-auto-2 (refused off the sandbox)."""
    from mirror_rollout.reviewer_keys import AUTO_REVIEWER

    return AUTO_REVIEWER if nth <= 1 else f"{AUTO_REVIEWER}-{nth}"


def auto_reviewer_key_path(reviewers_file: Path, nth: int) -> Path:
    return reviewers_file.parent / "reviewer-keys" / f"{auto_reviewer_name(nth)}.key"


def auto_reviewers(config: SandboxConfig) -> Path:
    """This sandbox's auto-reviewers: Ed25519 keys (0600) made once, and the registry file
    (``reviewers.yaml`` in the state dir) that the flow trusts on the sandbox backend only.

    Auto-approval signs like a person does; it is not a bypass of the registry.
    """
    import yaml

    from mirror_rollout.reviewer_keys import encode_public_key, new_key, read_key, write_key

    registry = private_dir(config.state_dir) / "reviewers.yaml"
    entries = []
    for nth in range(1, AUTO_REVIEWERS + 1):
        path = auto_reviewer_key_path(registry, nth)
        if not path.exists():
            with contextlib.suppress(ConfigError):  # another process made it first
                write_key(path, new_key(auto_reviewer_name(nth)))
        key = read_key(path)
        entries.append({"name": key.reviewer, "public_key": encode_public_key(key.public_key)})
    text = yaml.safe_dump({"reviewers": entries}, sort_keys=False)
    if not registry.exists() or registry.read_text() != text:
        write_private(registry, text)
    return registry
