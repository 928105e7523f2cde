"""Values of evaluated HCL: plain Python data plus a marker for unknowns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Unknown:
    """A value known only after apply (Terraform's "(known after apply)").

    ``ref`` keeps the reference it came from (``aws_kms_key.main.arn``) so that
    static checks can still tell *which* resource an attribute points at.
    """

    ref: str = ""
    #: For ``jsonencode`` of a structure with unknowns inside: the structure
    #: itself, so that static checks can still read a policy's shape.
    detail: Any = field(default=None, compare=False, hash=False)

    def __repr__(self) -> str:
        return f"(known after apply: {self.ref})" if self.ref else "(known after apply)"


def is_known(value: Any) -> bool:
    """True when ``value`` contains no Unknown anywhere inside it."""
    if isinstance(value, Unknown):
        return False
    if isinstance(value, dict):
        return all(is_known(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(is_known(v) for v in value)
    return True


def map_leaves(value: Any, fn) -> Any:
    """``value`` with ``fn`` applied to every non-container leaf."""
    if isinstance(value, dict):
        return {k: map_leaves(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [map_leaves(v, fn) for v in value]
    return fn(value)


def first_unknown(value: Any) -> Unknown | None:
    if isinstance(value, Unknown):
        return value
    items = (
        value.values()
        if isinstance(value, dict)
        else value
        if isinstance(value, list | tuple)
        else ()
    )
    for item in items:
        found = first_unknown(item)
        if found is not None:
            return found
    return None


class PartialObject(dict):
    """A resource's planned value: attributes not known yet read as Unknown.

    Reading an attribute the configuration does not set (``arn``, ``id``) gives
    ``Unknown("<address>.<attr>")`` until apply has produced it.
    """

    def __init__(self, address: str, data: dict[str, Any]):
        super().__init__(data)
        self.address = address

    def attr(self, name: str) -> Any:
        if name in self:
            return self[name]
        return Unknown(f"{self.address}.{name}")
