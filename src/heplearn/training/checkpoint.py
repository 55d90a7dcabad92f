"""Checkpoints that survive a kill at any moment, and load without unpickling anything.

A checkpoint is a directory ``checkpoints/step-<N>/`` holding one ``<module>.safetensors`` per
module of the step strategy (``model.safetensors`` is the product network), ``optimizer.pt``
(every optimizer and scheduler of the strategy, and the torch RNG state: plain tensors and
numbers, loaded with ``weights_only=True``) and ``state.json`` (epoch, position in the epoch, early-stopping state,
numpy and Python RNG states). It is written under a temporary name and renamed when complete;
then ``checkpoints/last.json`` is atomically pointed at it and older step directories are removed.
A process killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from heplearn.data.files import dumps, write_text_atomic
from heplearn.errors import DataError

POINTER = "last.json"
BEST = "best"


@dataclass
class TrainingState:
    """Where a training stands: the epoch, the batch within it, the step, the best validation loss and
    whether it has finished."""

    epoch: int = 0  # the epoch in progress (or the next one, if batch == 0)
    batch: int = 0  # batches of ``epoch`` already trained on
    step: int = 0  # optimizer steps so far
    best_val_loss: float = float("inf")
    best_epoch: int = -1
    epochs_without_improvement: int = 0
    finished: bool = False
    numpy_rng: dict[str, Any] = field(default_factory=dict)
    python_rng: list[Any] = field(default_factory=list)


def model_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A state dict safe to hand to safetensors (contiguous, unshared tensors)."""
    return {name: tensor.detach().contiguous().clone() for name, tensor in module.state_dict().items()}


def save_checkpoint(directory: Path, strategy: Any, state: TrainingState) -> Path:
    """Write every module, optimizer and scheduler of ``strategy`` (a ``StepStrategy``) and ``state``."""
    directory.mkdir(parents=True, exist_ok=True)
    state.numpy_rng = np.random.get_state(legacy=False)  # type: ignore[assignment]  # noqa: NPY002
    python_state = random.getstate()
    state.python_rng = [python_state[0], list(python_state[1]), python_state[2]]
    name = f"step-{state.step:09d}"
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=f".{name}."))
    for module_name, module in strategy.modules.items():
        save_file(model_weights(module), staging / f"{module_name}.safetensors")
    torch.save(
        {
            "optimizers": {name: optimizer.state_dict() for name, optimizer in strategy.optimizers.items()},
            "schedulers": {name: scheduler.state_dict() for name, scheduler in strategy.schedulers.items()},
            "torch_rng": torch.get_rng_state(),
        },
        staging / "optimizer.pt",
    )
    # Strict JSON: an unset best_val_loss (inf) is written as null and read back as inf.
    (staging / "state.json").write_text(dumps(asdict(state)))
    final = directory / name
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    write_text_atomic(directory / POINTER, json.dumps({"checkpoint": name}))
    for old in directory.glob("step-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_best(directory: Path, modules: dict[str, torch.nn.Module]) -> None:
    """The weights of the best epoch so far: ``best/<name>.safetensors`` for each of ``modules``."""
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=".best."))
    for name, module in modules.items():
        save_file(model_weights(module), staging / f"{name}.safetensors")
    previous = directory / BEST
    if previous.exists():
        shutil.rmtree(previous)
    staging.rename(previous)


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint in ``directory``, or None when there is none."""
    pointer = directory / POINTER
    if not pointer.is_file():
        return None
    return directory / json.loads(pointer.read_text())["checkpoint"]


def load_checkpoint(path: Path, strategy: Any) -> TrainingState:
    """Restore ``strategy``'s modules, optimizers and schedulers and the RNG states from ``path``."""
    try:
        for module_name, module in strategy.modules.items():
            module.load_state_dict(load_file(path / f"{module_name}.safetensors"))
        extra = torch.load(path / "optimizer.pt", weights_only=True)
        content = json.loads((path / "state.json").read_text())
        for name, optimizer in strategy.optimizers.items():
            optimizer.load_state_dict(extra["optimizers"][name])
        for name, scheduler in strategy.schedulers.items():
            scheduler.load_state_dict(extra["schedulers"][name])
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        raise DataError(
            f"{path}: cannot load the checkpoint ({error}); was it written with another training.step?"
        ) from None
    torch.set_rng_state(extra["torch_rng"])
    if content.get("best_val_loss") is None:
        content["best_val_loss"] = float("inf")
    state = TrainingState(**content)
    if state.numpy_rng:
        np.random.set_state(state.numpy_rng)  # type: ignore[arg-type]  # noqa: NPY002
    if state.python_rng:
        version, internal, gauss = state.python_rng
        random.setstate((version, tuple(internal), gauss))
    return state


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors weights file; a missing file is a ``DataError`` naming it."""
    if not path.is_file():
        raise DataError(f"{path}: no such weights file")
    return load_file(path)
