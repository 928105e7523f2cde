"""What the guardrails look at: the Terraform of both clouds, evaluated for one environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirror_rollout.hcl.config import Configuration, read_tfvars, resolve_variables
from mirror_rollout.hcl.module import Lifecycle, load_module

from mirror_rollout.environments import Environment, gcp_dir, terraform_dir


@dataclass
class ResourceView:
    address: str
    type: str
    file: str
    line: int | None
    config: dict[str, Any]
    lifecycle: Lifecycle = field(default_factory=Lifecycle)

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def block(self, name: str) -> dict[str, Any]:
        """The first nested block ``name`` (Terraform allows one of most), or {}."""
        value = self.config.get(name)
        return value[0] if isinstance(value, list) and value else {}


@dataclass
class InfraView:
    env: Environment
    aws: list[ResourceView]
    aws_variables: dict[str, Any]
    backend: tuple[str, dict[str, Any]] | None
    backend_file: str
    tfvars: dict[str, dict[str, Any]]  # file name -> raw values, for every environment
    tfvars_dir: str
    gcp: list[ResourceView] = field(default_factory=list)
    gcp_variables: dict[str, Any] = field(default_factory=dict)

    def of_type(self, rtype: str, cloud: str = "aws") -> list[ResourceView]:
        return [r for r in (self.aws if cloud == "aws" else self.gcp) if r.type == rtype]

    def get(self, address: str, cloud: str = "aws") -> ResourceView | None:
        for r in self.aws if cloud == "aws" else self.gcp:
            if r.address == address:
                return r
        return None


def _resources(config: Configuration, root: Path) -> list[ResourceView]:
    views = []
    for instance in config.all_instances():
        res = instance.resource
        views.append(
            ResourceView(
                address=instance.address,
                type=res.type,
                file=_relative(res.file, root),
                line=res.line,
                config=config.config(instance),
                lifecycle=res.lifecycle,
            )
        )
    return views


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def load_view(env: Environment, root: Path) -> InfraView:
    """Parse and evaluate infra/terraform and infra/gcp of ``root`` for ``env``.

    Raises ConfigError (one line, file and line number) on malformed input.
    """
    tf_dir = terraform_dir(root)
    module = load_module(tf_dir)
    tfvars = {p.name: read_tfvars(p) for p in sorted(tf_dir.glob("*.tfvars"))}
    variables = resolve_variables(module, [tf_dir / f"{env}.tfvars"])
    config = Configuration(module, variables, workspace=env)
    backend_file = next(
        (
            str(_relative(p, root))
            for p in module.files
            if "backend" in p.read_text(encoding="utf-8")
        ),
        "infra/terraform",
    )
    view = InfraView(
        env=env,
        aws=_resources(config, root),
        aws_variables=variables,
        backend=module.backend,
        backend_file=backend_file,
        tfvars=tfvars,
        tfvars_dir=_relative(tf_dir, root),
    )
    g_dir = gcp_dir(root)
    if g_dir.is_dir() and any(g_dir.glob("*.tf")):
        gmodule = load_module(g_dir)
        gvars_file = g_dir / f"{env}.tfvars"
        gvariables = resolve_variables(gmodule, [gvars_file] if gvars_file.exists() else [])
        view.gcp = _resources(Configuration(gmodule, gvariables, workspace=env), root)
        view.gcp_variables = gvariables
    return view
