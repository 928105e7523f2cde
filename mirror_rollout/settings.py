"""Validated rollout parameters: bad input becomes one clear error before anything runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, Field, ValidationError, field_validator

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.aws import LOOPBACK
from mirror_rollout.environments import Environment, parse_environment
from mirror_rollout.errors import ConfigError

Backend = Literal["sandbox", "aws"]


class RolloutSettings(BaseModel):
    environment: Environment
    backend: Backend = "sandbox"
    approval_timeout_seconds: int = Field(3600, ge=5, le=7 * 86400)
    busy_wait_seconds: int = Field(3600, ge=0, le=7 * 86400)
    e2e_driver: Literal["local", "github"] = "local"
    root: Path = PROJECT_ROOT
    out_dir: Path | None = None

    @field_validator("root")
    @classmethod
    def _root_has_infra(cls, value: Path) -> Path:
        if not (value / "infra" / "terraform").is_dir():
            raise ValueError(f"{value} has no infra/terraform directory")
        return value

    def output_dir(self, run_name: str) -> Path:
        base = self.out_dir or (self.root / "out")
        return base / self.environment / run_name


def parse_settings(**values) -> RolloutSettings:
    """Build settings; any invalid value becomes one ConfigError naming the field and the fix."""
    settings = validate_settings(**values)
    check_endpoint_matches_backend(settings.backend)
    return settings


def validate_settings(**values) -> RolloutSettings:
    """The values alone, before any server is reached (what the CLI checks first)."""
    try:
        settings = RolloutSettings(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "value"
        given = first.get("input")
        allowed = {
            "environment": "the name of an infra/terraform/<name>.tfvars",
            "backend": "sandbox or aws",
            "approval_timeout_seconds": "a number of seconds from 5 to 604800",
            "busy_wait_seconds": "a number of seconds from 0 (fail at once) to 604800",
            "e2e_driver": "local or github",
        }.get(field, "a valid value")
        raise ConfigError(f"invalid {field} {given!r}: {first['msg']}", f"use {allowed}") from None
    parse_environment(settings.environment, settings.root)
    return settings


def check_endpoint_matches_backend(backend: str, env: dict[str, str] | None = None) -> None:
    """Never let a sandbox run reach AWS, or an AWS run talk to a local emulator."""
    env = os.environ if env is None else env
    endpoint = env.get("AWS_ENDPOINT_URL", "")
    host = urlparse(endpoint).hostname if endpoint else None
    if backend == "sandbox" and host not in LOOPBACK:
        raise ConfigError(
            "backend sandbox needs AWS_ENDPOINT_URL pointing at the local moto server"
            + (f" (it is {endpoint!r})" if endpoint else " (it is not set)"),
            "run `mirror-rollout sandbox up` and eval its exports, or use `mirror-rollout rehearse`",
        )
    if backend == "aws" and endpoint:
        raise ConfigError(
            f"backend aws but AWS_ENDPOINT_URL is set to {endpoint!r}",
            "unset AWS_ENDPOINT_URL to reach real AWS, or use --backend sandbox",
        )
