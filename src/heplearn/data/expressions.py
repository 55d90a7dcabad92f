"""A safe evaluator for the expressions of data configs (selections, derived variables, labels).

An expression is parsed with ``ast`` and only a whitelist is evaluated: numbers, the file's field
names (and derived variables), arithmetic, comparisons, ``&``/``|``/``~`` and ``and``/``or``/``not``
(element-wise), and calls to the numpy / awkward functions listed below, written bare
(``sqrt(x)``) or qualified (``np.sqrt(x)``, ``ak.num(part_px)``). Anything else — attributes,
subscripts, lambdas, imports, unknown names — is an ``ExpressionError`` naming the culprit.
Never ``eval`` of arbitrary text.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

import awkward as ak
import numpy as np

from heplearn.errors import ExpressionError

NUMPY_FUNCTIONS = (
    "abs", "sqrt", "exp", "log", "log10", "log1p", "expm1", "sin", "cos", "tan", "arcsin", "arccos",
    "arctan", "arctan2", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "hypot", "minimum",
    "maximum", "where", "sign", "clip", "floor", "ceil", "round", "isfinite", "isnan", "logical_and",
    "logical_or", "logical_not", "square", "power", "heaviside",
)
AWKWARD_FUNCTIONS = ("num", "sum", "max", "min", "mean", "firsts", "count", "any", "all", "argmax",
                     "argmin", "fill_none", "prod", "std", "var")
CONSTANTS = {"pi": np.pi, "e": np.e, "inf": np.inf, "True": True, "False": False}

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert, ast.Not: np.logical_not,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}


def _functions() -> dict[str, Callable[..., Any]]:
    table: dict[str, Callable[..., Any]] = {}
    for name in NUMPY_FUNCTIONS:
        table[name] = table[f"np.{name}"] = table[f"numpy.{name}"] = getattr(np, name)
    for name in AWKWARD_FUNCTIONS:
        table[f"ak.{name}"] = table[f"awkward.{name}"] = getattr(ak, name)
    for bare in ("num", "firsts", "count", "fill_none"):
        table[bare] = getattr(ak, bare)
    return table


FUNCTIONS = _functions()


class Expression:
    """A parsed, checked expression; ``names`` are the variables it reads."""

    def __init__(self, text: str, where: str = "expression") -> None:
        self.text = text
        self.where = where
        try:
            self._tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as error:
            raise ExpressionError(f"{where}: cannot parse {text!r}: {error.msg}") from None
        self.names: set[str] = set()
        self._check(self._tree.body)

    def _fail(self, what: str) -> ExpressionError:
        return ExpressionError(f"{self.where}: {what} is not allowed in {self.text!r}")

    def _check(self, node: ast.AST) -> None:
        match node:
            case ast.Constant(value=value):
                if not isinstance(value, int | float | bool):
                    raise self._fail(f"the constant {value!r}")
            case ast.Name(id=name):
                if name in FUNCTIONS and name not in CONSTANTS:
                    raise self._fail(f"the function {name!r} used as a value")
                if name.startswith("_"):
                    raise self._fail(f"the name {name!r}")
                if name not in CONSTANTS:
                    self.names.add(name)
            case ast.BinOp(left=left, op=op, right=right):
                if type(op) not in _BINARY:
                    raise self._fail(f"the operator {type(op).__name__}")
                self._check(left)
                self._check(right)
            case ast.UnaryOp(op=op, operand=operand):
                if type(op) not in _UNARY:
                    raise self._fail(f"the operator {type(op).__name__}")
                self._check(operand)
            case ast.BoolOp(values=values):
                for value in values:
                    self._check(value)
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                if any(type(op) not in _COMPARE for op in ops):
                    raise self._fail("that comparison")
                for value in (left, *comparators):
                    self._check(value)
            case ast.Call(func=func, args=args, keywords=keywords):
                name = _dotted_name(func)
                if name is None or name not in FUNCTIONS:
                    shown = name or ast.unparse(func)
                    raise self._fail(f"the function {shown!r} (allowed: numpy/awkward maths such as "
                                     "sqrt, log, abs, hypot, where, ak.num, ak.sum)")
                for value in (*args, *(keyword.value for keyword in keywords)):
                    self._check(value)
            case _:
                shown = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
                raise self._fail(f"{shown!r}")

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        missing = sorted(self.names - set(variables))
        if missing:
            raise ExpressionError(f"{self.where}: unknown variable {', '.join(map(repr, missing))} "
                                  f"in {self.text!r}")
        return self._evaluate(self._tree.body, variables)

    def _evaluate(self, node: ast.AST, variables: Mapping[str, Any]) -> Any:
        match node:
            case ast.Constant(value=value):
                return value
            case ast.Name(id=name):
                return CONSTANTS[name] if name in CONSTANTS else variables[name]
            case ast.BinOp(left=left, op=op, right=right):
                return _BINARY[type(op)](self._evaluate(left, variables), self._evaluate(right, variables))
            case ast.UnaryOp(op=op, operand=operand):
                return _UNARY[type(op)](self._evaluate(operand, variables))
            case ast.BoolOp(op=op, values=values):
                combine = np.logical_and if isinstance(op, ast.And) else np.logical_or
                result = self._evaluate(values[0], variables)
                for value in values[1:]:
                    result = combine(result, self._evaluate(value, variables))
                return result
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                result = None
                current = self._evaluate(left, variables)
                for op, right_node in zip(ops, comparators, strict=True):
                    right = self._evaluate(right_node, variables)
                    step = _COMPARE[type(op)](current, right)
                    result = step if result is None else np.logical_and(result, step)
                    current = right
                return result
            case ast.Call(func=func, args=args, keywords=keywords):
                function = FUNCTIONS[_dotted_name(func) or ""]
                return function(*(self._evaluate(a, variables) for a in args),
                                **{k.arg: self._evaluate(k.value, variables) for k in keywords if k.arg})
        raise self._fail(type(node).__name__)  # unreachable: _check vetted the tree


def _dotted_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None
