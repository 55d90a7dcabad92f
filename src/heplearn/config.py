"""Loading YAML configs into pydantic models, with errors that name the key, and ``--set`` overrides."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from heplearn.errors import ConfigError

Model = TypeVar("Model", bound=pydantic.BaseModel)


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's booleans: only true/false, so that a key or value
    ``on``, ``off``, ``yes`` or ``no`` stays a string (``{name: disco, on: jet_sdmass}``)."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str) -> Any:
    """YAML text parsed with ``ConfigLoader`` (YAML 1.2 booleans)."""
    return yaml.load(text, Loader=ConfigLoader)


class StrictModel(pydantic.BaseModel):
    """A config section: unknown keys are errors, values are checked on assignment too."""

    # the docstring under a field is its description (the docs' key reference is built from them)
    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML file as a mapping; a missing file, invalid YAML or a non-mapping is a ``ConfigError``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        content = load_yaml(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(error)}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return content


def yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's error in one line: where (line, column) and what, without its quoted source lines."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}" + (f" ({context})" if context else "")


def validate(model: type[Model], content: Any, where: str) -> Model:
    """``model.model_validate(content)``, turning pydantic's report into one ConfigError."""
    try:
        return model.model_validate(content)
    except pydantic.ValidationError as error:
        problems = []
        for item in error.errors():
            key = ".".join(str(part) for part in (where, *item["loc"]) if part != "")
            message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
            problems.append(f"{key}: {message}")
        raise ConfigError("; ".join(problems)) from None


def apply_overrides(content: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a nested dict, in place."""
    for assignment in assignments:
        key, separator, raw = assignment.partition("=")
        if not separator or not key:
            raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. training.epochs=5")
        try:
            value = load_yaml(raw)
        except yaml.YAMLError:
            value = raw
        node = content
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {assignment!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return content
