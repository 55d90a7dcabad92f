"""Tagger performance figures, all with per-event weights.

The ROC curve comes from ``sklearn.metrics.roc_curve``; background rejection 1/ε_B at a fixed
signal efficiency ε_S is read off it by linear interpolation in ε_S, the convention of the
top-tagging comparison (Kasieczka et al., arXiv:1902.09914). Signal efficiency at a fixed
background efficiency is read off the same way, as in TMVA's evaluation table.

Interpolating is right only where the ROC curve is dense (continuous scores): a point between two
cuts is not reached by any cut. Where the two achievable cuts around a target ε_S lie more than
``MAX_INTERPOLATION_GAP`` apart (a classifier with discrete scores: rectangular cuts, a few
leaves), the figures are those of the nearest achievable cut, and the ``WorkingPoint`` says so
(``interpolated`` False, ``signal_efficiency`` the ε_S reached, not the target).

Uncertainties are statistical: an efficiency ε measured on weighted events has the binomial
variance ε(1-ε)/N_eff with the effective number of events N_eff = (Σw)²/Σw²; where few events
pass, the Clopper–Pearson interval (Biometrika 26 (1934) 404) on the same effective counts is used
for bands. The AUC's uncertainty comes from the Poisson bootstrap (every event's weight multiplied
by an independent Poisson(1) count, the large-sample equivalent of resampling the events).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import beta
from sklearn.metrics import roc_auc_score, roc_curve

from heplearn.errors import DataError

DEFAULT_SIGNAL_EFFICIENCIES = (0.3, 0.5, 0.7)
DEFAULT_BACKGROUND_EFFICIENCIES = (0.01, 0.1, 0.3)
MAX_INTERPOLATION_GAP = 0.01  # in ε_S: two cuts farther apart than this are not interpolated between


@dataclass(frozen=True)
class WorkingPoint:
    """A selection ``score >= threshold`` at (or nearest to) the ``target`` signal efficiency."""

    target: float
    signal_efficiency: float  # the ε_S reached (the target itself when interpolated)
    background_efficiency: float
    threshold: float
    interpolated: bool  # read between two cuts closer than MAX_INTERPOLATION_GAP (continuous scores)

    @property
    def rejection(self) -> float:
        """1/ε_B (inf when no background passes)."""
        return 1.0 / self.background_efficiency if self.background_efficiency > 0 else float("inf")

    @property
    def achieved(self) -> bool:
        """True when the target ε_S is reached (interpolated on a dense curve, or met by a cut exactly)."""
        return self.interpolated or abs(self.signal_efficiency - self.target) <= 1e-12


@dataclass(frozen=True)
class Roc:
    """A ROC curve: signal and background efficiencies at each threshold, and the AUC."""

    signal_efficiency: np.ndarray  # ε_S, increasing
    background_efficiency: np.ndarray  # ε_B
    thresholds: np.ndarray
    auc: float

    def working_point(self, signal_efficiency: float) -> WorkingPoint:
        """The cut at the target ε_S: interpolated where the curve is dense, else the nearest achievable cut.

        Nearest in ε_S among the two cuts around the target (a tie goes to the looser cut, which
        keeps at least the target); the cut that selects nothing (ε_S = 0) is never chosen.
        """
        efficiencies, backgrounds = self.signal_efficiency, self.background_efficiency
        above = min(int(np.searchsorted(efficiencies, signal_efficiency, side="left")), len(efficiencies) - 1)
        below = max(above - 1, 0)
        if (
            efficiencies[above] == signal_efficiency
            or efficiencies[above] - efficiencies[below] <= MAX_INTERPOLATION_GAP
        ):
            background = float(np.interp(signal_efficiency, efficiencies, backgrounds))
            return WorkingPoint(signal_efficiency, signal_efficiency, background, float(self.thresholds[above]), True)
        candidates = [index for index in (below, above) if efficiencies[index] > 0] or [above]
        index = min(candidates, key=lambda i: (abs(efficiencies[i] - signal_efficiency), -i))
        return WorkingPoint(
            signal_efficiency,
            float(efficiencies[index]),
            float(backgrounds[index]),
            float(self.thresholds[index]),
            False,
        )

    def rejection_at(self, signal_efficiency: float) -> float:
        """1/ε_B at the given ε_S (inf when no background passes), of ``working_point``: never a
        rejection between two distant cuts that no cut has."""
        return self.working_point(signal_efficiency).rejection

    def signal_efficiency_at(self, background_efficiency: float) -> float:
        """ε_S at the given ε_B (TMVA's "signal efficiency at background efficiency"): interpolated
        where the curve is dense, else the ε_S of the cut nearest in ε_B (discrete scores)."""
        efficiencies, backgrounds = self.signal_efficiency, self.background_efficiency
        above = min(int(np.searchsorted(backgrounds, background_efficiency, side="left")), len(backgrounds) - 1)
        below = max(above - 1, 0)
        if (
            backgrounds[above] == background_efficiency
            or efficiencies[above] - efficiencies[below] <= MAX_INTERPOLATION_GAP
        ):
            return float(np.interp(background_efficiency, backgrounds, efficiencies))
        candidates = [index for index in (below, above) if efficiencies[index] > 0] or [above]
        index = min(candidates, key=lambda i: (abs(backgrounds[i] - background_efficiency), -i))
        return float(efficiencies[index])

    def threshold_at(self, signal_efficiency: float) -> float:
        """The cut of ``working_point``: on a dense curve the tightest ``score >= threshold`` that keeps
        at least ``signal_efficiency``; for discrete scores the nearest achievable cut's."""
        return self.working_point(signal_efficiency).threshold


def check_inputs(
    is_signal: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean truth, float scores and weights (ones if ``None``) of one length, both classes present."""
    is_signal = np.asarray(is_signal, bool)
    score = np.asarray(score, np.float64)
    weight = np.ones(len(score)) if weight is None else np.asarray(weight, np.float64)
    if not (len(is_signal) == len(score) == len(weight)):
        raise DataError(f"truth, score and weight differ in length ({len(is_signal)}, {len(score)}, {len(weight)})")
    if not is_signal.any() or is_signal.all():
        raise DataError("a ROC curve needs both signal and background jets; the sample has only one class")
    if not np.isfinite(score).all():
        raise DataError(f"{int((~np.isfinite(score)).sum())} scores are NaN or infinite")
    return is_signal, score, weight


def roc(is_signal: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None) -> Roc:
    """The (weighted) ROC of ``score`` for signal jets ``is_signal`` against the others."""
    is_signal, score, weight = check_inputs(is_signal, score, weight)
    false_positive, true_positive, thresholds = roc_curve(
        is_signal, score, sample_weight=weight, drop_intermediate=False
    )
    auc = float(roc_auc_score(is_signal, score, sample_weight=weight))
    return Roc(true_positive, false_positive, thresholds, auc)


def summary(
    is_signal: np.ndarray,
    score: np.ndarray,
    weight: np.ndarray | None = None,
    signal_efficiencies: tuple[float, ...] = DEFAULT_SIGNAL_EFFICIENCIES,
) -> dict[str, float]:
    """AUC and background rejection at the given signal efficiencies (keys ``rejection_at_30``...).

    Where no cut reaches a target (discrete scores), the rejection is the nearest achievable
    cut's and ``signal_efficiency_at_30``... holds the ε_S that cut reaches.
    """
    curve = roc(is_signal, score, weight)
    figures = {"auc": curve.auc}
    for efficiency in signal_efficiencies:
        point = curve.working_point(efficiency)
        figures[f"rejection_at_{round(efficiency * 100)}"] = point.rejection
        if not point.achieved:
            figures[f"signal_efficiency_at_{round(efficiency * 100)}"] = point.signal_efficiency
    return figures


def effective_count(weight: np.ndarray) -> float:
    """N_eff = (Σw)² / Σw², the number of unweighted events with the same statistical power."""
    weight = np.asarray(weight, np.float64)
    squares = float(np.sum(weight**2))
    return float(np.sum(weight)) ** 2 / squares if squares > 0 else 0.0


def binomial_uncertainty(efficiency: np.ndarray | float, effective_events: float) -> np.ndarray:
    """σ_ε = √(ε(1-ε)/N_eff) for efficiencies measured on ``effective_events`` events."""
    efficiency = np.clip(np.asarray(efficiency, np.float64), 0.0, 1.0)
    if effective_events <= 0:
        return np.full_like(efficiency, np.nan)
    return np.sqrt(efficiency * (1.0 - efficiency) / effective_events)


def clopper_pearson(
    efficiency: np.ndarray | float, effective_events: float, confidence: float = 0.6827
) -> tuple[np.ndarray, np.ndarray]:
    """The central Clopper–Pearson interval of an efficiency, with k = ε N_eff passing of N_eff.

    Unlike ε ± σ it stays within [0, 1] and is right for few passing events (k = 0 gives [0, hi]).
    """
    efficiency = np.clip(np.asarray(efficiency, np.float64), 0.0, 1.0)
    passed = efficiency * effective_events
    tail = (1.0 - confidence) / 2
    with np.errstate(invalid="ignore"):
        low = np.where(passed > 0, beta.ppf(tail, passed, effective_events - passed + 1), 0.0)
        high = np.where(passed < effective_events, beta.ppf(1 - tail, passed + 1, effective_events - passed), 1.0)
    return np.nan_to_num(low, nan=0.0), np.nan_to_num(high, nan=1.0)


def rejection_uncertainty(background_efficiency: np.ndarray | float, effective_background: float) -> np.ndarray:
    """σ(1/ε_B) = σ_εB / ε_B² (error propagation of the binomial σ_εB); inf where ε_B = 0."""
    background_efficiency = np.asarray(background_efficiency, np.float64)
    sigma = binomial_uncertainty(background_efficiency, effective_background)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(background_efficiency > 0, sigma / np.maximum(background_efficiency, 1e-300) ** 2, np.inf)


@dataclass(frozen=True)
class AucEstimate:
    """An AUC with its bootstrap uncertainty."""

    value: float
    uncertainty: float  # standard deviation over the bootstrap replicas
    replicas: int


def fast_auc(is_signal: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None) -> float:
    """The weighted AUC from one sort (ties count one half), equal to ``roc_auc_score``."""
    is_signal, score, weight = check_inputs(is_signal, score, weight)
    _, inverse = np.unique(score, return_inverse=True)
    return float(_grouped_auc(inverse, is_signal, weight))


def _grouped_auc(inverse: np.ndarray, is_signal: np.ndarray, weight: np.ndarray) -> float:
    """AUC = P(score_S > score_B) + ½ P(score_S = score_B), from per-unique-score weight sums.

    ``inverse`` maps every event to the rank of its score among the sorted unique scores.
    """
    groups = int(inverse.max()) + 1
    signal = np.bincount(inverse[is_signal], weight[is_signal], minlength=groups)
    background = np.bincount(inverse[~is_signal], weight[~is_signal], minlength=groups)
    signal_total, background_total = signal.sum(), background.sum()
    signal_above = signal_total - np.cumsum(signal)
    return float(np.sum(background * (signal_above + 0.5 * signal)) / (signal_total * background_total))


def auc_with_uncertainty(
    is_signal: np.ndarray,
    score: np.ndarray,
    weight: np.ndarray | None = None,
    replicas: int = 100,
    seed: int | np.random.Generator = 0,
) -> AucEstimate:
    """The AUC and its Poisson-bootstrap standard deviation (``replicas`` replicas, seeded)."""
    is_signal, score, weight = check_inputs(is_signal, score, weight)
    _, inverse = np.unique(score, return_inverse=True)
    value = _grouped_auc(inverse, is_signal, weight)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(replicas):
        resampled = weight * rng.poisson(1.0, len(weight))
        if resampled[is_signal].sum() > 0 and resampled[~is_signal].sum() > 0:
            values.append(_grouped_auc(inverse, is_signal, resampled))
    uncertainty = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return AucEstimate(value, uncertainty, len(values))


@dataclass(frozen=True)
class OperatingPoint:
    """One row of a performance table: a target efficiency and what the tagger reaches there."""

    signal_efficiency: float
    background_efficiency: float
    rejection: float
    rejection_uncertainty: float
    signal_efficiency_uncertainty: float
    threshold: float
    achieved_signal_efficiency: float | None = None  # set when no cut reaches the target: the nearest cut's ε_S


def rejection_table(
    curve: Roc,
    effective_signal: float,
    effective_background: float,
    signal_efficiencies: tuple[float, ...] = DEFAULT_SIGNAL_EFFICIENCIES,
) -> list[OperatingPoint]:
    """1/ε_B with its binomial uncertainty at each target ε_S (of ``Roc.working_point``)."""
    rows = []
    for efficiency in signal_efficiencies:
        point = curve.working_point(efficiency)
        rows.append(
            OperatingPoint(
                efficiency,
                point.background_efficiency,
                point.rejection,
                float(rejection_uncertainty(point.background_efficiency, effective_background)),
                float(binomial_uncertainty(point.signal_efficiency, effective_signal)),
                point.threshold,
                None if point.achieved else point.signal_efficiency,
            )
        )
    return rows


def signal_efficiency_table(
    curve: Roc,
    effective_signal: float,
    background_efficiencies: tuple[float, ...] = DEFAULT_BACKGROUND_EFFICIENCIES,
) -> list[tuple[float, float, float]]:
    """(ε_B, ε_S, σ_εS) at each target ε_B."""
    rows = []
    for background in background_efficiencies:
        signal = curve.signal_efficiency_at(background)
        rows.append((background, signal, float(binomial_uncertainty(signal, effective_signal))))
    return rows


def softmax(outputs: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits ``(n, classes)``."""
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def classification_metrics(
    outputs: np.ndarray, labels: np.ndarray, weights: np.ndarray, signal_index: int = 0
) -> dict[str, float]:
    """Accuracy and AUC from logits (signal class vs the rest; macro one-vs-rest AUC too for multiclass)."""
    probabilities = softmax(outputs)
    accuracy = float(np.average(probabilities.argmax(axis=1) == labels, weights=weights))
    metrics = {"accuracy": accuracy}
    is_signal = labels == signal_index
    if 0 < is_signal.sum() < len(labels):
        metrics["auc"] = float(roc_auc_score(is_signal, probabilities[:, signal_index], sample_weight=weights))
    present = np.unique(labels)
    if probabilities.shape[1] > 2 and len(present) == probabilities.shape[1]:
        metrics["auc_macro_ovr"] = float(roc_auc_score(labels, probabilities, multi_class="ovr", sample_weight=weights))
    return metrics
