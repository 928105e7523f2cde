"""A Terraform root module read from disk: its declarations, not yet evaluated."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2.rules import base, containers, expressions
from hcl2.rules.base import AttributeRule, BlockRule, BodyRule
from lark.exceptions import LarkError, UnexpectedInput

from mirror_rollout.errors import ConfigError
from mirror_rollout.hcl.expressions import EvalError, Evaluator, _traversal, line_of

#: Resource arguments Terraform itself interprets rather than the provider.
META_ARGUMENTS = frozenset(
    {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner", "connection"}
)


def parse_file(path: Path) -> base.StartRule:
    """Parse one .tf/.tfvars file; a syntax error becomes one line with file:line:column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", "check the path") from None
    try:
        return hcl2.parses(text)
    except UnexpectedInput as exc:
        token = getattr(exc, "token", None)
        if token is not None and token.type == "$END":
            what = "unexpected end of file (an unclosed brace, bracket or quote?)"
        elif token is not None:
            what = f"unexpected {str(token).strip()[:30]!r}"
        else:
            what = f"unexpected character {getattr(exc, 'char', '?')!r}"
        raise ConfigError(
            f"{path}:{exc.line}:{exc.column}: syntax error: {what}",
            "fix the HCL at that position",
        ) from None
    except (LarkError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot parse: {exc}", "fix the HCL in that file") from None


def _label(rule: Any) -> str:
    value = rule.serialize()
    return value[1:-1] if isinstance(value, str) and value.startswith('"') else str(value)


@dataclass
class Located:
    file: Path
    line: int | None

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)


@dataclass
class Variable(Located):
    name: str
    type_rule: Any = None
    default_rule: Any = None
    validations: list[tuple[Any, Any]] = field(default_factory=list)
    sensitive: bool = False
    description: str = ""


@dataclass
class Lifecycle:
    ignore_changes: list[str] = field(default_factory=list)
    prevent_destroy: bool = False
    create_before_destroy: bool = False


@dataclass
class Resource(Located):
    """A ``resource`` or ``data`` block."""

    mode: str  # "managed" or "data"
    type: str
    name: str
    body: BodyRule = None  # type: ignore[assignment]
    count_rule: Any = None
    for_each_rule: Any = None
    depends_on: list[str] = field(default_factory=list)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    provider: str | None = None

    @property
    def address(self) -> str:
        prefix = "data." if self.mode == "data" else ""
        return f"{prefix}{self.type}.{self.name}"


@dataclass
class Output(Located):
    name: str
    value_rule: Any = None
    sensitive: bool = False


