"""Tagger performance figures, all with per-event weights.

The ROC curve comes from ``sklearn.metrics.roc_curve``; background rejection 1/ε_B at a fixed
signal efficiency ε_S is read off it by linear interpolation in ε_S, the convention of the
top-tagging comparison (Kasieczka et al., arXiv:1902.09914).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

DEFAULT_SIGNAL_EFFICIENCIES = (0.3, 0.5, 0.7)


@dataclass(frozen=True)
class Roc:
    signal_efficiency: np.ndarray  # ε_S, increasing
    background_efficiency: np.ndarray  # ε_B
    thresholds: np.ndarray
    auc: float

    def rejection_at(self, signal_efficiency: float) -> float:
        """1/ε_B at the given ε_S (inf when no background passes)."""
        background = float(np.interp(signal_efficiency, self.signal_efficiency, self.background_efficiency))
        return 1.0 / background if background > 0 else float("inf")


def roc(is_signal: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None) -> Roc:
    is_signal = np.asarray(is_signal, bool)
    false_positive, true_positive, thresholds = roc_curve(is_signal, score, sample_weight=weight,
                                                          drop_intermediate=False)
    auc = float(roc_auc_score(is_signal, score, sample_weight=weight))
    return Roc(true_positive, false_positive, thresholds, auc)


def summary(is_signal: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None,
            signal_efficiencies: tuple[float, ...] = DEFAULT_SIGNAL_EFFICIENCIES) -> dict[str, float]:
    """AUC and background rejection at the given signal efficiencies (keys ``rejection_at_30``...)."""
    curve = roc(is_signal, score, weight)
    figures = {"auc": curve.auc}
    for efficiency in signal_efficiencies:
        figures[f"rejection_at_{round(efficiency * 100)}"] = curve.rejection_at(efficiency)
    return figures
