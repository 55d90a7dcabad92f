"""A package's curated public API, each name imported from its module on first use.

``import heplearn`` and the CLI stay fast (no torch, onnxruntime or FastAPI until a name that needs
them is used), while ``heplearn.serving.export_run`` and the like work as plain attributes and
``dir()`` lists exactly the curated names. A package writes::

    __getattr__, __dir__ = lazy_api(__name__, {
        "heplearn.serving.export": ["export_run", "ExportResult"],
        "heplearn.serving.predict": ["predict_files"],
    })
    __all__ = ["ExportResult", "export_run", "predict_files"]
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_api(
    package: str, modules: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package`` for the names of each module."""
    api = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in api:
            return getattr(importlib.import_module(api[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(api)

    return __getattr__, __dir__


def lazy_names(package: str, api: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``lazy_api`` for a table of name -> module (the packages that list one name per line)."""
    modules: dict[str, list[str]] = {}
    for name, module in api.items():
        modules.setdefault(module, []).append(name)
    return lazy_api(package, modules)


__all__ = ["lazy_api", "lazy_names"]
