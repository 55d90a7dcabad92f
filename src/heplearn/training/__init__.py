"""Training: the loop, the loss terms, the step strategies, the checkpoints and runs from a config.

- ``fit(model, task, train, val, config)``: the one in-memory entry point (``trainer.py``);
- ``train(config)``: a run directory from a run config (``from_config.py``);
- ``losses``: the loss terms of ``training.loss``; ``steps``: the step strategies of ``training.step``.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "fit": "heplearn.training.trainer",
    "FitResult": "heplearn.training.trainer",
    "Trainer": "heplearn.training.trainer",
    "BatchSource": "heplearn.training.trainer",
    "InMemorySource": "heplearn.training.trainer",
    "StreamSource": "heplearn.training.trainer",
    "train": "heplearn.training.from_config",
    "make_task": "heplearn.training.from_config",
    "register_loss_term": "heplearn.training.losses",
    "register_step_strategy": "heplearn.training.steps",
}
__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'heplearn.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
