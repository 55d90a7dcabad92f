"""Named extension points, imported on first use: loss terms, step strategies.

A ``Plugins`` table maps a config name (``training.loss[i].name``, ``training.step.name``) to the
module and class that implement it, so that a method's term or strategy loads with its method
and a user can register their own without touching heplearn.
"""

from __future__ import annotations

import importlib
from typing import Any

from heplearn.config import StrictModel, validate
from heplearn.errors import ConfigError


class Plugins:
    """``name -> (module, class)`` for one kind of extension (``what``: "loss term", ...)."""

    def __init__(self, what: str, entries: dict[str, tuple[str, str]]) -> None:
        self.what = what
        self.entries = dict(entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        """The registered names, in the order they were registered."""
        return list(self.entries)

    def register(self, cls: type) -> None:
        """Make ``cls`` available under ``cls.name``."""
        self.entries[cls.name] = (cls.__module__, cls.__qualname__)  # type: ignore[attr-defined]

    def get(self, name: str, where: str) -> Any:
        """The class registered as ``name``; an unknown name is a ``ConfigError`` naming ``where``."""
        if name not in self.entries:
            raise ConfigError(f"{where}: unknown {self.what} {name!r}; choose one of {', '.join(self.entries)}")
        module, attribute = self.entries[name]
        return getattr(importlib.import_module(module), attribute)

    def settings(self, name: str, settings: dict[str, Any], where: str) -> StrictModel:
        """The plugin's own settings, validated by its ``Settings`` model (a typo names the key)."""
        return validate(self.get(name, where).Settings, settings, where)
