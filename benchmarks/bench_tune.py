"""The samplers of ``heplearn tune`` on an objective with a known optimum, and the cost of a study's database.

The objective is the quadratic bowl (log10 η + 2.5)² + (λ − 0.3)² over the run config's
``training.learning_rate`` (log range 1e-4..1e-1) and ``training.weight_decay`` (0..1): its
minimum is 0 at η = 10^-2.5, λ = 0.3. No network is trained (each "trial" reports three
epochs of the bowl plus 1/epoch), so what is measured is the search itself: the best value each
sampler reaches after N trials, over several seeds, with random search as the reference, and
the time per trial of the SQLite study (what resuming and parallel workers cost) against an
in-memory one.

    python benchmarks/bench_tune.py            # 40 trials, 10 seeds
    python benchmarks/bench_tune.py --quick    # 20 trials, 3 seeds

The last line is JSON: {"ours": TPE's median best, "reference": random search's, "ratio": ...}.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import print_machine

from heplearn.run_config import RunConfig
from heplearn.training.search_space import load_space
from heplearn.training.tune import TuneSettings, tune

BASE = {
    "data": {
        "train": "unused.parquet",
        "val": "unused_val.parquet",
        "inputs": {"jet": {"variables": ["jet_pt"]}},
        "labels": {"classes": ["label_top", "label_qcd"]},
    },
    "model": {"name": "mlp", "preset": "small"},
    "training": {"epochs": 3},
}
SPACE = {
    "parameters": {
        "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "training.weight_decay": {"type": "float", "low": 0.0, "high": 1.0},
    }
}


def bowl(config: RunConfig) -> float:
    """The objective's distance from its optimum (0 there)."""
    return (math.log10(config.training.learning_rate) + 2.5) ** 2 + (config.training.weight_decay - 0.3) ** 2


def trial(config: RunConfig, name: str, runs_dir: Path, on_epoch: Any, progress: bool) -> list[dict[str, Any]]:
    """Three epochs whose validation loss falls to the bowl's value (the pruner sees curves)."""
    history = []
    for epoch in range(1, config.training.epochs + 1):
        record = {"epoch": epoch, "val_loss": bowl(config) + 1.0 / epoch}
        history.append(record)
        on_epoch(record)
    return history


def best_distance(sampler: str, trials: int, seed: int, folder: Path, storage: str | None = "memory") -> float:
    settings = TuneSettings(
        trials=trials, sampler=sampler, pruner="median", seed=seed, population_size=8, progress=False
    )
    result = tune(
        BASE,
        load_space(SPACE),
        settings,
        f"{sampler}-{seed}-{storage is None}",
        folder,
        storage=storage,
        trial_function=trial,
        report=False,
    )
    return result.best_value - 1.0 / 3  # the bowl at the best trial (its kept epoch is the third)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 trials, 3 seeds")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=None)
    arguments = parser.parse_args()
    print_machine()
    trials = arguments.trials or (20 if arguments.quick else 40)
    seeds = arguments.seeds or (3 if arguments.quick else 10)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    medians: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        print(f"best distance from the optimum after {trials} trials (median and max over {seeds} seeds)")
        print(f"{'sampler':<8} {'median':>10} {'max':>10} {'s/trial':>9}")
        for sampler in ("tpe", "nsga2", "random"):  # interleaved seeds would not change a thing: no shared state
            started = time.perf_counter()
            distances = [best_distance(sampler, trials, seed, Path(folder)) for seed in range(seeds)]
            seconds = (time.perf_counter() - started) / (trials * seeds)
            medians[sampler] = statistics.median(distances)
            print(f"{sampler:<8} {medians[sampler]:>10.4f} {max(distances):>10.4f} {seconds:>9.4f}")
        started = time.perf_counter()
        best_distance("tpe", trials, 0, Path(folder), storage=None)  # the default: SQLite beside the trials
        sqlite = (time.perf_counter() - started) / trials
        started = time.perf_counter()
        best_distance("tpe", trials, 0, Path(folder))
        memory = (time.perf_counter() - started) / trials
        print(f"seconds per trial, TPE: SQLite study {sqlite:.4f}, in memory {memory:.4f}")
    print(
        json.dumps(
            {
                "ours": medians["tpe"],
                "reference": medians["random"],
                "ratio": medians["tpe"] / medians["random"] if medians["random"] else None,
            }
        )
    )


if __name__ == "__main__":
    main()
