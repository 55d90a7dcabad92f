"""A safe evaluator for the expressions of data configs (selections, derived variables, labels).

An expression is parsed with ``ast`` and only a whitelist is evaluated: numbers, the file's field
names (and derived variables), arithmetic, comparisons, ``&``/``|``/``~`` and ``and``/``or``/``not``
(element-wise), and calls to the numpy / awkward functions listed below, written bare
(``sqrt(x)``) or qualified (``np.sqrt(x)``, ``ak.num(part_px)``). Anything else — attributes,
subscripts, lambdas, imports, unknown names — is an ``ExpressionError`` naming the culprit.
Never ``eval`` of arbitrary text.

Each function has a signature (``SIGNATURES``): how many positional arguments it takes and which
keywords, checked when the expression is parsed. Only keywords that select (``axis``,
``keepdims``, ``decimals``, ...) are allowed, never one that writes (``out=``) or leaves values
unset (a ufunc's ``where=``). Arithmetic on constants is bounded: an integer power whose result
would exceed ``MAX_INTEGER_BITS`` bits is refused instead of computed (``9**9**9**9`` would take
hours), and expressions longer than ``MAX_EXPRESSION_LENGTH`` characters are refused. Whatever
fails while an expression is evaluated (a wrong axis, a type that an operator does not take)
raises an ``ExpressionError`` naming the expression, on one line.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from heplearn.errors import ExpressionError

NUMPY_FUNCTIONS = (
    "abs",
    "sqrt",
    "exp",
    "log",
    "log10",
    "log1p",
    "expm1",
    "sin",
    "cos",
    "tan",
    "arcsin",
    "arccos",
    "arctan",
    "arctan2",
    "sinh",
    "cosh",
    "tanh",
    "arcsinh",
    "arccosh",
    "arctanh",
    "hypot",
    "minimum",
    "maximum",
    "where",
    "sign",
    "clip",
    "floor",
    "ceil",
    "round",
    "isfinite",
    "isnan",
    "logical_and",
    "logical_or",
    "logical_not",
    "square",
    "power",
    "heaviside",
)
AWKWARD_FUNCTIONS = (
    "num",
    "sum",
    "max",
    "min",
    "mean",
    "firsts",
    "count",
    "any",
    "all",
    "argmax",
    "argmin",
    "fill_none",
    "prod",
    "std",
    "var",
)
CONSTANTS = {"pi": np.pi, "e": np.e, "inf": np.inf, "True": True, "False": False}
MAX_EXPRESSION_LENGTH = 4000  # characters: a config's expressions are one line each
MAX_INTEGER_BITS = 4096  # the largest integer a constant power may produce

_REDUCTION_KEYWORDS = frozenset({"axis", "keepdims", "mask_identity"})


@dataclass(frozen=True)
class Signature:
    """The calls a function accepts: ``minimum``..``maximum`` positional arguments and ``keywords``."""

    minimum: int
    maximum: int
    keywords: frozenset[str] = frozenset()

    def describe(self) -> str:
        """What the function takes, in words (for error messages)."""
        count = str(self.minimum) if self.minimum == self.maximum else f"{self.minimum} to {self.maximum}"
        plural = "" if self.maximum == 1 else "s"
        keywords = f" and the keywords {', '.join(sorted(self.keywords))}" if self.keywords else " and no keyword"
        return f"{count} argument{plural}{keywords}"


_BINARY_FUNCTIONS = {"arctan2", "hypot", "minimum", "maximum", "logical_and", "logical_or", "power", "heaviside"}
SIGNATURES: dict[str, Signature] = {
    **{name: Signature(2, 2) if name in _BINARY_FUNCTIONS else Signature(1, 1) for name in NUMPY_FUNCTIONS},
    "where": Signature(3, 3),
    "clip": Signature(3, 3),
    "round": Signature(1, 2, frozenset({"decimals"})),
    **{
        f"ak.{name}": Signature(1, 2, _REDUCTION_KEYWORDS)
        for name in ("sum", "max", "min", "mean", "count", "any", "all", "argmax", "argmin", "prod")
    },
    **{f"ak.{name}": Signature(1, 2, _REDUCTION_KEYWORDS | {"ddof"}) for name in ("std", "var")},
    "ak.num": Signature(1, 2, frozenset({"axis"})),
    "ak.firsts": Signature(1, 2, frozenset({"axis"})),
    "ak.fill_none": Signature(2, 2, frozenset({"axis"})),
}

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
    ast.Not: np.logical_not,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def _functions() -> tuple[dict[str, Callable[..., Any]], dict[str, str]]:
    """Every name a call may use → the function, and → its canonical name in ``SIGNATURES``."""
    table: dict[str, Callable[..., Any]] = {}
    canonical: dict[str, str] = {}
    for name in NUMPY_FUNCTIONS:
        for alias in (name, f"np.{name}", f"numpy.{name}"):
            table[alias], canonical[alias] = getattr(np, name), name
    for name in AWKWARD_FUNCTIONS:
        for alias in (f"ak.{name}", f"awkward.{name}"):
            table[alias], canonical[alias] = getattr(ak, name), f"ak.{name}"
    for bare in ("num", "firsts", "count", "fill_none"):
        table[bare], canonical[bare] = getattr(ak, bare), f"ak.{bare}"
    return table, canonical


FUNCTIONS, _CANONICAL = _functions()


class Expression:
    """A parsed, checked expression; ``names`` are the variables it reads."""

    def __init__(self, text: str, where: str = "expression") -> None:
        self.text = text
        self.where = where
        if len(text) > MAX_EXPRESSION_LENGTH:
            raise ExpressionError(
                f"{where}: the expression has {len(text)} characters; at most {MAX_EXPRESSION_LENGTH} are allowed"
            )
        self.names: set[str] = set()
        try:
            self._tree = ast.parse(text.strip(), mode="eval")
            self._check(self._tree.body)
            self._fold_constants(self._tree.body)
        except SyntaxError as error:
            raise ExpressionError(f"{where}: cannot parse {text!r}: {error.msg}") from None
        except (RecursionError, MemoryError):
            raise ExpressionError(f"{where}: {_shorten(text)!r} is nested too deeply") from None

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
                    raise self._fail(
                        f"the function {shown!r} (allowed: numpy/awkward maths such as "
                        "sqrt, log, abs, hypot, where, ak.num, ak.sum)"
                    )
                self._check_call(name, args, keywords)
                for value in (*args, *(keyword.value for keyword in keywords)):
                    self._check(value)
            case _:
                shown = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
                raise self._fail(f"{shown!r}")

    def _check_call(self, name: str, args: list[ast.expr], keywords: list[ast.keyword]) -> None:
        """Refuse a call whose arguments do not fit the function's ``Signature``."""
        signature = SIGNATURES[_CANONICAL[name]]
        for keyword in keywords:
            if keyword.arg is None:
                raise self._fail(f"'**' in the call of {name!r}")
            if keyword.arg not in signature.keywords:
                raise self._fail(f"the keyword {keyword.arg!r} of {name!r} (it takes {signature.describe()})")
        if not signature.minimum <= len(args) <= signature.maximum:
            raise ExpressionError(
                f"{self.where}: {name!r} takes {signature.describe()}, got {len(args)} "
                f"argument{'' if len(args) == 1 else 's'} in {self.text!r}"
            )

    def _fold_constants(self, node: ast.AST) -> None:
        """Evaluate every subexpression without variables now, so that bounded arithmetic fails at parse time."""
        if not isinstance(node, ast.expr):
            return
        if _is_constant(node) and not isinstance(node, ast.Constant | ast.Name):
            self._guarded(node, {})
            return
        for child in ast.iter_child_nodes(node):
            self._fold_constants(child)

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """The expression's value on ``variables`` (arrays by name); any failure is an ``ExpressionError``."""
        missing = sorted(self.names - set(variables))
        if missing:
            raise ExpressionError(f"{self.where}: unknown variable {', '.join(map(repr, missing))} in {self.text!r}")
        return self._guarded(self._tree.body, variables)

    def _guarded(self, node: ast.AST, variables: Mapping[str, Any]) -> Any:
        try:
            with np.errstate(all="ignore"):  # NaN and inf propagate; the data checks name the bad entries
                return self._evaluate(node, variables)
        except ExpressionError:
            raise
        except (RecursionError, MemoryError):
            raise ExpressionError(f"{self.where}: {_shorten(self.text)!r} is too large to evaluate") from None
        except Exception as error:  # numpy and awkward raise many types; each is a fault of the expression
            raise ExpressionError(
                f"{self.where}: cannot evaluate {_shorten(self.text)!r}: {type(error).__name__}: {_first_line(error)}"
            ) from None

    def _evaluate(self, node: ast.AST, variables: Mapping[str, Any]) -> Any:
        match node:
            case ast.Constant(value=value):
                return value
            case ast.Name(id=name):
                return CONSTANTS[name] if name in CONSTANTS else variables[name]
            case ast.BinOp(left=left, op=op, right=right):
                left_value, right_value = self._evaluate(left, variables), self._evaluate(right, variables)
                if isinstance(op, ast.Pow):
                    self._check_power(left_value, right_value)
                return _BINARY[type(op)](left_value, right_value)
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
                return function(
                    *(self._evaluate(a, variables) for a in args),
                    **{k.arg: self._evaluate(k.value, variables) for k in keywords if k.arg},
                )
        raise self._fail(type(node).__name__)  # unreachable: _check vetted the tree

    def _check_power(self, base: Any, exponent: Any) -> None:
        """Refuse an integer power too large to compute (Python integers have no overflow)."""
        if not (_is_integer(base) and _is_integer(exponent)) or int(exponent) <= 0 or abs(int(base)) <= 1:
            return
        bits = math.ceil(math.log2(abs(int(base))) * int(exponent))
        if bits > MAX_INTEGER_BITS:
            raise ExpressionError(
                f"{self.where}: {base} ** {exponent} in {_shorten(self.text)!r} would have about "
                f"{bits} bits; constant powers are limited to {MAX_INTEGER_BITS} bits"
            )


def _is_integer(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_constant(node: ast.AST) -> bool:
    """True when ``node`` reads no variable (only constants, operators and calls on constants)."""
    return all(
        not isinstance(part, ast.Name) or part.id in CONSTANTS or part.id in FUNCTIONS for part in ast.walk(node)
    )


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def _dotted_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None
