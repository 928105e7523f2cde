"""Files only the sandbox's owner can read: its keys, auth string and state live here."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically by ``text``, mode 0600 in a 0700 directory."""
    private_dir(path.parent)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        fh.write(text)
    os.replace(temporary, path)


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (0700), however it was made before."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path
