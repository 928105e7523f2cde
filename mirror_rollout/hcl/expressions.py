"""Evaluate HCL expressions by walking python-hcl2's typed rule tree."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any, Protocol

from hcl2.rules import containers, expressions, for_expressions, functions, indexing, strings
from hcl2.rules import literal_rules as lit
from hcl2.rules.abstract import LarkRule, LarkToken
from hcl2.utils import process_escape_sequences

from mirror_rollout.hcl import functions as fn
from mirror_rollout.hcl.values import PartialObject, Unknown


class EvalError(ValueError):
    """An expression that cannot be evaluated; ``line`` is its source line."""

    def __init__(self, message: str, line: int | None = None):
        self.message = message
        self.line = line
        super().__init__(message if line is None else f"line {line}: {message}")


class Namespace(Protocol):
    """A lazily resolved scope entry (``local``, ``var``, a resource type, ``data``)."""

    def get(self, name: str) -> Any: ...


def line_of(rule: Any) -> int | None:
    meta = getattr(rule, "_meta", None)
    return getattr(meta, "line", None)


_BINARY = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_result(value: float | int) -> float | int:
    return int(value) if isinstance(value, float) and value.is_integer() else value


class Evaluator:
    """Evaluates expressions against a scope of root names.

    ``scope`` maps root identifiers (``var``, ``local``, ``each``,
    ``aws_kms_key``, ...) to values or Namespaces.
    """

    def __init__(self, scope: Mapping[str, Any]):
        self.scope = scope

    def with_names(self, names: Mapping[str, Any]) -> Evaluator:
        return Evaluator({**self.scope, **names})

    # -- entry point -------------------------------------------------------
    def eval(self, rule: Any) -> Any:
        method = getattr(self, "_" + type(rule).__name__, None)
        if method is None:
            raise EvalError(f"unsupported construct {type(rule).__name__}", line_of(rule))
        try:
            return method(rule)
        except (fn.FunctionError, TypeError, ZeroDivisionError) as exc:
            raise EvalError(str(exc), line_of(rule)) from None

    # -- wrappers ----------------------------------------------------------
    def _ExprTermRule(self, rule: expressions.ExprTermRule) -> Any:
        return self.eval(rule.expression)

    def _InterpolationRule(self, rule: strings.InterpolationRule) -> Any:
        return self.eval(rule.expression)

    # -- literals ----------------------------------------------------------
    def _IntLitRule(self, rule: lit.IntLitRule) -> int:
        return int(str(rule.token.value))

    def _FloatLitRule(self, rule: lit.FloatLitRule) -> int | float:
        return _number_result(float(str(rule.token.value)))

    def _LiteralValueRule(self, rule: lit.LiteralValueRule) -> Any:
        return {"true": True, "false": False, "null": None}[str(rule.token.value)]

    def _KeywordRule(self, rule: lit.KeywordRule) -> Any:
        return self._LiteralValueRule(rule)  # type: ignore[arg-type]

    def _StringRule(self, rule: strings.StringRule) -> Any:
        parts = rule.string_parts
        # "${x}" alone keeps x's type, as in Terraform.
        if len(parts) == 1 and isinstance(parts[0].content, strings.InterpolationRule):
            return self.eval(parts[0].content)
        pieces: list[str] = []
        for part in parts:
            content = part.content
            if isinstance(content, strings.InterpolationRule):
                value = self.eval(content)
                if isinstance(value, Unknown):
                    return value
                try:
                    pieces.append(fn.to_string(value))
                except fn.FunctionError as exc:
                    raise EvalError(f"in string template: {exc}", line_of(rule)) from None
            elif isinstance(content, LarkToken):
                kind = content.lark_name()
                if kind == "STRING_CHARS":
                    pieces.append(process_escape_sequences(str(content.value)))
                elif kind in ("ESCAPED_INTERPOLATION", "ESCAPED_DIRECTIVE"):
                    pieces.append(str(content.value)[1:])  # $${ -> ${, %%{ -> %{
                else:
                    raise EvalError(f"unsupported string part {kind}", line_of(rule))
            else:
                raise EvalError(
                    "template directives (%{ if }/%{ for }) are not supported", line_of(rule)
                )
        return "".join(pieces)

    def _HeredocTemplateRule(self, rule: Any) -> Any:
        raise EvalError("heredoc strings are not supported; use jsonencode()", line_of(rule))

    _HeredocTrimTemplateRule = _HeredocTemplateRule

    # -- collections -------------------------------------------------------
    def _TupleRule(self, rule: containers.TupleRule) -> list:
        return [self.eval(e) for e in rule.elements]

    def _ObjectRule(self, rule: containers.ObjectRule) -> dict:
        out: dict[str, Any] = {}
        for elem in rule.elements:
            key = self._object_key(elem.key)
            if isinstance(key, Unknown):
                return key
            out[fn.to_string(key)] = self.eval(elem.expression)
        return out

    def _object_key(self, key_rule: Any) -> Any:
        if isinstance(key_rule, containers.ObjectElemKeyExpressionRule):
            inner = key_rule.expression
            # A bare identifier key (``Name = ...``) is a literal name.
            if isinstance(inner, expressions.ExprTermRule) and not inner.parentheses:
                inner = inner.expression
            if isinstance(inner, lit.IdentifierRule):
                return str(inner.token.value)
            return self.eval(inner)
        value = key_rule.value
        if isinstance(value, lit.IdentifierRule):
            return str(value.token.value)
        if (
            isinstance(value, expressions.ExprTermRule)
            and isinstance(value.expression, lit.IdentifierRule)
            and not value.parentheses
        ):
            return str(value.expression.token.value)
        return self.eval(value)

    # -- references --------------------------------------------------------
    def _IdentifierRule(self, rule: lit.IdentifierRule) -> Any:
        name = str(rule.token.value)
        if name not in self.scope:
            raise EvalError(f"unknown name {name!r}", line_of(rule))
        return self.scope[name]

    def _GetAttrExprTermRule(self, rule: indexing.GetAttrExprTermRule) -> Any:
        base = self.eval(rule.expr_term)
        return self._attribute(base, str(rule.get_attr.identifier.token.value), rule)

    def _attribute(self, base: Any, name: str, rule: Any) -> Any:
        if isinstance(base, Unknown):
            return Unknown(f"{base.ref}.{name}" if base.ref else "")
        if isinstance(base, PartialObject):
            return base.attr(name)
        if isinstance(base, dict):
            if name not in base:
                raise EvalError(f"object has no attribute {name!r}", line_of(rule))
            return base[name]
        getter = getattr(base, "get", None)
        if getter is not None and not isinstance(base, list | str):
            return getter(name)
        raise EvalError(f"cannot read attribute {name!r} of a {fn.type_name(base)}", line_of(rule))

    def _IndexExprTermRule(self, rule: indexing.IndexExprTermRule) -> Any:
        base_rule, index_rule = rule.children[0], rule.children[1]
        base = self.eval(base_rule)
        if isinstance(index_rule, indexing.ShortIndexRule):
            key: Any = int(str(index_rule.index.value))
        else:
            key = self.eval(index_rule.index_expression)
        if isinstance(base, Unknown) or isinstance(key, Unknown):
            return Unknown(getattr(base, "ref", ""))
        if isinstance(base, list):
            if not _is_number(key) or not 0 <= int(key) < len(base):
                raise EvalError(
                    f"index {key!r} out of range for a list of {len(base)}", line_of(rule)
                )
            return base[int(key)]
        if isinstance(base, PartialObject):
            return base.attr(fn.to_string(key))
        if isinstance(base, dict):
            skey = fn.to_string(key)
            if skey not in base:
                raise EvalError(f"no element with key {skey!r}", line_of(rule))
            return base[skey]
        return self._attribute(base, fn.to_string(key), rule)

    def _AttrSplatExprTermRule(self, rule: Any) -> Any:
        raise EvalError(
            "splat expressions ([*] / .*) are not supported; use a for expression", line_of(rule)
        )

    _FullSplatExprTermRule = _AttrSplatExprTermRule

    # -- operators ---------------------------------------------------------
    def _ConditionalRule(self, rule: expressions.ConditionalRule) -> Any:
        condition = self.eval(rule.condition)
        if isinstance(condition, Unknown):
            return condition
        if not isinstance(condition, bool):
            raise EvalError(f"condition must be bool, got {fn.type_name(condition)}", line_of(rule))
        return self.eval(rule.if_true if condition else rule.if_false)

    def _UnaryOpRule(self, rule: expressions.UnaryOpRule) -> Any:
        value = self.eval(rule.expr_term)
        if isinstance(value, Unknown):
            return value
        op = rule.operator.strip()
        if op == "!":
            if not isinstance(value, bool):
                raise EvalError("! needs a bool", line_of(rule))
            return not value
        if not _is_number(value):
            raise EvalError("unary - needs a number", line_of(rule))
        return -value

    def _BinaryOpRule(self, rule: expressions.BinaryOpRule) -> Any:
        term: expressions.BinaryTermRule = rule.binary_term
        op = str(term.binary_operator.token.value).strip()
        left = self.eval(rule.expr_term)
        if op in ("&&", "||"):
            if isinstance(left, bool) and ((op == "&&" and not left) or (op == "||" and left)):
                return left
            right = self.eval(term.expr_term)
            if isinstance(left, Unknown) or isinstance(right, Unknown):
                return left if isinstance(left, Unknown) else right
            if not (isinstance(left, bool) and isinstance(right, bool)):
                raise EvalError(f"{op} needs bools", line_of(rule))
            return right
        right = self.eval(term.expr_term)
        if isinstance(left, Unknown) or isinstance(right, Unknown):
            return left if isinstance(left, Unknown) else right
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        left, right = self._numeric(left, rule), self._numeric(right, rule)
        return _number_result(_BINARY[op](left, right))

    @staticmethod
    def _numeric(value: Any, rule: Any) -> int | float:
        if _is_number(value):
            return value
        if isinstance(value, str):
            try:
                return fn.tonumber(value)  # type: ignore[return-value]
            except fn.FunctionError:
                pass
        raise EvalError(f"arithmetic needs numbers, got {value!r}", line_of(rule))

    # -- functions ---------------------------------------------------------
    def _FunctionCallRule(self, rule: functions.FunctionCallRule) -> Any:
        name = "::".join(str(i.token.value) for i in rule.identifiers)
        args_rule = rule.arguments
        args = [self.eval(a) for a in args_rule.arguments] if args_rule else []
        if args_rule is not None and args_rule.has_ellipsis and args:
            expanded = args.pop()
            if isinstance(expanded, Unknown):
                return expanded
            args.extend(expanded)
        if name not in fn.FUNCTIONS:
            supported = ", ".join(sorted(fn.FUNCTIONS))
            raise EvalError(
                f"function {name}() is not supported (supported: {supported})", line_of(rule)
            )
        return fn.call(name, args)

    # -- for expressions ---------------------------------------------------
    def _iterations(self, intro: for_expressions.ForIntroRule):
        collection = self.eval(intro.iterable)
        if isinstance(collection, Unknown):
            return collection
        first = str(intro.first_iterator.token.value)
        second = intro.second_iterator
        if isinstance(collection, dict):
            pairs = [(k, collection[k]) for k in sorted(collection)]
        elif isinstance(collection, list):
            pairs = list(enumerate(collection))
        else:
            raise EvalError(f"cannot iterate over a {fn.type_name(collection)}", line_of(intro))
        if second is None:
            return [self.with_names({first: v}) for _, v in pairs]
        return [self.with_names({first: k, str(second.token.value): v}) for k, v in pairs]

    def _ForTupleExprRule(self, rule: for_expressions.ForTupleExprRule) -> Any:
        scopes = self._iterations(rule.for_intro)
        if isinstance(scopes, Unknown):
            return scopes
        out = []
        for scope in scopes:
            if rule.condition is not None and not scope._truth(rule.condition.condition_expr):
                continue
            out.append(scope.eval(rule.value_expr))
        return out

    def _ForObjectExprRule(self, rule: for_expressions.ForObjectExprRule) -> Any:
        scopes = self._iterations(rule.for_intro)
        if isinstance(scopes, Unknown):
            return scopes
        out: dict[str, Any] = {}
        for scope in scopes:
            if rule.condition is not None and not scope._truth(rule.condition.condition_expr):
                continue
            key = fn.to_string(scope.eval(rule.key_expr))
            value = scope.eval(rule.value_expr)
            if rule.ellipsis is not None:
                out.setdefault(key, []).append(value)
            elif key in out:
                raise EvalError(
                    f"duplicate key {key!r} in for expression (use ... to group)", line_of(rule)
                )
            else:
                out[key] = value
        return out

    def _truth(self, rule: Any) -> bool:
        value = self.eval(rule)
        if not isinstance(value, bool):
            raise EvalError("for expression condition must be bool", line_of(rule))
        return value


def references(rule: Any) -> set[str]:
    """Dotted reference prefixes (``var.x``, ``aws_kms_key.main``) used in ``rule``.

    Returns the first two names of every traversal, which is what dependency
    ordering needs.
    """
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, indexing.GetAttrExprTermRule):
            chain = _traversal(node)
            if chain is not None:
                found.add(".".join(chain[:2]) if len(chain) > 1 else chain[0])
        if isinstance(node, LarkRule):
            for child in node.children:
                walk(child)

    walk(rule)
    return found


def _traversal(node: Any) -> list[str] | None:
    names: list[str] = []
    while isinstance(
        node, indexing.GetAttrExprTermRule | indexing.IndexExprTermRule | expressions.ExprTermRule
    ):
        if isinstance(node, indexing.GetAttrExprTermRule):
            names.append(str(node.get_attr.identifier.token.value))
            node = node.expr_term
        elif isinstance(node, indexing.IndexExprTermRule):
            names.clear()  # only keep names after the innermost index
            node = node.children[0]
        else:
            node = node.expression
    if isinstance(node, lit.IdentifierRule):
        names.append(str(node.token.value))
        return list(reversed(names))
    return None
