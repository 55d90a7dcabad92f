"""MkDocs hooks: the pages built from the code (the config key reference, the model zoo, a page per method).

``{{ config_reference }}`` and ``{{ model_zoo }}`` in a page are replaced by tables generated from the
pydantic config models and from ``heplearn.models.registry``; every module of ``heplearn.methods``
gets a page that renders its docstring. A config key without a description fails the build.
"""

from __future__ import annotations

import ast
import re
import types
import typing
from pathlib import Path
from typing import Any

import pydantic
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
METHODS = ROOT / "src" / "heplearn" / "methods"
# Input sizes the zoo's parameter counts are computed for (a JetClass-like set of 7 particle features).
ZOO_DIMS = {"particles": 7, "points": 2, "vectors": 4, "jet": 6, "image": 1, "mask": 1}


# ----------------------------------------------------------------------------- method pages
def method_modules() -> list[str]:
    """The modules of ``heplearn.methods`` that get a page (their commands' modules excluded)."""
    return sorted(
        path.stem for path in METHODS.glob("*.py") if not path.stem.startswith("_") and not path.stem.endswith("_cli")
    )


def method_title(name: str) -> str:
    """A page title: the first sentence of the module's docstring, else its name."""
    docstring = ast.get_docstring(ast.parse((METHODS / f"{name}.py").read_text())) or ""
    first = docstring.strip().split("\n\n")[0].replace("\n", " ").split(": ")[0].split(". ")[0].rstrip(".")
    readable = len(first) <= 60 and first.count("(") == first.count(")") and "``" not in first
    return first if first and readable else name.replace("_", " ").capitalize()


def on_config(config: Any) -> Any:
    """Put one nav entry per method module under "Methods"."""
    for entry in config["nav"]:
        if isinstance(entry, dict) and "Methods" in entry:
            entry["Methods"] = [{method_title(name): f"methods/{name}.md"} for name in method_modules()]
    return config


def on_files(files: Any, config: Any) -> Any:
    """Add the generated method pages."""
    for name in method_modules():
        content = (
            f"# {method_title(name)}\n\n`heplearn.methods.{name}`\n\n::: heplearn.methods.{name}\n"
            "    options:\n      members: false\n      show_root_heading: false\n"
            "      show_root_toc_entry: false\n"
        )
        files.append(File.generated(config, f"methods/{name}.md", content=content))
    return files


# ----------------------------------------------------------------------------- config reference
def type_name(annotation: Any) -> str:
    """A readable type: ``int | None``, ``list[str]``, ``"cosine" | "onecycle"``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(
            f'`"{value}"`' if isinstance(value, str) else f"`{value}`" for value in typing.get_args(annotation)
        )
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        arguments = ", ".join(type_name(arg).strip("`") for arg in typing.get_args(annotation))
        return f"`{getattr(origin, '__name__', str(origin))}[{arguments}]`"
    if annotation is type(None):
        return "`None`"
    return f"`{getattr(annotation, '__name__', str(annotation))}`"


def constraints(field: pydantic.fields.FieldInfo) -> str:
    """The bounds a value must respect (``> 0``, ``≥ 1``)."""
    symbols = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤", "min_length": "length ≥"}
    found = []
    for item in field.metadata:
        for attribute, symbol in symbols.items():
            value = getattr(item, attribute, None)
            if value is not None:
                found.append(f"{symbol} {value}")
    return ", ".join(found)


def default_text(field: pydantic.fields.FieldInfo) -> str:
    """The default as YAML would spell it, or *required*."""
    if field.is_required():
        return "*required*"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, pydantic.BaseModel):
        return "(see below)"
    if isinstance(value, list | dict | tuple):
        return f"`{value}`"
    return f"`{ {None: 'null', True: 'true', False: 'false'}.get(value, value) }`"


def nested_models(annotation: Any) -> list[tuple[str, type[pydantic.BaseModel]]]:
    """The config sections a field holds: ``("", Model)``, ``(".<name>", Model)`` for a mapping of them,
    ``("[]", Model)`` for a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [("", annotation)]
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if (
        origin in (list, dict)
        and arguments
        and isinstance(arguments[-1], type)
        and issubclass(arguments[-1], pydantic.BaseModel)
    ):
        return [("[]" if origin is list else ".<name>", arguments[-1])]
    return [found for argument in arguments for found in nested_models(argument)]


def config_rows(model: type[pydantic.BaseModel], prefix: str) -> list[str]:
    """One table row per key of ``model`` and of the sections it holds, depth first."""
    rows, sections = [], []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if not field.description:
            raise PluginError(
                f"config key {key} ({model.__name__}.{name}) has no description: write a docstring under the field"
            )
        rows.append(
            f"| `{key}` | {type_name(field.annotation)} | {default_text(field)} | {constraints(field)} | "
            f"{field.description} |"
        )
        sections += [(f"{key}{suffix}", section) for suffix, section in nested_models(field.annotation)]
    for key, section in sections:
        rows += config_rows(section, key)
    return rows


def config_reference() -> str:
    """The table of every key of a run config (``data``, ``model``, ``training``)."""
    from heplearn.run_config import RunConfig

    header = "| key | type | default | allowed | what it does |\n|---|---|---|---|---|"
    return header + "\n" + "\n".join(config_rows(RunConfig, ""))


# ----------------------------------------------------------------------------- model zoo
def module_summary(module: str) -> tuple[str, str]:
    """The first paragraph of a model module's docstring, and its references (the arXiv numbers it cites)."""
    docstring = (
        ast.get_docstring(ast.parse((ROOT / "src" / Path(*module.split("."))).with_suffix(".py").read_text())) or ""
    )
    summary = docstring.split("\n\n")[0].replace("\n", " ")
    references = sorted(set(re.findall(r"arXiv:\d{4}\.\d{4,5}", docstring)))
    tmva = re.search(r"TMVA Users Guide §[\d.]+", docstring)
    links = [f"[{ref}](https://arxiv.org/abs/{ref.removeprefix('arXiv:')})" for ref in references]
    return summary, ", ".join(links + ([tmva.group(0)] if tmva else []))


def model_zoo() -> str:
    """The table of every model in the registry, with its references and parameter counts per preset."""
    from heplearn.models import registry

    rows = ["| name | class | reads | what | references | parameters per preset |", "|---|---|---|---|---|---|"]
    for name in registry.model_names():
        cls = registry.model_class(name)
        module = (registry.TORCH_MODELS.get(name) or registry.CLASSICAL_MODELS[name])[0]
        summary, references = module_summary(module)
        if registry.is_torch_model(name):
            dims = {key: ZOO_DIMS[key] for key in cls.input_keys}
            counts = []
            for preset in cls.presets:
                network = cls.from_preset(preset, 2, dims)
                counts.append(f"{preset}: {sum(p.numel() for p in network.parameters()):,}")
            reads, parameters = ", ".join(f"`{key}`" for key in cls.input_keys), "<br>".join(counts)
        else:
            reads, parameters = "`jet`", "— (fitted in one pass)"
        rows.append(f"| `{name}` | `{cls.__name__}` | {reads} | {summary} | {references or '—'} | {parameters} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill in the generated tables."""
    if "{{ config_reference }}" in markdown:
        markdown = markdown.replace("{{ config_reference }}", config_reference())
    if "{{ model_zoo }}" in markdown:
        markdown = markdown.replace("{{ model_zoo }}", model_zoo())
    return markdown
