"""A module evaluated for one environment: variables, locals, instances, outputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcl2.rules.base import AttributeRule, BlockRule, BodyRule

from mirror_rollout.errors import ConfigError
from mirror_rollout.hcl.expressions import EvalError, Evaluator, line_of, references
from mirror_rollout.hcl.module import META_ARGUMENTS, Module, Resource, _label, parse_file
from mirror_rollout.hcl.types import TypeMismatch, convert
from mirror_rollout.hcl.values import PartialObject, Unknown


@dataclass(frozen=True)
class Instance:
    """One instance of a resource after count/for_each expansion."""

    resource: Resource
    key: str | int | None = None
    each_value: Any = None

    @property
    def address(self) -> str:
        if self.key is None:
            return self.resource.address
        if isinstance(self.key, int):
            return f"{self.resource.address}[{self.key}]"
        return f'{self.resource.address}["{self.key}"]'

    @property
    def type(self) -> str:
        return self.resource.type


# -- variables ---------------------------------------------------------------
def read_tfvars(path: Path) -> dict[str, Any]:
    tree = parse_file(path)
    values: dict[str, Any] = {}
    for child in tree.body.children:
        if isinstance(child, BlockRule):
            raise ConfigError(
                f"{path}:{line_of(child)}: blocks are not allowed in a .tfvars file",
                "use name = value lines",
            )
        if isinstance(child, AttributeRule):
            name = str(child.identifier.token.value)
            try:
                values[name] = Evaluator({}).eval(child.expression)
            except EvalError as exc:
                raise ConfigError(
                    f"{path}:{exc.line or line_of(child)}: {name}: {exc.message}",
                    "a .tfvars file may hold only literal values",
                ) from None
    return values


def resolve_variables(
    module: Module, tfvars: Iterable[Path] = (), overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Defaults < tfvars files (in order) < overrides, type-converted and validated."""
    given: dict[str, tuple[Any, str]] = {}
    for path in tfvars:
        for name, value in read_tfvars(Path(path)).items():
            if name not in module.variables:
                known = ", ".join(sorted(module.variables))
                raise ConfigError(
                    f"{path}: sets {name!r}, which no variable declares",
                    f"remove it or fix the name (declared: {known})",
                )
            given[name] = (value, str(path))
    for name, value in (overrides or {}).items():
        if name not in module.variables:
            raise ConfigError(
                f"override for undeclared variable {name!r}", "check the variable name"
            )
        given[name] = (value, "override")
    resolved: dict[str, Any] = {}
    for name, var in module.variables.items():
        if name in given:
            value, origin = given[name]
        elif var.default_rule is not None:
            value, origin = Evaluator({}).eval(var.default_rule), f"default in {var.where()}"
        else:
            raise ConfigError(
                f"variable {name!r} ({var.where()}) has no value",
                "set it in the environment's .tfvars file",
            )
        try:
            value = convert(value, var.type_rule)
        except TypeMismatch as exc:
            raise ConfigError(
                f"variable {name!r} from {origin}: {exc}",
                f"give {name} a value of the declared type",
            ) from None
        for condition, message in var.validations:
            evaluator = Evaluator({"var": {name: value}})
            try:
                ok = evaluator.eval(condition)
                text = evaluator.eval(message)
            except EvalError as exc:
                raise ConfigError(
                    f"{var.file}:{exc.line}: validation of {name!r}: {exc.message}",
                    "fix the validation block",
                ) from None
            if ok is not True:
                raise ConfigError(
                    f"variable {name!r} = {value!r} from {origin}: {text}",
                    f"fix {name} in {origin}",
                )
        resolved[name] = value
    return resolved


# -- evaluation ----------------------------------------------------------------
ResourceValueHook = Callable[[Instance, dict[str, Any]], dict[str, Any]]
DataValueHook = Callable[[Instance, dict[str, Any]], dict[str, Any]]


def _config_only(instance: Instance, config: dict[str, Any]) -> dict[str, Any]:
    return config


