"""Multiclass taggers: one-vs-rest and one-vs-one ROCs, the confusion matrix, tagger discriminants.

A K-class tagger outputs probabilities p_1..p_K. Analyses use it through a discriminant that
compares one class with a mixture of the others,

    D = ln( p_sig / Σ_i f_i p_bkg,i ),     Σ_i f_i = 1,

the form of the ATLAS flavour-tagging discriminants (DL1: ATL-PHYS-PUB-2017-013; DL1r/GN1 with
b vs c and light fractions f_c, 1-f_c), where the fractions f_i weight each background as expected
in the analysis. Pairs of classes are compared with p_a / (p_a + p_b), as in the ParticleNet
"X vs QCD" scores (Qu & Gouskos, arXiv:1902.08570).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np

from heplearn.errors import ConfigError, DataError
from heplearn.evaluation.metrics import Roc, roc

PROBABILITY_FLOOR = 1e-12  # keeps ln finite for probabilities that round to 0


def one_vs_rest(
    labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str], weight: np.ndarray | None = None
) -> dict[str, Roc]:
    """For every class present with others: its ROC with p_class as score against all other jets."""
    labels = np.asarray(labels)
    curves = {}
    for index, name in enumerate(class_names):
        is_class = labels == index
        if is_class.any() and not is_class.all():
            curves[name] = roc(is_class, probabilities[:, index], weight)
    return curves


def one_vs_one(
    labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str], weight: np.ndarray | None = None
) -> dict[str, Roc]:
    """For every pair ``a_vs_b``: the ROC of class a against class b on their jets, score p_a/(p_a+p_b)."""
    labels = np.asarray(labels)
    weight = np.ones(len(labels)) if weight is None else np.asarray(weight, np.float64)
    curves = {}
    for first, second in combinations(range(len(class_names)), 2):
        selected = (labels == first) | (labels == second)
        if not (labels[selected] == first).any() or not (labels[selected] == second).any():
            continue
        pair = probabilities[selected][:, [first, second]].astype(np.float64)
        score = pair[:, 0] / np.maximum(pair.sum(axis=1), PROBABILITY_FLOOR)
        curves[f"{class_names[first]}_vs_{class_names[second]}"] = roc(
            labels[selected] == first, score, weight[selected]
        )
    return curves


def confusion_matrix(
    labels: np.ndarray, probabilities: np.ndarray, weight: np.ndarray | None = None, normalize: bool = True
) -> np.ndarray:
    """Weighted counts of (true class, most probable class); rows sum to one when ``normalize``."""
    labels = np.asarray(labels)
    classes = probabilities.shape[1]
    weight = np.ones(len(labels)) if weight is None else np.asarray(weight, np.float64)
    predicted = np.argmax(probabilities, axis=1)
    matrix = np.bincount(labels * classes + predicted, weight, minlength=classes * classes).reshape(classes, classes)
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals != 0)
    return matrix


def background_fraction_vector(
    classes: int, signal: int, fractions: Mapping[int, float] | Sequence[float] | None
) -> np.ndarray:
    """The fractions f_i of the backgrounds (0 for the signal), normalised to sum to one.

    ``None`` gives every background the same fraction; a sequence has one value per class (the
    signal's is ignored); a mapping gives the backgrounds it names, others get 0.
    """
    if fractions is None:
        vector = np.ones(classes)
    elif isinstance(fractions, Mapping):
        vector = np.zeros(classes)
        for index, value in fractions.items():
            if not 0 <= index < classes:
                raise ConfigError(f"background fractions: no class {index} (the tagger has {classes})")
            vector[index] = value
    else:
        vector = np.asarray(fractions, np.float64)
        if len(vector) != classes:
            raise ConfigError(f"background fractions: {len(vector)} values for {classes} classes")
    vector = vector.astype(np.float64)
    vector[signal] = 0.0
    if (vector < 0).any() or vector.sum() <= 0:
        raise ConfigError(f"background fractions must be non-negative with a positive sum, got {vector.tolist()}")
    return vector / vector.sum()


def discriminant(
    probabilities: np.ndarray,
    signal: int = 0,
    background_fractions: Mapping[int, float] | Sequence[float] | None = None,
) -> np.ndarray:
    """D = ln(p_sig / Σ_i f_i p_bkg,i) for every jet (see the module docstring)."""
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise DataError(f"a discriminant needs (jets, classes ≥ 2) probabilities, got shape {probabilities.shape}")
    fractions = background_fraction_vector(probabilities.shape[1], signal, background_fractions)
    background = probabilities @ fractions
    return np.log(np.maximum(probabilities[:, signal], PROBABILITY_FLOOR)) - np.log(
        np.maximum(background, PROBABILITY_FLOOR)
    )
