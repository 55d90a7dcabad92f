"""Feature ranking by permutation importance, with XGBoost's gain beside it for BDTs.

Permutation importance (Breiman, "Random Forests", 2001; model-agnostic form: Fisher, Rudin &
Dominici, arXiv:1801.01489) is the loss of performance when one feature is shuffled across jets,
which breaks its link to the label while keeping its distribution. The loss here is the drop of
the signal-vs-rest AUC, averaged over ``repeats`` shuffles.

- A jet-level feature is one column of a per-jet input group: its values are permuted across jets.
- A particle feature is one column of a per-particle group: the values of all real particles
  (mask true) are permuted together across jets, padded slots are left as they are. A variable
  that appears in several groups (``part_deta`` in ``particles`` and ``points``) is shuffled with
  the same permutation everywhere, so the model never sees two inconsistent copies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from heplearn.data.jets import JetArrays
from heplearn.errors import ConfigError
from heplearn.evaluation.metrics import fast_auc
from heplearn.progress import progress_bar

log = logging.getLogger(__name__)


class Predictor(Protocol):
    """Anything with ``predict(arrays) -> probabilities`` (a ``TrainedModel``, or a stand-in)."""

    def predict(self, arrays: JetArrays) -> np.ndarray:
        """Class probabilities of ``arrays`` (jets, classes)."""


@dataclass(frozen=True)
class FeatureImportance:
    """How much the AUC drops when one feature is permuted across jets (and XGBoost gain for a BDT)."""

    name: str
    kind: str  # "jet" or "particle"
    groups: tuple[str, ...]
    auc_drop: float  # AUC(original) - AUC(feature permuted), mean over the repeats
    uncertainty: float  # standard deviation over the repeats
    gain: float | None = None  # XGBoost's average split gain, for BDTs


@dataclass(frozen=True)
class FeatureRanking:
    """The features ranked by their AUC drop, most important first."""

    baseline_auc: float
    features: list[FeatureImportance]  # most important first
    jets: int
    repeats: int


def model_input_variables(model: Any) -> dict[str, list[str]]:
    """Input group -> variable names of the groups a ``TrainedModel`` reads."""
    data = model.config.data
    if getattr(model, "classical", None) is not None:
        groups = [data.jet_group(model.name)]
    else:
        keys = getattr(model.network, "input_keys", tuple(data.inputs))  # an instance may read more
        groups = [key for key in keys if key in data.inputs]
    return {group: list(data.inputs[group].variables) for group in groups}


def bdt_gain(model: Any) -> dict[str, float] | None:
    """XGBoost's gain per feature when ``model`` is a BDT run, else ``None``."""
    classical = getattr(model, "classical", None)
    gains = getattr(classical, "feature_importances", None) if classical is not None else None
    return dict(gains) if isinstance(gains, Mapping) else None


def _feature_columns(arrays: JetArrays, variables: Mapping[str, Sequence[str]]) -> dict[str, list[tuple[str, int]]]:
    """Variable name -> every (group, column) holding it."""
    columns: dict[str, list[tuple[str, int]]] = {}
    for group, names in variables.items():
        if group not in arrays.inputs:
            raise ConfigError(f"permutation importance: the arrays have no input group {group!r}")
        if arrays.inputs[group].shape[-1] != len(names):
            raise ConfigError(
                f"permutation importance: group {group!r} has {arrays.inputs[group].shape[-1]} "
                f"columns but {len(names)} variable names"
            )
        for column, name in enumerate(names):
            columns.setdefault(name, []).append((group, column))
    return columns


def permuted(arrays: JetArrays, places: Sequence[tuple[str, int]], rng: np.random.Generator) -> JetArrays:
    """A copy of ``arrays`` with one feature shuffled across jets in every (group, column) of ``places``."""
    inputs = dict(arrays.inputs)
    jet_order: np.ndarray | None = None
    particle_order: np.ndarray | None = None
    for group, column in places:
        values = inputs[group].copy()
        if values.ndim == 2:
            if jet_order is None:
                jet_order = rng.permutation(len(values))
            values[:, column] = values[jet_order, column]
        else:
            if arrays.mask is None:
                raise ConfigError(f"permutation importance: group {group!r} is per-particle but there is no mask")
            real = values[..., column][arrays.mask]
            if particle_order is None:
                particle_order = rng.permutation(len(real))
            view = values[..., column]  # a view: writing into it writes into ``values``
            view[arrays.mask] = real[particle_order]
        inputs[group] = values
    return JetArrays(inputs, arrays.mask, arrays.label, arrays.weight, arrays.observers)


def permutation_importance(
    model: Predictor,
    arrays: JetArrays,
    variables: Mapping[str, Sequence[str]] | None = None,
    repeats: int = 3,
    seed: int | np.random.Generator = 0,
    signal_class: int = 0,
    max_jets: int | None = 20_000,
    gains: Mapping[str, float] | None = None,
    progress: bool = True,
) -> FeatureRanking:
    """Rank the model's input features by the AUC lost when each is permuted.

    ``variables`` (input group -> variable names) defaults to the groups a ``TrainedModel``
    reads; ``gains`` (e.g. ``bdt_gain(model)``) are attached to the features they name.
    """
    rng = np.random.default_rng(seed)
    if max_jets is not None and len(arrays) > max_jets:
        arrays = arrays.take(np.sort(rng.choice(len(arrays), max_jets, replace=False)))
    variables = model_input_variables(model) if variables is None else variables
    columns = _feature_columns(arrays, variables)
    is_signal = arrays.label == signal_class
    baseline = fast_auc(is_signal, model.predict(arrays)[:, signal_class], arrays.weight)
    features = []
    with progress_bar(
        total=len(columns) * repeats, desc="permutation importance", disable=not progress, leave=False
    ) as bar:
        for name, places in columns.items():
            drops = []
            for _ in range(repeats):
                shuffled = permuted(arrays, places, rng)
                drops.append(baseline - fast_auc(is_signal, model.predict(shuffled)[:, signal_class], arrays.weight))
                bar.update()
            kind = "particle" if arrays.inputs[places[0][0]].ndim == 3 else "jet"
            features.append(
                FeatureImportance(
                    name,
                    kind,
                    tuple(group for group, _ in places),
                    float(np.mean(drops)),
                    float(np.std(drops, ddof=1)) if repeats > 1 else 0.0,
                    None if gains is None else gains.get(name),
                )
            )
    features.sort(key=lambda feature: feature.auc_drop, reverse=True)
    log.info("permutation importance of %d features on %d jets", len(features), len(arrays))
    return FeatureRanking(baseline, features, len(arrays), repeats)
