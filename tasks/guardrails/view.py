"""What the static guardrails look at: the raw python-hcl2 structure of infra/, with file:line.

Nothing here evaluates Terraform: Terraform itself does that (the plan checks read
its plan JSON). A block's body is python-hcl2's structure of the source, strings
unquoted, expressions as ``"${...}"`` text (``"${aws_kms_key.main.arn}"``), nested
blocks as lists of dicts. Two small conveniences read that text without evaluating
it: ``references`` (the resource addresses an expression names, also through a
local) and ``resolve`` (a ``${var.x}`` / ``${local.y}`` that is a bare reference is
replaced by the tfvars value or the local's own text; anything else stays as is).

Line numbers: python-hcl2 8.1 declares ``SerializationOptions.with_meta`` but does
not emit ``__start_line__``; its rule nodes carry the parser's positions
(``propagate_positions``), read here once per block and argument.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import walk
from hcl2.rules.base import AttributeRule, BlockRule, BodyRule, StartRule
from hcl2.rules.functions import FunctionCallRule
from hcl2.utils import SerializationOptions
from lark.exceptions import LarkError, UnexpectedInput

from mirror_rollout.documents import strings
from mirror_rollout.environments import Environment, gcp_dir, terraform_dir
from mirror_rollout.errors import ConfigError
from mirror_rollout.provisioners.raw_hcl import serialize

OPTIONS = SerializationOptions(
    with_comments=False,
    explicit_blocks=False,
    strip_string_quotes=True,
    preserve_heredocs=False,
)

_MISSING = object()


# -- parsing -------------------------------------------------------------------------
def parse_file(path: Path, shown: str) -> StartRule:
    """Parse one .tf/.tfvars file; a syntax error becomes one ConfigError line with file:line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {shown}: {exc}", "check the file") from None
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
            f"{shown}:{exc.line}:{exc.column}: syntax error: {what}",
            "fix the HCL at that position",
        ) from None
    except (LarkError, RuntimeError, ValueError, TypeError) as exc:
        raise ConfigError(f"{shown}: cannot parse: {exc}", "fix the HCL in that file") from None


def _line(node: Any) -> int:
    return getattr(getattr(node, "_meta", None), "line", None) or 0


def _label(rule: Any) -> str:
    return str(serialize(rule, OPTIONS))


def _serialize(node: Any, shown: str) -> Any:
    try:
        return serialize(node, OPTIONS)
    except Exception as exc:  # python-hcl2 cannot represent some expression
        raise ConfigError(
            f"{shown}:{_line(node)}: cannot read this expression ({type(exc).__name__}: {exc})",
            "simplify the expression at that line",
        ) from None


def _lines(body: BodyRule, prefix: str, out: dict[str, int]) -> None:
    """Argument and nested-block paths ("ttl.enabled", "attribute[1].name") -> line."""
    seen: Counter[str] = Counter()
    for child in body.children:
        if isinstance(child, AttributeRule):
            out.setdefault(prefix + _label(child.identifier), _line(child))
        elif isinstance(child, BlockRule):
            name = _label(child.labels[0])
            path = prefix + (name if not seen[name] else f"{name}[{seen[name]}]")
            seen[name] += 1
            out.setdefault(path, _line(child))
            _lines(child.body, path + ".", out)


def _documents(body: BodyRule, shown: str) -> dict[str, Any]:
    """Arguments written as ``jsonencode({...})``: the structure of the encoded value."""
    documents = {}
    for child in body.children:
        if not isinstance(child, AttributeRule):
            continue
        text = _serialize(child.expression, shown)
        if not (isinstance(text, str) and text.replace(" ", "").startswith("${jsonencode(")):
            continue
        for call in walk.find_all(child, FunctionCallRule):
            if [_label(i) for i in call.identifiers] == ["jsonencode"] and call.arguments:
                documents[_label(child.identifier)] = _serialize(call.arguments.arguments[0], shown)
                break
    return documents


# -- what a block is -------------------------------------------------------------------
@dataclass
class Block:
    """One top-level block of a .tf file (resource, data, variable, locals, ...)."""

    kind: str
    labels: tuple[str, ...]
    file: str
    line: int
    body: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.labels[0] if self.labels else ""

    @property
    def name(self) -> str:
        return self.labels[1] if len(self.labels) > 1 else ""

    @property
    def address(self) -> str:
        base = f"{self.type}.{self.name}"
        return f"data.{base}" if self.kind == "data" else base

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    def at(self, path: str) -> str:
        """file:line of argument/nested block ``path`` (dotted), or of the closest enclosing one."""
        while path:
            if path in self.lines:
                return f"{self.file}:{self.lines[path]}"
            path = path.rpartition(".")[0]
        return self.location

    def get(self, name: str, default: Any = None) -> Any:
        return self.body.get(name, default)

    def blocks(self, name: str) -> list[dict[str, Any]]:
        value = self.body.get(name)
        return [b for b in value if isinstance(b, dict)] if isinstance(value, list) else []

    def block(self, name: str) -> dict[str, Any]:
        """The first nested block ``name`` (Terraform allows one of most), or {}."""
        found = self.blocks(name)
        return found[0] if found else {}

    def document(self, name: str) -> Any:
        """The structure of a JSON document argument (jsonencode(...) or a JSON string)."""
        if name in self.documents:
            return self.documents[name]
        value = self.body.get(name)
        if isinstance(value, str) and "${" not in value:
            try:
                return json.loads(value)
            except ValueError:
                return None
        return None

    def lifecycle(self) -> dict[str, Any]:
        return self.block("lifecycle")