class _Lazy:
    """A namespace whose members are computed on first use, with cycle detection."""

    def __init__(self, label: str, compute: Callable[[str], Any], names: Iterable[str]):
        self.label = label
        self._compute = compute
        self._names = set(names)
        self._cache: dict[str, Any] = {}
        self._busy: set[str] = set()

    def get(self, name: str) -> Any:
        if name in self._cache:
            return self._cache[name]
        if name not in self._names:
            raise EvalError(f"{self.label}.{name} is not declared")
        if name in self._busy:
            raise EvalError(f"{self.label}.{name} refers to itself (a cycle)")
        self._busy.add(name)
        try:
            value = self._compute(name)
        finally:
            self._busy.discard(name)
        self._cache[name] = value
        return value


class Configuration:
    """The module's values for one set of variables.

    ``resource_value`` gives the value other expressions see for a resource
    instance, from its evaluated configuration: with no state that is the
    configuration itself, with unset attributes unknown; the sandbox engine
    plugs in state and apply results. ``data_value`` does the same for data
    sources.
    """

    def __init__(
        self,
        module: Module,
        variables: dict[str, Any],
        *,
        workspace: str = "default",
        resource_value: ResourceValueHook = _config_only,
        data_value: DataValueHook = _config_only,
    ):
        self.module = module
        self.variables = variables
        self.workspace = workspace
        self._resource_value = resource_value
        self._data_value = data_value
        self._instances: dict[str, list[Instance]] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self.locals = _Lazy("local", self._compute_local, module.locals)
        types = {r.type for r in module.resources if r.mode == "managed"}
        self._scope: dict[str, Any] = {
            "var": variables,
            "local": self.locals,
            "path": {
                "module": str(module.directory),
                "root": str(module.directory),
                "cwd": str(Path.cwd()),
            },
            "terraform": {"workspace": workspace},
            "data": _Lazy(
                "data", self._data_type, {r.type for r in module.resources if r.mode == "data"}
            ),
        }
        for rtype in types:
            self._scope[rtype] = _Lazy(
                rtype, lambda name, t=rtype: self._resource_ref(t, name), self._names_of(rtype)
            )

    def _names_of(self, rtype: str, mode: str = "managed") -> set[str]:
        return {r.name for r in self.module.resources if r.type == rtype and r.mode == mode}

    # -- scope members --------------------------------------------------------
    def _compute_local(self, name: str) -> Any:
        rule, where = self.module.locals[name]
        try:
            return Evaluator(self._scope).eval(rule)
        except EvalError as exc:
            raise ConfigError(
                f"{where.file}:{exc.line or where.line}: local.{name}: {exc.message}",
                "fix the expression",
            ) from None

    def _data_type(self, rtype: str) -> Any:
        return _Lazy(
            f"data.{rtype}",
            lambda name: self._resource_ref(rtype, name, "data"),
            self._names_of(rtype, "data"),
        )

    def _resource_ref(self, rtype: str, name: str, mode: str = "managed") -> Any:
        prefix = "data." if mode == "data" else ""
        resource = self.module.resource(f"{prefix}{rtype}.{name}")
        instances = self.instances(resource)
        values = {i.key: PartialObject(i.address, self.value(i)) for i in instances}
        if resource.for_each_rule is not None:
            return values
        if resource.count_rule is not None:
            return [values[k] for k in sorted(values)]
        return values[None]

    # -- public -----------------------------------------------------------------
    def evaluator(self, **names: Any) -> Evaluator:
        return Evaluator({**self._scope, **names})

    def instances(self, resource: Resource) -> list[Instance]:
        if resource.address in self._instances:
            return self._instances[resource.address]
        evaluator = self.evaluator()
        result: list[Instance]
        try:
            if resource.count_rule is not None:
                count = evaluator.eval(resource.count_rule)
                self._require_known(count, resource, "count")
                if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                    raise EvalError(
                        f"count must be a whole number >= 0, got {count!r}",
                        line_of(resource.count_rule),
                    )
                result = [Instance(resource, i) for i in range(count)]
            elif resource.for_each_rule is not None:
                each = evaluator.eval(resource.for_each_rule)
                self._require_known(each, resource, "for_each")
                if isinstance(each, dict):
                    result = [Instance(resource, k, each[k]) for k in sorted(each)]
                elif isinstance(each, list) and all(isinstance(v, str) for v in each):
                    result = [Instance(resource, k, k) for k in sorted(set(each))]
                else:
                    raise EvalError(
                        "for_each must be a map or a set of strings",
                        line_of(resource.for_each_rule),
                    )
            else:
                result = [Instance(resource)]
        except EvalError as exc:
            raise self._error(resource, exc) from None
        self._instances[resource.address] = result
        return result

    def all_instances(self, mode: str = "managed") -> list[Instance]:
        return [i for r in self.module.resources if r.mode == mode for i in self.instances(r)]

    def config(self, instance: Instance) -> dict[str, Any]:
        """The instance's arguments and nested blocks, evaluated (Terraform state shape)."""
        if instance.address not in self._configs:
            names: dict[str, Any] = {}
            if instance.resource.for_each_rule is not None:
                names["each"] = {"key": instance.key, "value": instance.each_value}
            if instance.resource.count_rule is not None:
                names["count"] = {"index": instance.key}
            try:
                self._configs[instance.address] = body_values(
                    instance.resource.body, self.evaluator(**names), META_ARGUMENTS
                )
            except EvalError as exc:
                raise self._error(instance.resource, exc, instance.address) from None
        return self._configs[instance.address]

    def value(self, instance: Instance) -> dict[str, Any]:
        hook = self._data_value if instance.resource.mode == "data" else self._resource_value
        return hook(instance, self.config(instance))

    def outputs(self) -> dict[str, Any]:
        out = {}
        for name, output in self.module.outputs.items():
            try:
                out[name] = self.evaluator().eval(output.value_rule)
            except EvalError as exc:
                raise ConfigError(
                    f"{output.file}:{exc.line or output.line}: output {name}: {exc.message}",
                    "fix the expression",
                ) from None
        return out

    def dependencies(self, resource: Resource) -> set[str]:
        """Addresses of the resources (and data sources) ``resource`` refers to."""
        refs: set[str] = set()
        rules = [c for c in resource.body.children]
        for rule in rules:
            refs |= references(rule)
        seen_locals: set[str] = set()
        deps: set[str] = set()
        pending = list(refs) + list(resource.depends_on)
        managed = {r.address for r in self.module.resources}
        while pending:
            ref = pending.pop()
            head, _, rest = ref.partition(".")
            if head == "local":
                if rest in seen_locals or rest not in self.module.locals:
                    continue
                seen_locals.add(rest)
                pending.extend(references(self.module.locals[rest][0]))
            elif head == "data":
                deps |= {a for a in managed if a.startswith(f"data.{rest}")}
            elif ref in managed:
                deps.add(ref)
        deps.discard(resource.address)
        return deps

    # -- helpers ----------------------------------------------------------------
    @staticmethod
    def _require_known(value: Any, resource: Resource, what: str) -> None:
        if isinstance(value, Unknown) or (
            isinstance(value, dict | list)
            and any(
                isinstance(v, Unknown)
                for v in (value.values() if isinstance(value, dict) else value)
            )
        ):
            raise EvalError(
                f"{what} depends on values known only after apply ({getattr(value, 'ref', '')})",
                line_of(resource.count_rule or resource.for_each_rule),
            )

    @staticmethod
    def _error(resource: Resource, exc: EvalError, address: str | None = None) -> ConfigError:
        return ConfigError(
            f"{resource.file}:{exc.line or resource.line}: {address or resource.address}: {exc.message}",
            "fix the expression",
        )


def body_values(
    body: BodyRule, evaluator: Evaluator, skip: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Attributes as values, nested blocks as lists of dicts (Terraform's state shape)."""
    out: dict[str, Any] = {}
    for child in body.children:
        if isinstance(child, AttributeRule):
            name = str(child.identifier.token.value)
            if name not in skip:
                out[name] = evaluator.eval(child.expression)
        elif isinstance(child, BlockRule):
            name = _label(child.labels[0])
            if name not in skip:
                out.setdefault(name, []).append(body_values(child.body, evaluator))
    return out
