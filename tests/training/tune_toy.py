"""Toy trial functions for the tuning tests: a known optimum, no training (importable by subprocesses
and Dask workers, which is why they live in a module of their own)."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from heplearn.run_config import RunConfig

# the optimum of ``quadratic``: log10(learning rate) = -2.5, weight decay = 0.3
BEST_LOG10_LEARNING_RATE = -2.5
BEST_WEIGHT_DECAY = 0.3
EPOCHS = 3

BASE = {
    "data": {
        "train": "unused.parquet",
        "val": "unused_val.parquet",
        "inputs": {"jet": {"variables": ["jet_pt"]}},
        "labels": {"classes": ["label_top", "label_qcd"]},
    },
    "model": {"name": "mlp", "preset": "small"},
    "training": {"epochs": EPOCHS},
}
SPACE = {
    "parameters": {
        "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "training.weight_decay": {"type": "float", "low": 0.0, "high": 1.0},
    }
}


def loss(config: RunConfig) -> float:
    """(log10 η + 2.5)² + (λ − 0.3)²: zero at the optimum."""
    return (math.log10(config.training.learning_rate) - BEST_LOG10_LEARNING_RATE) ** 2 + (
        config.training.weight_decay - BEST_WEIGHT_DECAY
    ) ** 2


def quadratic(config: RunConfig, name: str, runs_dir: Path, on_epoch: Any, progress: bool) -> list[dict[str, Any]]:
    """Three "epochs" whose validation loss falls towards ``loss(config)`` (so the pruner has curves)."""
    history = []
    for epoch in range(1, config.training.epochs + 1):
        record = {"epoch": epoch, "val_loss": loss(config) + 1.0 / epoch}
        history.append(record)
        on_epoch(record)
    return history


def logged(config: RunConfig, name: str, runs_dir: Path, on_epoch: Any, progress: bool) -> list[dict[str, Any]]:
    """``quadratic`` that takes ``TOY_SECONDS`` per trial and appends "<trial> <pid>" to ``runs_dir/ran.log``.

    With ``TOY_WORKERS`` set, a worker first waits until that many processes have started (so
    that both take part in a parallel study however slowly each starts).
    """
    workers = int(os.environ.get("TOY_WORKERS", "0"))
    if workers:
        (runs_dir / f"ready_{os.getpid()}").touch()
        deadline = time.monotonic() + 120
        while len(list(runs_dir.glob("ready_*"))) < workers and time.monotonic() < deadline:
            time.sleep(0.05)
    time.sleep(float(os.environ.get("TOY_SECONDS", "0")))
    history = quadratic(config, name, runs_dir, on_epoch, progress)
    with (runs_dir / "ran.log").open("a") as stream:
        stream.write(f"{name} {os.getpid()}\n")
    return history


def main(arguments: list[str]) -> None:
    """``python -m tests.training.tune_toy RUNS_DIR STUDY TRIALS``: a worker of a toy study on SQLite."""
    from heplearn.training.search_space import load_space
    from heplearn.training.tune import TuneSettings, tune

    runs_dir, study, trials = Path(arguments[0]), arguments[1], int(arguments[2])
    # a grace period well above the heartbeat interval: a loaded machine must not make a live trial look dead
    settings = TuneSettings(
        trials=trials, sampler="random", pruner="none", progress=False, heartbeat_interval=1, grace_period=10
    )
    tune(BASE, load_space(SPACE), settings, study, runs_dir, trial_function=logged, report=False)


if __name__ == "__main__":
    main(sys.argv[1:])
