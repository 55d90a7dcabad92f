"""Applying a trained run to data for evaluation: the model, the files, the jets, the scores.

The jets are read with the run's own data config (selection, labels, weights), to which the
observers evaluation looks at are added when the files hold them: jet pT, η and mass for the
binned efficiencies and the mass sculpting, and ``aux_log_lr`` (the exact log-likelihood ratio of
the analytic toy) for the Neyman–Pearson check.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heplearn.data.config import DataConfig, expand_files
from heplearn.data.io import open_source
from heplearn.data.jets import JetArrays
from heplearn.errors import ConfigError, DataError
from heplearn.evaluation.metrics import effective_count
from heplearn.evaluation.multiclass import discriminant
from heplearn.evaluation.report import jsonable
from heplearn.progress import progress_bar
from heplearn.trained_model import TrainedModel

OPTIMAL_OBSERVER = "aux_log_lr"  # the exact log-likelihood ratio of the analytic toy
MASS_OBSERVERS = ("jet_sdmass", "jet_mass")
AUTO_OBSERVERS = ("jet_pt", "jet_eta", *MASS_OBSERVERS, OPTIMAL_OBSERVER)
OBSERVER_LABELS = {
    "jet_pt": r"Jet $p_\mathrm{T}$ [GeV]",
    "jet_eta": r"Jet $\eta$",
    "jet_sdmass": r"Soft-drop jet mass $m_\mathrm{SD}$ [GeV]",
    "jet_mass": r"Jet mass $m_\mathrm{jet}$ [GeV]",
}
PREDICTION_CHUNK = 50_000


def load_run(run_dir: str | os.PathLike[str], kinds: tuple[str, ...] = ()) -> TrainedModel:
    """The trained model of a run directory; a missing or unfinished run is a ``DataError``.

    Classifiers are always accepted; ``kinds`` names the other task kinds the caller handles.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run directory")
    model = TrainedModel.load(run_dir)
    if not model.is_classifier and model.task.kind not in kinds:
        covered = ", ".join(("classifiers", *kinds))
        raise ConfigError(f"{run_dir}: this evaluation covers {covered}; this run is a {model.task.kind} model")
    return model


def data_files(files: Sequence[str | os.PathLike[str]] | None, where: str = "--data") -> list[Path]:
    """The files (globs expanded) of ``files``; none, or a pattern matching nothing, is a ``DataError``."""
    if not files:
        raise DataError(f"{where}: give at least one data file")
    return expand_files([str(file) for file in files], where)


def evaluation_data_config(model: TrainedModel, files: Sequence[Path]) -> DataConfig:
    """The run's data config, plus the observers evaluation uses that the first file holds.

    The classical models read only their per-jet group: particles are not padded for them.
    """
    data = model.config.data
    available = set(open_source(files[0], data.treename).field_names())
    observers = list(data.observers) + [
        name for name in AUTO_OBSERVERS if name in available and name not in data.observers
    ]
    update: dict[str, Any] = {"observers": observers}
    if model.classical is not None:
        group = data.jet_group(model.name)
        update["inputs"] = {group: data.inputs[group]}
    return data.model_copy(update=update)


def predict(model: TrainedModel, arrays: JetArrays, progress: bool = True) -> np.ndarray:
    """The task's outputs (class probabilities for a classifier) for every jet, in chunks (with a progress bar)."""
    parts = []
    starts = range(0, len(arrays), PREDICTION_CHUNK)
    for start in progress_bar(
        starts, desc=f"predicting {model.name}", disable=not progress or len(starts) < 2, leave=False
    ):
        parts.append(model.predict(arrays.take(slice(start, start + PREDICTION_CHUNK))))
    return np.concatenate(parts).astype(np.float64)


def signal_score(
    probabilities: np.ndarray, class_names: Sequence[str], fractions: Sequence[float] | None = None
) -> tuple[np.ndarray, str]:
    """The score the binary figures use: p_sig for two classes, else the discriminant D."""
    signal = class_names[0]
    if probabilities.shape[1] == 2:
        return probabilities[:, 0], f"p({signal})"
    return discriminant(probabilities, 0, fractions), f"D({signal}) = ln(p_{signal} / Σ f_i p_i)"


def chosen_observers(
    arrays: JetArrays, observers: Sequence[str] | None = None, mass_observer: str | None = None
) -> tuple[list[str], str | None]:
    """Observers for the binned efficiencies and the mass observer for sculpting, among those present.

    By default: jet pT, η and one mass (soft-drop preferred), and the first of jet_sdmass, jet_mass.
    """
    if observers is not None:
        missing = [name for name in observers if name not in arrays.observers]
        if missing:
            raise ConfigError(
                f"observers {missing} are not in the data (it has {sorted(arrays.observers)}); "
                "add them to data.observers"
            )
        binned = list(observers)
    else:
        binned = [name for name in AUTO_OBSERVERS if name in arrays.observers and name != OPTIMAL_OBSERVER]
        if "jet_sdmass" in binned and "jet_mass" in binned:
            binned.remove("jet_mass")
    if mass_observer is not None and mass_observer not in arrays.observers:
        raise ConfigError(
            f"mass observer {mass_observer!r} is not in the data (it has {sorted(arrays.observers)}); "
            "add it to data.observers"
        )
    mass = mass_observer or next((name for name in MASS_OBSERVERS if name in arrays.observers), None)
    return binned, mass


def data_summary(
    files: Sequence[Path], arrays: JetArrays, class_names: Sequence[str], data: DataConfig
) -> dict[str, Any]:
    """Files, jets and weights per class, observer ranges and inputs, for the report."""
    classes = []
    for index, name in enumerate(class_names):
        selected = arrays.label == index
        classes.append(
            {
                "name": name,
                "jets": int(selected.sum()),
                "weight": float(arrays.weight[selected].sum()),
                "effective_jets": effective_count(arrays.weight[selected]),
            }
        )
    observers = {
        name: {"min": float(np.min(values)), "median": float(np.median(values)), "max": float(np.max(values))}
        for name, values in arrays.observers.items()
        if len(values)
    }
    return jsonable(
        {
            "files": [str(file) for file in files],
            "jets": len(arrays),
            "classes": classes,
            "selection": data.selection,
            "weights": data.weights,
            "observers": observers,
            "inputs": {
                name: {"variables": group.variables, "length": group.length} for name, group in data.inputs.items()
            },
        }
    )


def safe_name(text: str) -> str:
    """``text`` usable as a folder or file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "data"
