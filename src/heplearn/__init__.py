"""heplearn: machine learning for collider physics, from simulated events to a physics result."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("heplearn")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# The public API, imported on first use so that `import heplearn` (and the CLI) stays fast.
_API = {
    "Classifier": "heplearn.classifier",
    "load_jets": "heplearn.classifier",
    "TrainedModel": "heplearn.trained",
    "train": "heplearn.training.run",
    "load_run_config": "heplearn.run_config",
    "load_data_config": "heplearn.data.config",
    "DataConfig": "heplearn.data.config",
    "HeplearnError": "heplearn.errors",
}
__all__ = [  # noqa: RUF022 - the version first, then the API in reading order
    "__version__",
    "Classifier",
    "load_jets",
    "TrainedModel",
    "train",
    "load_run_config",
    "load_data_config",
    "DataConfig",
    "HeplearnError",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'heplearn' has no attribute {name!r}")
