"""The Oracle's access patterns (infra/data-plane.yaml), read into typed models."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mirror_rollout import PROJECT_ROOT, contract
from mirror_rollout.errors import ConfigError

SPEC_PATH = Path("infra") / "data-plane.yaml"
AttrType = Literal["S", "N", "B", "BOOL", "M", "L"]
KEY_TYPES = ("S", "N", "B")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IndexSpec(Strict):
    name: str
    keys: dict[str, AttrType]
    projection: Literal["ALL", "KEYS_ONLY", "INCLUDE"] = "ALL"


class TableUse(Strict):
    env: str
    encryption: Literal["KMS", "DEFAULT"] = "KMS"


class AccessPattern(Strict):
    id: str
    adapter: str
    table: str
    operation: Literal["PutItem", "GetItem", "Query", "UpdateItem"]
    keys: dict[str, AttrType]
    index: IndexSpec | None = None
    ttl: str | None = None
    condition: str | None = None
    update: str | None = None
    writes: dict[str, AttrType] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> AccessPattern:
        keyed = {"keys": self.keys} | ({"index.keys": self.index.keys} if self.index else {})
        for what, keys in keyed.items():
            if not 1 <= len(keys) <= 2 or any(t not in KEY_TYPES for t in keys.values()):
                raise ValueError(
                    f"{what} must be a hash key and an optional range key, typed S, N or B"
                )
        missing = [k for k in self.keys if k not in self.writes]
        if missing:
            raise ValueError(f"writes lacks the key attribute(s) {', '.join(missing)}")
        if self.operation == "Query" and self.index is None:
            raise ValueError("a Query pattern names its index")
        if self.operation == "UpdateItem" and not self.update:
            raise ValueError("an UpdateItem pattern gives its update expression")
        return self

    @property
    def hash_key(self) -> str:
        return next(iter(self.keys))

    @property
    def range_key(self) -> str | None:
        return list(self.keys)[1] if len(self.keys) > 1 else None


class DataPlane(Strict):
    version: Literal[1]
    source: str
    tables: dict[str, TableUse]
    patterns: list[AccessPattern]

    @model_validator(mode="after")
    def _known_tables(self) -> DataPlane:
        known = {t.key for t in contract.TABLES}
        for name in self.tables:
            if name not in known:
                raise ValueError(
                    f"table {name!r} is not one of the contract's ({', '.join(sorted(known))})"
                )
        for p in self.patterns:
            if p.table not in self.tables:
                raise ValueError(f"pattern {p.id} uses table {p.table!r}, not listed under tables")
        return self


def load_data_plane(root: Path | None = None) -> DataPlane:
    """infra/data-plane.yaml of ``root``; a missing or malformed file is one ConfigError."""
    path = Path(root or PROJECT_ROOT) / SPEC_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read {SPEC_PATH}: {exc.strerror}",
            "restore infra/data-plane.yaml from the repository",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{SPEC_PATH} is not valid YAML: {exc}", "fix the YAML syntax") from None
    try:
        return DataPlane.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(
            f"{SPEC_PATH}: {where}: {first['msg']}",
            "see the comment at the top of infra/data-plane.yaml for the format",
        ) from None
