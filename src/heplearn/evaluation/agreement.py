"""Agreement of two weighted distributions: binned shape χ²/ndf, the KS test and a separability AUC.

Used where a score must behave the same on two samples: simulation against (pseudo-)data for a
tagger trained with domain adaptation (DANN, arXiv:1409.7495: the domain classifier's AUC on the
learned score falls towards ½), a reweighted source against its target (DCTR's closure).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heplearn.evaluation.metrics import roc
from heplearn.evaluation.overtraining import KsResult, ks_test

__all__ = ["Agreement", "agreement", "binned", "chi2_ndf", "domain_classifier_auc"]


def binned(
    values: np.ndarray, weights: np.ndarray, edges: np.ndarray, events: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Σw per bin and the variance a shape comparison needs (values outside the edges go to the
    first and last bins).

    Independent entries: Σw² per bin, as ROOT's ``TH1::Chi2Test`` "WW". Entries that come in groups
    (``events``: the event of each entry, e.g. the particles of a jet) are not independent: a jet
    puts several particles in a bin, and a jet with more particles puts more in every bin. With the
    jets as the independent units, the share p_b = S_b / S of bin b has the delta-method variance
    Σ_e (s_eb − p_b s_e)² / S² (s_eb: event e's weight in bin b, s_e: in all bins); S² times it is
    returned, so that ``chi2_ndf``, which divides by S², compares the shapes with it.

    Example (two particles of one jet, both in the first bin, and one jet of one particle):
    >>> _, variance = binned(np.array([0.1, 0.2, 0.7]), np.ones(3), np.array([0.0, 0.5, 1.0]), np.array([0, 0, 1]))
    >>> np.round(variance, 3).tolist()  # (2 − ⅔·2)² + (0 − ⅔·1)² = 8/9 in both bins
    [0.889, 0.889]
    """
    clipped = np.clip(values, edges[0], edges[-1])
    sums = np.histogram(clipped, edges, weights=weights)[0]
    if events is None:
        return sums, np.histogram(clipped, edges, weights=weights**2)[0]
    bins = len(edges) - 1
    index = np.clip(np.searchsorted(edges, clipped, side="right") - 1, 0, bins - 1)
    _, event_index = np.unique(np.asarray(events, np.int64), return_inverse=True)
    per_event = np.bincount(event_index, weights=weights)
    _, cell = np.unique(event_index * bins + index, return_inverse=True)
    per_cell = np.bincount(cell, weights=weights)
    cell_bin = np.zeros(per_cell.size, np.int64)
    cell_event = np.zeros(per_cell.size, np.int64)
    cell_bin[cell], cell_event[cell] = index, event_index
    share = sums / sums.sum() if sums.sum() != 0 else np.zeros(bins)
    squares = np.bincount(cell_bin, weights=per_cell**2, minlength=bins)
    cross = np.bincount(cell_bin, weights=per_cell * per_event[cell_event], minlength=bins)
    return sums, squares - 2 * share * cross + share**2 * np.sum(per_event**2)


def chi2_ndf(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]) -> float:
    """χ²/ndf of two weighted histograms compared in shape (each scaled to unit sum), as in
    ROOT's ``TH1::Chi2Test`` option "WW" for weighted histograms; ndf = filled bins − 1."""
    (a, a2), (b, b2) = first, second
    ta, tb = a.sum(), b.sum()
    if ta <= 0 or tb <= 0:
        return float("nan")
    variance = a2 / ta**2 + b2 / tb**2
    filled = variance > 0
    ndf = int(filled.sum()) - 1
    if ndf < 1:
        return float("nan")
    return float(np.sum((a[filled] / ta - b[filled] / tb) ** 2 / variance[filled]) / ndf)


@dataclass(frozen=True)
class Agreement:
    """How alike a ``reference`` and an ``other`` sample of one variable are."""

    edges: np.ndarray
    reference: tuple[np.ndarray, np.ndarray]  # Σw, Σw² per bin
    other: tuple[np.ndarray, np.ndarray]
    chi2_ndf: float  # shape comparison of the two histograms
    ks: KsResult
    separation_auc: float  # AUC of the variable as a discriminant of other vs reference: ½ when alike
    classifier_auc: float = float("nan")  # AUC of the binned likelihood ratio, cross-validated (see below)

    def as_json(self) -> dict[str, float]:
        """The summary numbers (the histograms stay in the plot)."""
        return {
            "chi2_ndf": self.chi2_ndf,
            "ks_statistic": self.ks.statistic,
            "ks_pvalue": self.ks.pvalue,
            "separation_auc": self.separation_auc,
            "classifier_auc": self.classifier_auc,
            "reference_events": float(self.reference[0].sum()),
            "other_events": float(self.other[0].sum()),
        }


