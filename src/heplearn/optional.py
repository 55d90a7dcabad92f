"""Optional packages: imported where they are used, with an error that says which extra installs them.

``pip install heplearn`` installs the core (the readers, training of every network and of the cuts
and likelihood, evaluation, statistics); the rest comes in extras, ``pip install 'heplearn[serve]'``,
or all of them with ``heplearn[all]``. ``EXTRAS`` says which package each extra provides.

    xgb = optional_import("xgboost", "the BDT (model: bdt)")

A package that is not installed is a ``MissingExtraError`` naming what needs it and the exact
``pip install``; one that is installed but fails to import (a missing shared library, a broken
dependency) is a ``BrokenPackageError`` that says so and quotes the reason, never disguised as a
missing extra. Both are ``HeplearnError`` (the command line prints one line and exits 2) and
``ImportError`` (code that falls back when a package is absent keeps working).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from heplearn.errors import HeplearnError

# extra -> {top-level import name: the distribution pyproject.toml's extra lists for it};
# tests/test_extras.py checks this table against pyproject.toml. A package in two extras (onnx) is
# named, when missing, with the first extra that lists it unless the caller names another.
EXTRAS: dict[str, dict[str, str]] = {
    "generate": {"pythia8mc": "pythia8mc", "fastjet": "fastjet"},  # heplearn generate, the demo's jets
    "bdt": {"xgboost": "xgboost"},  # model: bdt
    "export": {
        "onnx": "onnx",
        "onnxscript": "onnxscript",
        "onnxruntime": "onnxruntime",
        "onnxmltools": "onnxmltools",
    },  # heplearn export, the onnx engine of predict
    "serve": {"fastapi": "fastapi", "uvicorn": "uvicorn", "onnx": "onnx", "onnxruntime": "onnxruntime"},
    "dask": {"dask": "dask", "distributed": "dask"},  # --workers / --dask of generate, predict, tune
    "tensorboard": {"tensorboard": "tensorboard"},  # the trainer's TensorBoard event files
    "tune": {"optuna": "optuna"},  # heplearn tune
    "analysis": {"snakemake": "snakemake"},  # heplearn analysis
    "grpc": {"tritonclient": "tritonclient", "grpc": "tritonclient"},  # serve --grpc-port (grpcio comes with it)
    "flows": {"zuko": "zuko"},  # CATHODE's conditional normalizing flow
    "hls4ml": {"hls4ml": "hls4ml"},  # the trigger encoder's fixed-point emulation
}

# imports that need other top-level packages than their own first name (torch is core)
_PACKAGES_OF: dict[str, tuple[str, ...]] = {
    "dask.distributed": ("dask", "distributed"),
    "torch.utils.tensorboard": ("tensorboard",),
    "tritonclient.grpc": ("tritonclient", "grpc"),
}


class OptionalPackageError(HeplearnError, ImportError):
    """An optional package could not be imported: the message says which, what needs it and what to do."""


class MissingExtraError(OptionalPackageError):
    """An optional package is not installed; the message gives the ``pip install 'heplearn[extra]'``."""


class BrokenPackageError(OptionalPackageError):
    """An optional package is installed but its import fails; the message quotes the reason (``__cause__``)."""


def extra_of(package: str) -> str:
    """The extra that installs the top-level import ``package`` (the first of ``EXTRAS`` listing it)."""
    for extra, packages in EXTRAS.items():
        if package in packages:
            return extra
    raise ValueError(f"{package!r} is in no extra of heplearn.optional.EXTRAS")


def is_installed(package: str) -> bool:
    """Whether the top-level import ``package`` can be found (without importing it).

    A package set to ``None`` in ``sys.modules`` (what the tests do to hide one) counts as absent.
    """
    if package in sys.modules:
        return sys.modules[package] is not None
    return importlib.util.find_spec(package) is not None


def _missing(packages: tuple[str, ...] | list[str], needed_by: str, extra: str) -> MissingExtraError:
    listed = ", ".join(packages)
    verb = "is" if len(packages) == 1 else "are"
    return MissingExtraError(
        f"{needed_by} needs {listed}, which {verb} not installed: pip install 'heplearn[{extra}]'", name=packages[0]
    )


def optional_import(module: str, needed_by: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` (``"xgboost"``, ``"dask.distributed"``) for ``needed_by``, a phrase naming the feature.

    ``extra``: the extra to name in the error (default: the one ``EXTRAS`` gives the package).
    Raises ``MissingExtraError`` if the package is not installed, ``BrokenPackageError`` (chained
    to the original error) if it is installed and its import fails all the same.
    """
    packages = _PACKAGES_OF.get(module, (module.partition(".")[0],))
    loaded = sys.modules.get(module)
    if loaded is not None and all(sys.modules.get(package) is not None for package in packages):
        return loaded  # the common case: imported before
    extra = extra or extra_of(packages[0])
    missing = [package for package in packages if not is_installed(package)]
    if missing:
        raise _missing(missing, needed_by, extra)
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise BrokenPackageError(
            f"{needed_by} needs {module}, which is installed but failed to import "
            f"({type(error).__name__}: {error}); this is not a missing extra: repair that installation "
            f"(pip install --force-reinstall 'heplearn[{extra}]')",
            name=module,
        ) from error


def require_extra(extra: str, needed_by: str) -> None:
    """Raise ``MissingExtraError`` unless every package of ``extra`` is installed (nothing is imported).

    For a command that needs a whole extra: it fails before it starts (``heplearn serve``).
    """
    missing = [package for package in EXTRAS[extra] if not is_installed(package)]
    if missing:
        raise _missing(missing, needed_by, extra)
