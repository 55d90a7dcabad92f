"""Performance in bins: the reliability curve, and efficiencies versus an observable.

- Reliability (calibration) curve: in bins of the predicted probability of a class, the observed
  weighted fraction of jets of that class (DeGroot & Fienberg 1983; Niculescu-Mizil & Caruana 2005).
  A calibrated tagger lies on the diagonal; class-balanced training shifts it by the prior ratio.
- Efficiency versus pT, η or mass: at one working point (a fixed score threshold, usually set for
  a global ε_S), the signal efficiency and background rejection in bins of any observer, as in the
  performance papers of ATLAS and CMS taggers (e.g. CMS-JME-18-002, arXiv:2004.08262).

Per-bin uncertainties treat the passing and failing weighted events as binomial:
σ_ε² = [Σ_pass w² (1-ε)² + Σ_fail w² ε²] / (Σ w)², which is ε(1-ε)/N for unit weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heplearn.errors import DataError


@dataclass(frozen=True)
class ReliabilityCurve:
    """Calibration: the mean predicted probability against the observed signal fraction, per bin."""

    bin_edges: np.ndarray
    mean_predicted: np.ndarray  # NaN in empty bins
    observed_fraction: np.ndarray
    uncertainty: np.ndarray
    weight: np.ndarray  # summed weight per bin


@dataclass(frozen=True)
class BinnedEfficiency:
    """Signal and background efficiencies of one cut in bins of an observer (pT, mass)."""

    observer: str
    bin_edges: np.ndarray
    threshold: float
    signal_efficiency: np.ndarray  # NaN where a bin has no signal
    signal_uncertainty: np.ndarray
    background_efficiency: np.ndarray
    background_uncertainty: np.ndarray

    @property
    def rejection(self) -> np.ndarray:
        """The background rejection 1/ε_B per bin (infinite where no background passes)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.background_efficiency > 0, 1.0 / self.background_efficiency, np.inf)

    @property
    def rejection_uncertainty(self) -> np.ndarray:
        """The uncertainty of the rejection per bin."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(
                self.background_efficiency > 0, self.background_uncertainty / self.background_efficiency**2, np.inf
            )


def bulk_range(values: np.ndarray, quantiles: tuple[float, float] = (0.005, 0.995)) -> tuple[float, float]:
    """A histogram range covering the bulk of ``values`` (the extreme tails only make empty bins)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return (0.0, 1.0)
    low, high = (float(v) for v in np.quantile(values, quantiles))
    if not high > low:
        low, high = float(values.min()), float(values.max())
    return (low, high) if high > low else (low - 0.5, low + 0.5)


def _binned_fraction(
    bin_index: np.ndarray, passed: np.ndarray, weight: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted passing fraction per bin, its binomial σ, and the summed weight per bin."""
    total = np.bincount(bin_index, weight, minlength=bins)[:bins]
    passing = np.bincount(bin_index, weight * passed, minlength=bins)[:bins]
    squares_pass = np.bincount(bin_index, weight**2 * passed, minlength=bins)[:bins]
    squares_fail = np.bincount(bin_index, weight**2 * ~passed, minlength=bins)[:bins]
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(total != 0, passing / total, np.nan)
        variance = (squares_pass * (1 - fraction) ** 2 + squares_fail * fraction**2) / total**2
    return fraction, np.sqrt(np.where(total != 0, variance, np.nan)), total


def reliability_curve(
    is_class: np.ndarray, probability: np.ndarray, weight: np.ndarray | None = None, bins: int = 10
) -> ReliabilityCurve:
    """Observed fraction of the class versus its predicted probability, in ``bins`` uniform bins of [0, 1].

    A probability on a bin edge goes to the lower bin, as in ``sklearn.calibration.calibration_curve``.
    """
    is_class = np.asarray(is_class, bool)
    probability = np.asarray(probability, np.float64)
    weight = np.ones(len(probability)) if weight is None else np.asarray(weight, np.float64)
    if probability.size and (probability.min() < 0 or probability.max() > 1):
        raise DataError("a reliability curve needs probabilities in [0, 1]")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], probability)
    fraction, uncertainty, total = _binned_fraction(index, is_class, weight, bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(total != 0, np.bincount(index, weight * probability, minlength=bins) / total, np.nan)
    return ReliabilityCurve(edges, mean, fraction, uncertainty, total)


def efficiency_versus(
    observer: np.ndarray,
    is_signal: np.ndarray,
    score: np.ndarray,
    threshold: float,
    weight: np.ndarray | None = None,
    bins: int | np.ndarray = 10,
    histogram_range: tuple[float, float] | None = None,
    name: str = "observer",
) -> BinnedEfficiency:
    """ε_S and ε_B of ``score >= threshold`` in bins of ``observer``; values outside the bins are dropped."""
    observer = np.asarray(observer, np.float64)
    is_signal = np.asarray(is_signal, bool)
    score = np.asarray(score, np.float64)
    weight = np.ones(len(score)) if weight is None else np.asarray(weight, np.float64)
    if not (len(observer) == len(is_signal) == len(score) == len(weight)):
        raise DataError(f"{name}: {len(observer)} values for {len(score)} jets")
    edges = np.histogram_bin_edges(observer, bins, histogram_range)
    count = len(edges) - 1
    # bin i holds [edge_i, edge_i+1), the last bin includes its upper edge (numpy.histogram's rule)
    index = np.clip(np.searchsorted(edges, observer, side="right") - 1, 0, count - 1)
    inside = (observer >= edges[0]) & (observer <= edges[-1])
    passed = score >= threshold
    signal = inside & is_signal
    background = inside & ~is_signal
    signal_efficiency, signal_uncertainty, _ = _binned_fraction(index[signal], passed[signal], weight[signal], count)
    background_efficiency, background_uncertainty, _ = _binned_fraction(
        index[background], passed[background], weight[background], count
    )
    return BinnedEfficiency(
        name,
        edges,
        float(threshold),
        signal_efficiency,
        signal_uncertainty,
        background_efficiency,
        background_uncertainty,
    )