@dataclass
class Tfvars:
    file: str
    values: dict[str, Any]
    lines: dict[str, int]

    def at(self, key: str) -> str:
        return f"{self.file}:{self.lines[key]}" if key in self.lines else self.file


@dataclass
class Module:
    """The .tf files of one directory, as blocks."""

    directory: str
    files: list[str]
    blocks: list[Block]

    @property
    def resources(self) -> list[Block]:
        return [b for b in self.blocks if b.kind == "resource"]

    @property
    def variables(self) -> dict[str, Block]:
        return {b.type: b for b in self.blocks if b.kind == "variable"}

    @property
    def locals(self) -> dict[str, tuple[Any, Block]]:
        found: dict[str, tuple[Any, Block]] = {}
        for b in self.blocks:
            if b.kind == "locals":
                found.update({k: (v, b) for k, v in b.body.items()})
        return found

    @property
    def backend(self) -> Block | None:
        return next((b for b in self.blocks if b.kind == "backend"), None)


def _blocks_of(tree: StartRule, shown: str) -> list[Block]:
    blocks = []
    for child in tree.body.children:
        if not isinstance(child, BlockRule):
            continue
        kind, *labels = (_label(label) for label in child.labels)
        lines: dict[str, int] = {}
        _lines(child.body, "", lines)
        blocks.append(
            Block(
                kind=kind,
                labels=tuple(labels),
                file=shown,
                line=_line(child),
                body=_serialize(child.body, shown),
                lines=lines,
                documents=_documents(child.body, shown) if kind == "resource" else {},
            )
        )
        if kind == "terraform":  # the backend block nests in terraform { }
            for nested in child.body.children:
                if isinstance(nested, BlockRule) and _label(nested.labels[0]) == "backend":
                    inner: dict[str, int] = {}
                    _lines(nested.body, "", inner)
                    blocks.append(
                        Block(
                            kind="backend",
                            labels=tuple(_label(label) for label in nested.labels[1:]),
                            file=shown,
                            line=_line(nested),
                            body=_serialize(nested.body, shown),
                            lines=inner,
                        )
                    )
    return blocks


