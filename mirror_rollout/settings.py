"""Validated rollout parameters: bad input becomes one clear error before anything runs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator

from mirror_rollout import PROJECT_ROOT
from mirror_rollout.aws import LOOPBACK
from mirror_rollout.environments import Environment
from mirror_rollout.errors import ConfigError
from mirror_rollout.target import Backend, RolloutTarget, target_of


class RolloutSettings(BaseModel):
    """A flow's parameters; ``target`` is the part every task and client is handed."""

    environment: Environment
    backend: Backend = "sandbox"
    approval_timeout_seconds: int = Field(3600, ge=5, le=7 * 86400)
    busy_wait_seconds: int = Field(3600, ge=0, le=7 * 86400)
    e2e_driver: Literal["local", "github"] = "local"
    root: Path = PROJECT_ROOT
    out_dir: Path | None = None
    _target: RolloutTarget | None = PrivateAttr(None)

    @property
    def target(self) -> RolloutTarget:
        """Built (and validated: tfvars, region) once per run."""
        if self._target is None:
            self._target = target_of(self.environment, self.backend, self.root)
        return self._target

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
    settings.target  # noqa: B018 - builds the target: an unknown environment fails here
    return settings


def check_endpoint_matches_backend(backend: str, env: Mapping[str, str] | None = None) -> None:
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
    if backend == "sandbox":
        check_sandbox_isolation(env)
    if backend == "aws" and endpoint:
        raise ConfigError(
            f"backend aws but AWS_ENDPOINT_URL is set to {endpoint!r}",
            "unset AWS_ENDPOINT_URL to reach real AWS, or use --backend sandbox",
        )


#: Variables that send one service's calls elsewhere (botocore reads each of them).
SERVICE_ENDPOINT_PREFIX = "AWS_ENDPOINT_URL_"


def sandbox_leaks(env: Mapping[str, str], aws_config: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Everything that would send a sandbox run's calls anywhere but loopback (pure).

    ``aws_config`` is the shared config file's sections ("default", "profile NAME", …).
    botocore lets each of these win over AWS_ENDPOINT_URL for some or all services.
    """
    leaks = [
        f"{name} is set ({env[name]!r})"
        for name in sorted(env)
        if name.startswith(SERVICE_ENDPOINT_PREFIX) and env[name].strip()
    ]
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true":
        leaks.append(
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true (the sandbox endpoint would be ignored)"
        )
    for name in ("AWS_ENDPOINT_URL", "STORAGE_EMULATOR_HOST"):
        value = env.get(name, "").strip()
        if value and _host(value) not in LOOPBACK:
            leaks.append(f"{name} is not a loopback address ({value!r})")
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    section = aws_config.get("default" if profile == "default" else f"profile {profile}", {})
    for key in ("endpoint_url", "services"):
        if section.get(key, "").strip():
            leaks.append(f"AWS profile {profile!r} sets {key} ({section[key].strip()!r})")
    return leaks


def _host(value: str) -> str | None:
    # STORAGE_EMULATOR_HOST may be given without a scheme ("127.0.0.1:9023").
    return urlparse(value if "://" in value else f"http://{value}").hostname


def aws_config_sections(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The shared AWS config file (AWS_CONFIG_FILE or ~/.aws/config) as plain sections."""
    import configparser

    path = Path(env.get("AWS_CONFIG_FILE") or "~/.aws/config").expanduser()
    parser = configparser.RawConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        raise ConfigError(
            f"the AWS config file {path} cannot be parsed",
            "fix it, or point AWS_CONFIG_FILE at another file",
        ) from None
    return {name: dict(parser[name]) for name in parser.sections()}


def check_sandbox_isolation(env: Mapping[str, str] | None = None) -> None:
    """Refuse, before any AWS call, whatever would take a sandbox run off loopback."""
    env = os.environ if env is None else env
    leaks = sandbox_leaks(env, aws_config_sections(env))
    if leaks:
        raise ConfigError(
            "the sandbox would reach beyond loopback: " + "; ".join(leaks),
            "unset these variables (or pick a profile without endpoint_url/services) "
            "for sandbox runs: everything must go to the sandbox's own 127.0.0.1 servers",
        )
