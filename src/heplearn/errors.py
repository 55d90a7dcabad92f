"""Exceptions raised for bad input.

Every error a user can cause by what they pass in (a file, a config, an expression) is a
``HeplearnError``: the command line prints its message on one line and exits with code 2.
"""

from __future__ import annotations


class HeplearnError(Exception):
    """Bad input: the message says what was wrong, where, and how to fix it.

    The message is always one line: text quoted from a library (PyYAML, uproot, numpy) that
    spans several lines is joined, so the command line prints one line whatever the cause.
    """

    def __str__(self) -> str:
        return one_line(super().__str__())


def one_line(text: str) -> str:
    """``text`` with its lines stripped and joined by spaces (blank lines dropped)."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


class DataError(HeplearnError):
    """A data file is missing, unreadable, or lacks or corrupts a field."""


class ConfigError(HeplearnError):
    """A configuration is invalid: the message names the key."""


class ExpressionError(ConfigError):
    """An expression in a config uses something outside the allowed vocabulary."""


class FitError(HeplearnError):
    """A fit failed (the minimiser did not converge, or its covariance is not valid): no number is reported."""