def shown_path(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def load_module(directory: Path, root: Path) -> Module:
    files = sorted(directory.glob("*.tf"))
    if not files:
        raise ConfigError(
            f"{shown_path(directory, root)} holds no .tf file",
            "point --root at a mirror-rollout checkout",
        )
    blocks = []
    for path in files:
        shown = shown_path(path, root)
        blocks += _blocks_of(parse_file(path, shown), shown)
    return Module(shown_path(directory, root), [shown_path(p, root) for p in files], blocks)


def read_tfvars(path: Path, root: Path) -> Tfvars:
    shown = shown_path(path, root)
    tree = parse_file(path, shown)
    values = _serialize(tree.body, shown)
    lines: dict[str, int] = {}
    _lines(tree.body, "", lines)
    for child in tree.body.children:
        if isinstance(child, BlockRule):
            raise ConfigError(
                f"{shown}:{_line(child)}: a tfvars file holds only name = value lines",
                "remove the block",
            )
    return Tfvars(shown, values, lines)


# -- reading expressions without evaluating them --------------------------------------
_BARE = re.compile(
    r"\$\{\s*(?P<kind>var|local)\.(?P<name>[A-Za-z_][\w-]*)"
    r"(?P<path>(?:\.[A-Za-z_][\w-]*|\[\"[^\"]*\"\])*)\s*\}"
)
_ADDRESS = re.compile(
    r"(?<![\w.])(?P<address>(?:data\.)?[a-z][a-z0-9]*_[a-z0-9_]+\.[A-Za-z_][\w-]*)"
)
_LOCAL = re.compile(r"(?<![\w.])local\.(?P<name>[A-Za-z_][\w-]*)")


def interpolations(text: str) -> list[str]:
    """The ``${...}`` parts of a python-hcl2 string (nested braces balanced)."""
    parts, start = [], text.find("${")
    while start >= 0:
        depth, i = 0, start + 1
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        parts.append(text[start + 2 : i])
        start = text.find("${", i)
    return parts


@dataclass
class ModuleView:
    """A module read for one environment: its tfvars give the variables' values."""

    module: Module
    tfvars: Tfvars | None
    variables: dict[str, Any]  # tfvars value, else the declared default

    def of_type(self, rtype: str) -> list[Block]:
        return [r for r in self.module.resources if r.type == rtype]

    def get(self, address: str) -> Block | None:
        return next((r for r in self.module.resources if r.address == address), None)

    def var(self, name: str, default: Any = None) -> Any:
        return self.variables.get(name, default)

    def var_location(self, name: str) -> str:
        if self.tfvars is not None and name in self.tfvars.values:
            return self.tfvars.at(name)
        variable = self.module.variables.get(name)
        return variable.at("default") if variable else self.module.directory

    def _lookup(self, match: re.Match) -> Any:
        if match["kind"] == "var":
            value = self.variables.get(match["name"], _MISSING)
        else:
            value = self.module.locals.get(match["name"], (_MISSING, None))[0]
        for step in re.findall(r"\.([A-Za-z_][\w-]*)|\[\"([^\"]*)\"\]", match["path"]):
            key = step[0] or step[1]
            value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
        return value

    def resolve(self, value: Any, depth: int = 0) -> Any:
        """Replace bare ``${var.x}`` / ``${local.y}`` references by their values (nothing else)."""
        if depth > 10:
            return value
        if isinstance(value, list):
            return [self.resolve(v, depth) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v, depth) for k, v in value.items()}
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = _BARE.fullmatch(value.strip())
        if whole:
            target = self._lookup(whole)
            return value if target is _MISSING else self.resolve(target, depth + 1)

        def substitute(match: re.Match) -> str:
            target = self._lookup(match)
            if isinstance(target, bool):
                return str(target).lower()
            if isinstance(target, int | float):
                return str(target)
            if isinstance(target, str):
                return str(self.resolve(target, depth + 1))
            return match.group(0)

        return _BARE.sub(substitute, value)

    def references(self, value: Any, depth: int = 0) -> set[str]:
        """Resource addresses ``value`` names in its expressions, also through locals."""
        found: set[str] = set()
        for text in strings(value):
            for part in interpolations(text):
                found |= {m["address"] for m in _ADDRESS.finditer(part)}
                if depth < 10:
                    for m in _LOCAL.finditer(part):
                        local = self.module.locals.get(m["name"])
                        if local is not None:
                            found |= self.references(local[0], depth + 1)
        return found

    def refers_to(self, value: Any, *addresses: str) -> bool:
        return bool(self.references(value) & set(addresses))


@dataclass
class InfraView:
    env: Environment
    root: Path
    aws: ModuleView
    tfvars: dict[str, Tfvars]  # environment -> infra/terraform/<env>.tfvars, every environment
    gcp: ModuleView | None = None

    @property
    def tfvars_dir(self) -> str:
        return self.aws.module.directory


def _variables(module: Module, tfvars: Tfvars | None) -> dict[str, Any]:
    values = {
        name: block.get("default")
        for name, block in module.variables.items()
        if "default" in block.body
    }
    values.update(tfvars.values if tfvars else {})
    return values


def _check_region(tfvars: Tfvars) -> None:
    from mirror_rollout.regions import check_region

    region = tfvars.values.get("region")
    if isinstance(region, str) and "${" not in region:
        try:
            check_region(region)
        except ConfigError as exc:
            raise ConfigError(f"{tfvars.at('region')}: {exc.problem}", exc.fix) from None


def load_view(env: Environment, root: Path) -> InfraView:
    """Parse infra/terraform and infra/gcp of ``root`` for ``env`` (raw structure, no evaluation).

    Raises ConfigError (one line, file:line and the fix) on malformed input.
    """
    tf_dir = terraform_dir(root)
    aws = load_module(tf_dir, root)
    tfvars = {p.stem: read_tfvars(p, root) for p in sorted(tf_dir.glob("*.tfvars"))}
    own = tfvars.get(env)
    if own is not None:
        _check_region(own)
    view = InfraView(
        env=env,
        root=root,
        aws=ModuleView(aws, own, _variables(aws, own)),
        tfvars=tfvars,
    )
    g_dir = gcp_dir(root)
    if g_dir.is_dir() and any(g_dir.glob("*.tf")):
        gmodule = load_module(g_dir, root)
        gvars_path = g_dir / f"{env}.tfvars"
        gvars = read_tfvars(gvars_path, root) if gvars_path.exists() else None
        view.gcp = ModuleView(gmodule, gvars, _variables(gmodule, gvars))
    return view
