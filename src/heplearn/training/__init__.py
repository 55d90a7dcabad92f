"""Training: the loop, the loss terms, the step strategies, the checkpoints and runs from a config.

- ``fit(model, task, train, val, config)``: the one in-memory entry point (``trainer.py``);
- ``train(config)``: a run directory from a run config (``from_config.py``);
- ``losses``: the loss terms of ``training.loss``; ``steps``: the step strategies of ``training.step``.
"""

from __future__ import annotations

from heplearn._lazy import lazy_names

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

__getattr__, __dir__ = lazy_names(__name__, _API)
