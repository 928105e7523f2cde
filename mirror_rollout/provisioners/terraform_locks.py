"""A command's own stale state lock: which one it is, and which commands may remove it.

A lock write the SDK retried after its first attempt had landed fails against the
lock it just created, and that lock is never released (a known S3-backend failure
mode, seen here under load: moto logs the first PutItem answered 200 and a second
one, a second later, 400).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

#: The lock operation each locking command writes into the lock's info.
_LOCK_OPERATIONS = {
    "workspace select or create": "init",
    "workspace new": "init",
    "plan": "OperationTypePlan",
    "re-plan": "OperationTypePlan",
    "apply": "OperationTypeApply",
    "import": "OperationTypeApply",
}

#: Commands whose own stale lock the runner removes: a command that failed to take its
#: lock changed nothing. (Applies run inside a rollout, which holds the environment's
#: slot, so no other apply of this environment can own a lock taken here after this one
#: started.)
RECOVERABLE_LOCKS = frozenset({"plan", "re-plan", "workspace select or create", "apply"})
#: How many times in a row one command may remove its own stale lock and run again.
OWN_LOCK_RECOVERIES = 3


def lock_owner() -> str:
    """``user@host`` as Terraform writes it into a lock's ``Who``."""
    import getpass
    import socket

    return f"{getpass.getuser()}@{socket.gethostname()}"


def own_lock(output: str, command: str, begun: datetime, owner: str) -> str | None:
    """Pure: the id of the lock ``command`` failed against, if that command took it itself.

    That is: Terraform's lock info names this command's operation and ``owner``, and
    the lock was created after ``begun`` (when the command started).
    """
    info = {}
    for line in output.replace("│", " ").splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key in ("ID", "Operation", "Who", "Created"):
            info[key] = value.strip()
    if "ConditionalCheckFailed" not in output or not info.get("ID"):
        return None
    if info.get("Operation") != _LOCK_OPERATIONS.get(command) or info.get("Who") != owner:
        return None
    match = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d+))?", info.get("Created", ""))
    if not match:
        return None
    created = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    created += timedelta(microseconds=int((match[2] or "0")[:6].ljust(6, "0")))
    # Same machine, same clock: a lock dated before the command began is someone else's.
    return info["ID"] if created >= begun else None


def recoverable_own_lock(output: str, command: str, begun: datetime) -> str | None:
    """The lock to remove before running ``command`` again, if it may remove it at all."""
    if command not in RECOVERABLE_LOCKS:
        return None
    return own_lock(output, command, begun, lock_owner())
