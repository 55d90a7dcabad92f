"""The self-contained HTML report: Jinja2 templates (``templates/``), plots embedded as base64.

One file that opens anywhere, mailed or attached to a merge request, with no link to break: the
metrics tables, every plot (PNG, base64 ``data:`` URIs; the PDFs sit beside it in ``plots/``),
the run's config, a summary of the data and the software versions that produced it.
"""

from __future__ import annotations

import base64
import math
import os
import platform
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jinja2

from heplearn import __version__
from heplearn.data.files import jsonable, write_json, write_text_atomic  # noqa: F401  (the first two re-exported)

PACKAGES = ("numpy", "scipy", "scikit-learn", "torch", "xgboost", "awkward", "matplotlib", "mplhep", "jinja2")


def environment() -> dict[str, str]:
    """Versions of Python, heplearn and the packages that shape the numbers, and when it ran."""
    info = {"heplearn": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for package in PACKAGES:
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = "not installed"
    info["evaluated (UTC)"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return info


def embed_png(path: str | os.PathLike[str]) -> str:
    """A ``data:`` URI holding the PNG at ``path``."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def number(value: Any, digits: int = 3, percent: bool = False) -> str:
    """A figure for a table: ``digits`` significant digits, "∞" for infinity, "–" when missing."""
    if value is None:
        return "–"
    value = float(value)
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if percent:
        return f"{100 * value:.{max(digits - 2, 0)}f}%"
    return f"{value:.{digits}g}"


def plus_minus(value: Any, uncertainty: Any, digits: int = 3) -> str:
    """``value ± uncertainty`` with the value rounded to the uncertainty's first two digits."""
    if value is None or uncertainty is None or not math.isfinite(float(uncertainty)) or float(uncertainty) <= 0:
        return number(value, digits)
    value, uncertainty = float(value), float(uncertainty)
    if not math.isfinite(value):
        return number(value, digits)
    decimals = max(0, 1 - math.floor(math.log10(uncertainty)))
    return f"{value:.{decimals}f} ± {uncertainty:.{decimals}f}"


def _templates() -> jinja2.Environment:
    environment_ = jinja2.Environment(
        loader=jinja2.PackageLoader("heplearn.evaluation", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment_.filters["number"] = number
    environment_.filters["plus_minus"] = plus_minus
    return environment_


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render the report template ``template`` with ``context``."""
    return _templates().get_template(template).render(**context)


def write_report(path: str | os.PathLike[str], template: str, context: Mapping[str, Any]) -> Path:
    """Render ``template`` with ``context`` into ``path`` (atomically)."""
    write_text_atomic(path, render(template, context))
    return Path(path)
