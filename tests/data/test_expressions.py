from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from heplearn.data.expressions import Expression
from heplearn.errors import ExpressionError


def test_arithmetic_functions_and_logic() -> None:
    variables = {"a": np.array([1.0, 4.0, 9.0]), "b": np.array([0.0, 1.0, 2.0])}
    assert np.allclose(Expression("sqrt(a) + np.log1p(b) * 2").evaluate(variables),
                       np.sqrt(variables["a"]) + 2 * np.log1p(variables["b"]))
    assert list(Expression("(a > 2) & (b < 2)").evaluate(variables)) == [False, True, False]
    assert list(Expression("a > 2 and not b > 1").evaluate(variables)) == [False, True, False]
    assert list(Expression("1 < a <= 4").evaluate(variables)) == [False, True, False]
    assert np.allclose(Expression("where(b > 0, a, -1)").evaluate(variables), [-1, 4, 9])


def test_awkward_functions_on_jagged_fields() -> None:
    variables = {"part_px": ak.Array([[1.0, 2.0], [], [3.0]])}
    assert ak.to_list(Expression("ak.num(part_px, axis=1)").evaluate(variables)) == [2, 0, 1]
    assert ak.to_list(Expression("ak.sum(part_px ** 2, axis=1)").evaluate(variables)) == [5.0, 0.0, 9.0]


@pytest.mark.parametrize(
    ("text", "culprit"),
    [
        ("__import__('os').system('true')", "__import__"),
        ("os.system('ls')", "os.system"),
        ("a.__class__", "a.__class__"),
        ("a[0]", "a[0]"),
        ("(lambda: 1)()", "lambda"),
        ("open('x')", "open"),
        ("'text'", "'text'"),
        ("_secret + 1", "_secret"),
        ("[x for x in a]", "for"),
    ],
)
def test_forbidden_constructs_are_named(text: str, culprit: str) -> None:
    with pytest.raises(ExpressionError, match="not allowed") as error:
        Expression(text, "data.selection")
    assert culprit in str(error.value)
    assert "data.selection" in str(error.value)


def test_unknown_variable_and_syntax_errors() -> None:
    with pytest.raises(ExpressionError, match="unknown variable 'c'"):
        Expression("a + c", "w").evaluate({"a": 1.0})
    with pytest.raises(ExpressionError, match="cannot parse"):
        Expression("a +", "w")
