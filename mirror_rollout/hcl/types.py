"""Terraform type constraints for input variables: parse and convert."""

from __future__ import annotations

from typing import Any

from hcl2.rules import containers, expressions, functions
from hcl2.rules import literal_rules as lit

from mirror_rollout.hcl.functions import FunctionError, tonumber


class TypeMismatch(ValueError):
    pass


def _unwrap(rule: Any) -> Any:
    while isinstance(rule, expressions.ExprTermRule):
        rule = rule.expression
    return rule


def describe(rule: Any) -> str:
    rule = _unwrap(rule)
    if rule is None:
        return "any"
    if isinstance(rule, lit.IdentifierRule):
        return str(rule.token.value)
    if isinstance(rule, functions.FunctionCallRule):
        name = str(rule.identifiers[0].token.value)
        return f"{name}(...)"
    return "a type expression"


def convert(value: Any, rule: Any, path: str = "") -> Any:
    """Convert ``value`` to the type ``rule`` describes, as Terraform does, or raise TypeMismatch."""
    rule = _unwrap(rule)
    where = f" at {path}" if path else ""
    if rule is None:
        return value
    if value is None:
        return None
    if isinstance(rule, lit.IdentifierRule):
        kind = str(rule.token.value)
        if kind == "any":
            return value
        if kind == "string":
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, int | float):
                return str(value)
            if isinstance(value, str):
                return value
            raise TypeMismatch(f"a string is required{where}, got {value!r}")
        if kind == "number":
            try:
                if isinstance(value, bool):
                    raise FunctionError("a bool is not a number")
                return tonumber(value)
            except FunctionError:
                raise TypeMismatch(f"a number is required{where}, got {value!r}") from None
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if value in ("true", "false"):
                return value == "true"
            raise TypeMismatch(f"a bool is required{where}, got {value!r}")
        raise TypeMismatch(f"unsupported type keyword {kind!r}")
    if isinstance(rule, functions.FunctionCallRule):
        name = str(rule.identifiers[0].token.value)
        args = rule.arguments.arguments if rule.arguments else []
        if name in ("list", "set"):
            if not isinstance(value, list):
                raise TypeMismatch(f"a {name} is required{where}, got {value!r}")
            items = [convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)]
            return (
                list(dict.fromkeys(items))
                if name == "set" and all(isinstance(i, str) for i in items)
                else items
            )
        if name == "map":
            if not isinstance(value, dict):
                raise TypeMismatch(f"a map is required{where}, got {value!r}")
            return {k: convert(v, args[0], f"{path}[{k!r}]") for k, v in value.items()}
        if name == "optional":
            return convert(value, args[0], path)
        if name == "object":
            if not isinstance(value, dict):
                raise TypeMismatch(f"an object is required{where}, got {value!r}")
            spec = _unwrap(args[0])
            if not isinstance(spec, containers.ObjectRule):
                raise TypeMismatch("object() needs an attribute map")
            out = {}
            for elem in spec.elements:
                key = elem.key.serialize().strip('"')
                attr_type = _unwrap(elem.expression)
                optional = (
                    isinstance(attr_type, functions.FunctionCallRule)
                    and str(attr_type.identifiers[0].token.value) == "optional"
                )
                if key not in value and not optional:
                    raise TypeMismatch(f"attribute {key!r} is required{where}")
                out[key] = convert(value.get(key), attr_type, f"{path}.{key}" if path else key)
            return out
        if name == "tuple":
            spec = _unwrap(args[0])
            elements = spec.elements if isinstance(spec, containers.TupleRule) else []
            if not isinstance(value, list) or len(value) != len(elements):
                raise TypeMismatch(f"a tuple of {len(elements)} is required{where}")
            return [
                convert(v, t, f"{path}[{i}]")
                for i, (v, t) in enumerate(zip(value, elements, strict=True))
            ]
    raise TypeMismatch(f"unsupported type constraint {describe(rule)}")
