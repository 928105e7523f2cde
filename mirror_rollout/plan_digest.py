"""The sha256 of a plan file: what a reviewer approves and what apply checks.

A ``PlanDigest`` is normalised once, when it is made (64 lowercase hex digits), so
comparing two of them is ``==``: nobody lowercases or re-validates one on the way from
plan to approval to apply. ``PlanDigest.of_file`` is the one place a plan is hashed.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from mirror_rollout.errors import ConfigError

_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class PlanDigest(str):
    """64 lowercase hex digits (upper case given is lowered, anything else refused)."""

    __slots__ = ()

    def __new__(cls, value: object) -> PlanDigest:
        text = str(value).strip().lower()
        if not _HEX64.fullmatch(text):
            raise ConfigError(
                f"{str(value)[:80]!r} is not a plan sha256 (64 hex digits)",
                "copy the sha256 from the run's plan artifact",
            )
        return super().__new__(cls, text)

    @classmethod
    def of_bytes(cls, data: bytes) -> PlanDigest:
        return cls(hashlib.sha256(data).hexdigest())

    @classmethod
    def of_file(cls, path: Path) -> PlanDigest:
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        return cls(digest.hexdigest())

    @property
    def short(self) -> str:
        """The first 12 digits, for messages (the artifact carries the whole digest)."""
        return f"{self[:12]}…"

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> Any:
        from pydantic_core import core_schema

        def validate(value: str) -> PlanDigest:
            try:
                return cls(value)
            except ConfigError as exc:  # pydantic reports ValueError as a validation error
                raise ValueError(exc.problem) from None

        return core_schema.no_info_after_validator_function(
            validate,
            core_schema.str_schema(),
            serialization=core_schema.to_string_ser_schema(),
        )