@dataclass
class Module:
    directory: Path
    variables: dict[str, Variable] = field(default_factory=dict)
    locals: dict[str, tuple[Any, Located]] = field(default_factory=dict)
    resources: list[Resource] = field(default_factory=list)
    outputs: dict[str, Output] = field(default_factory=dict)
    backend: tuple[str, dict[str, Any]] | None = None
    required_providers: dict[str, Any] = field(default_factory=dict)
    providers: list[tuple[str, BodyRule, Located]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def resource(self, address: str) -> Resource:
        for res in self.resources:
            if res.address == address:
                return res
        raise KeyError(address)

    @property
    def managed(self) -> list[Resource]:
        return [r for r in self.resources if r.mode == "managed"]


def attributes(body: BodyRule) -> dict[str, AttributeRule]:
    return {str(c.identifier.token.value): c for c in body.children if isinstance(c, AttributeRule)}


def blocks(body: BodyRule, kind: str | None = None) -> list[BlockRule]:
    return [
        c
        for c in body.children
        if isinstance(c, BlockRule) and (kind is None or _label(c.labels[0]) == kind)
    ]


def _constant(rule: Any, where: Located) -> Any:
    try:
        return Evaluator({}).eval(rule)
    except EvalError as exc:
        raise ConfigError(
            f"{where.file}:{exc.line or where.line}: {exc.message}", "use a literal value here"
        ) from None


def _traversal_list(rule: Any, where: Located, what: str) -> list[str]:
    expr = rule.expression if isinstance(rule, expressions.ExprTermRule) else rule
    if not isinstance(expr, containers.TupleRule):
        raise ConfigError(f"{where.where()}: {what} must be a list", f"write {what} = [ ... ]")
    out = []
    for element in expr.elements:
        chain = _traversal(element)
        if chain is None:
            raise ConfigError(
                f"{where.where()}: {what} entries must be plain references", "remove the expression"
            )
        out.append(".".join(chain))
    return out


def load_module(directory: Path) -> Module:
    """Read every ``*.tf`` file of ``directory`` (not evaluated)."""
    directory = Path(directory)
    files = sorted(directory.glob("*.tf"))
    if not files:
        raise ConfigError(
            f"no .tf files in {directory}",
            "point --root at a checkout whose infra/terraform holds the Terraform root module",
        )
    module = Module(directory=directory, files=files)
    for path in files:
        tree = parse_file(path)
        for block in blocks(tree.body):
            _add_block(module, path, block)
    return module


def _add_block(module: Module, path: Path, block: BlockRule) -> None:
    kind = _label(block.labels[0])
    labels = [_label(label) for label in block.labels[1:]]
    where = Located(path, line_of(block))
    body = block.body
    if kind == "variable":
        attrs = attributes(body)
        var = Variable(path, where.line, name=labels[0])
        var.type_rule = attrs["type"].expression if "type" in attrs else None
        var.default_rule = attrs["default"].expression if "default" in attrs else None
        if "sensitive" in attrs:
            var.sensitive = bool(_constant(attrs["sensitive"].expression, where))
        if "description" in attrs:
            var.description = str(_constant(attrs["description"].expression, where))
        for validation in blocks(body, "validation"):
            vattrs = attributes(validation.body)
            var.validations.append(
                (vattrs["condition"].expression, vattrs["error_message"].expression)
            )
        module.variables[var.name] = var
    elif kind == "locals":
        for name, attr in attributes(body).items():
            if name in module.locals:
                raise ConfigError(
                    f"{where.where()}: local.{name} is defined twice", "remove one definition"
                )
            module.locals[name] = (attr.expression, Located(path, line_of(attr)))
    elif kind in ("resource", "data"):
        res = Resource(
            path,
            where.line,
            mode="managed" if kind == "resource" else "data",
            type=labels[0],
            name=labels[1],
            body=body,
        )
        attrs = attributes(body)
        res.count_rule = attrs["count"].expression if "count" in attrs else None
        res.for_each_rule = attrs["for_each"].expression if "for_each" in attrs else None
        if res.count_rule is not None and res.for_each_rule is not None:
            raise ConfigError(
                f"{where.where()}: {res.address} sets both count and for_each", "use one of them"
            )
        if "depends_on" in attrs:
            res.depends_on = _traversal_list(attrs["depends_on"].expression, where, "depends_on")
        if "provider" in attrs:
            chain = _traversal(attrs["provider"].expression)
            res.provider = ".".join(chain) if chain else None
        for lifecycle in blocks(body, "lifecycle"):
            lattrs = attributes(lifecycle.body)
            if "ignore_changes" in lattrs:
                res.lifecycle.ignore_changes = _traversal_list(
                    lattrs["ignore_changes"].expression, where, "ignore_changes"
                )
            if "prevent_destroy" in lattrs:
                res.lifecycle.prevent_destroy = bool(
                    _constant(lattrs["prevent_destroy"].expression, where)
                )
            if "create_before_destroy" in lattrs:
                res.lifecycle.create_before_destroy = bool(
                    _constant(lattrs["create_before_destroy"].expression, where)
                )
        for nested in blocks(body, "dynamic"):
            raise ConfigError(
                f"{path}:{line_of(nested)}: {res.address}: dynamic blocks are not supported by the sandbox engine",
                "write the nested blocks out",
            )
        if any(r.address == res.address for r in module.resources):
            raise ConfigError(
                f"{where.where()}: {res.address} is declared twice", "rename one of them"
            )
        module.resources.append(res)
    elif kind == "output":
        attrs = attributes(body)
        out = Output(path, where.line, name=labels[0], value_rule=attrs["value"].expression)
        if "sensitive" in attrs:
            out.sensitive = bool(_constant(attrs["sensitive"].expression, where))
        module.outputs[out.name] = out
    elif kind == "terraform":
        for backend in blocks(body, "backend"):
            config = {
                name: _constant(a.expression, where) for name, a in attributes(backend.body).items()
            }
            module.backend = (_label(backend.labels[1]), config)
        for providers in blocks(body, "required_providers"):
            module.required_providers = {
                name: _constant(a.expression, where)
                for name, a in attributes(providers.body).items()
            }
    elif kind == "provider":
        module.providers.append((labels[0], body, where))
    elif kind == "module":
        raise ConfigError(
            f"{where.where()}: module blocks are not supported by the sandbox engine",
            "inline the module's resources",
        )
    # moved/import/check blocks carry no desired state for the engine.