def domain_classifier_auc(
    reference: np.ndarray,
    other: np.ndarray,
    edges: np.ndarray,
    reference_weight: np.ndarray | None = None,
    other_weight: np.ndarray | None = None,
    seed: int = 0,
) -> float:
    """The AUC of the best classifier of the two samples on this one variable, cross-validated.

    The variable's own AUC (``separation_auc``) sees a shift along it; a change of shape, such as
    jets leaving both ends of a score for the middle, leaves it at ½. The likelihood ratio
    p_other/p_reference of the binned variable is the optimal one-dimensional classifier
    (Neyman–Pearson): it is fitted on one half of each sample (½ pseudo-count per bin) and its AUC
    measured on the other half, then the halves swap and the two AUCs are averaged. It is ½ when
    the samples share their distribution (no bias from fitting the ratio on the events it scores;
    a finite-sample ratio can only do worse than the true one), and for N(0, 1) against N(0, s²)
    it is P(|Z₂| < s|Z₁|) = (2/π)·arctan(s) where the variable's own AUC stays ½.
    """
    samples = [np.asarray(reference, np.float64), np.asarray(other, np.float64)]
    if min(len(values) for values in samples) < 2:  # a half of one sample would be empty
        return float("nan")
    weights = [
        np.ones(len(values)) if weight is None else np.asarray(weight, np.float64)
        for values, weight in zip(samples, (reference_weight, other_weight), strict=True)
    ]
    rng = np.random.default_rng(seed)
    folds = [rng.permutation(len(values)) % 2 for values in samples]
    aucs = []
    for fold in (0, 1):
        fitted = [
            binned(values[index != fold], weight[index != fold], edges)[0] + 0.5
            for values, weight, index in zip(samples, weights, folds, strict=True)
        ]
        ratio = (fitted[1] / fitted[1].sum()) / (fitted[0] / fitted[0].sum())
        held = [
            ratio[np.clip(np.searchsorted(edges, values[index == fold], side="right") - 1, 0, len(ratio) - 1)]
            for values, index in zip(samples, folds, strict=True)
        ]
        is_other = np.concatenate([np.zeros(len(held[0]), bool), np.ones(len(held[1]), bool)])
        held_weight = np.concatenate([weight[index == fold] for weight, index in zip(weights, folds, strict=True)])
        aucs.append(roc(is_other, np.concatenate(held), held_weight).auc)
    return float(np.mean(aucs))


def agreement(
    reference: np.ndarray,
    other: np.ndarray,
    reference_weight: np.ndarray | None = None,
    other_weight: np.ndarray | None = None,
    edges: np.ndarray | int = 20,
) -> Agreement:
    """Compare the distribution of one variable in two samples.

    ``edges`` are bin edges or a number of equal bins over the range both samples cover. The KS
    test is weighted only when a weight is not uniform (otherwise it is ``scipy.stats.ks_2samp``).

    Example:
    >>> rng = np.random.default_rng(1)
    >>> result = agreement(rng.normal(0, 1, 20000), rng.normal(0, 1, 20000))
    >>> bool(abs(result.separation_auc - 0.5) < 0.01 and result.chi2_ndf < 2)
    True
    """
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if len(reference) == 0 or len(other) == 0:
        raise ValueError("agreement needs events in both samples")
    reference_weight = np.ones(len(reference)) if reference_weight is None else np.asarray(reference_weight, np.float64)
    other_weight = np.ones(len(other)) if other_weight is None else np.asarray(other_weight, np.float64)
    if isinstance(edges, int):
        low = min(reference.min(), other.min())
        high = max(reference.max(), other.max())
        edges = np.linspace(low, high if high > low else low + 1.0, edges + 1)
    uniform = bool(np.all(reference_weight == reference_weight[0]) and np.all(other_weight == other_weight[0]))
    ks = ks_test(reference, other) if uniform else ks_test(reference, other, reference_weight, other_weight)
    is_other = np.concatenate([np.zeros(len(reference), bool), np.ones(len(other), bool)])
    separation = roc(is_other, np.concatenate([reference, other]), np.concatenate([reference_weight, other_weight])).auc
    first, second = binned(reference, reference_weight, edges), binned(other, other_weight, edges)
    edges = np.asarray(edges, np.float64)
    classifier = domain_classifier_auc(reference, other, edges, reference_weight, other_weight)
    return Agreement(edges, first, second, chi2_ndf(first, second), ks, float(separation), classifier)
