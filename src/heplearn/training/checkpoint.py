"""Checkpoints that survive a kill at any moment, and load without unpickling anything.

A checkpoint is a directory ``checkpoints/step-<N>/`` holding ``model.safetensors`` (weights),
``optimizer.pt`` (optimizer, scheduler and torch RNG state: plain tensors and numbers, loaded with
``weights_only=True``) and ``state.json`` (epoch, position in the epoch, early-stopping state,
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

from heplearn.data.files import write_text_atomic
from heplearn.errors import DataError

POINTER = "last.json"
BEST = "best"


@dataclass
class TrainingState:
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


def save_checkpoint(directory: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, state: TrainingState) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    state.numpy_rng = np.random.get_state(legacy=False)  # type: ignore[assignment]  # noqa: NPY002
    python_state = random.getstate()
    state.python_rng = [python_state[0], list(python_state[1]), python_state[2]]
    name = f"step-{state.step:09d}"
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=f".{name}."))
    save_file(model_weights(module), staging / "model.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state()}, staging / "optimizer.pt")
    (staging / "state.json").write_text(json.dumps(asdict(state), default=_jsonable))
    final = directory / name
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    write_text_atomic(directory / POINTER, json.dumps({"checkpoint": name}))
    for old in directory.glob("step-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_best(directory: Path, module: torch.nn.Module) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=".best."))
    save_file(model_weights(module), staging / "model.safetensors")
    previous = directory / BEST
    if previous.exists():
        shutil.rmtree(previous)
    staging.rename(previous)


def latest_checkpoint(directory: Path) -> Path | None:
    pointer = directory / POINTER
    if not pointer.is_file():
        return None
    return directory / json.loads(pointer.read_text())["checkpoint"]


def load_checkpoint(path: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> TrainingState:
    try:
        module.load_state_dict(load_file(path / "model.safetensors"))
        extra = torch.load(path / "optimizer.pt", weights_only=True)
        content = json.loads((path / "state.json").read_text())
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        raise DataError(f"{path}: cannot load the checkpoint ({error})") from None
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["torch_rng"])
    state = TrainingState(**content)
    if state.numpy_rng:
        np.random.set_state(state.numpy_rng)  # type: ignore[arg-type]  # noqa: NPY002
    if state.python_rng:
        version, internal, gauss = state.python_rng
        random.setstate((version, tuple(internal), gauss))
    return state


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"{path}: no such weights file")
    return load_file(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
