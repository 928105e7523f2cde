"""The raw structure of .tf files (python-hcl2), for what must be known before Terraform runs.

python-hcl2 8 keeps string literals and block labels with their quotes
(``'"main"'``) and references as ``"${...}"``; :func:`unquote` gives the text.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from pathlib import Path
from typing import Any

from mirror_rollout.errors import ConfigError


def unquote(value: Any) -> str:
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1]
    return text


#: python-hcl2 8 serializes with one shared, mutable SerializationContext (a default
#: argument its rules pass on implicitly): two threads serializing at once change each
#: other's output (string quotes kept, for one). Every serialization here takes turns.
_SERIALIZING = threading.Lock()


def serialize(node: Any, options: Any = None) -> Any:
    """``node.serialize(options)``, one thread at a time (see ``_SERIALIZING``)."""
    from hcl2.utils import SerializationOptions

    with _SERIALIZING:
        return node.serialize(options or SerializationOptions())


#: Parsed files by the sha256 of their text: every step of a run reads the same root,
#: and parsing is most of what reading it costs. Callers get a copy of their own.
_PARSED: dict[str, dict[str, Any]] = {}
_PARSED_MAX = 256


def load(path: Path) -> dict[str, Any]:
    """One file's raw structure; a syntax error is one ConfigError naming the file."""
    import hcl2
    from lark.exceptions import LarkError

    try:
        text = path.read_text(encoding="utf-8")
        key = hashlib.sha256(text.encode()).hexdigest()
        parsed = _PARSED.get(key)
        if parsed is None:
            parsed = serialize(hcl2.parses(text))
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[key] = parsed
        return copy.deepcopy(parsed)
    except (LarkError, ValueError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{path}: cannot be parsed: {first}", "fix the syntax (`terraform validate` shows it)"
        ) from None


def root_files(directory: Path) -> list[Path]:
    """The root's own .tf files (override files are merged by Terraform, not read here)."""
    return [
        p
        for p in sorted(directory.glob("*.tf"))
        if not (p.name.endswith("_override.tf") or p.name == "override.tf")
    ]
