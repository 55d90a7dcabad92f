"""Discovery significance of a counting experiment after a cut on the tagger score.

With s expected signal and b expected background events passing the cut:

- s/√b, the large-background approximation;
- s/√(s+b), its variant that includes the signal's own fluctuation;
- the Asimov median significance of Cowan, Cranmer, Gross & Vitells (arXiv:1007.1727, Eq. 97),
  Z_A = √(2((s+b) ln(1+s/b) - s)), valid for any s/b; with an absolute uncertainty σ_b on b
  (profiled as a Gaussian-constrained nuisance parameter; G. Cowan, "Discovery sensitivity for a
  counting experiment with background uncertainty", 2012),
  Z_A = √(2[(s+b) ln((s+b)(b+σ_b²)/(b²+(s+b)σ_b²)) - (b²/σ_b²) ln(1 + σ_b² s/(b(b+σ_b²)))]).

``best_cuts`` scans every score threshold for the one that maximises each figure, given the
yields before the cut. Very tight cuts leave almost no background, where s/√b diverges and the
asymptotic formulae fail; thresholds with fewer than ``min_background`` expected background
events are therefore not considered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heplearn.errors import ConfigError
from heplearn.evaluation.metrics import check_inputs, roc

FIGURES = ("s_over_sqrt_b", "s_over_sqrt_s_plus_b", "asimov")


def s_over_sqrt_b(s: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """The simple significance s/√b (infinite where b = 0 and s > 0)."""
    s, b = np.asarray(s, np.float64), np.asarray(b, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, s / np.sqrt(np.maximum(b, 1e-300)), np.inf)


def s_over_sqrt_s_plus_b(s: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """The significance s/√(s+b)."""
    s, b = np.asarray(s, np.float64), np.asarray(b, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s + b > 0, s / np.sqrt(np.maximum(s + b, 1e-300)), 0.0)


def asimov_significance(
    s: np.ndarray | float, b: np.ndarray | float, background_uncertainty: np.ndarray | float = 0.0
) -> np.ndarray:
    """Z_A of the module docstring; ``background_uncertainty`` is the absolute σ_b (events)."""
    s, b = np.asarray(s, np.float64), np.asarray(b, np.float64)
    variance = np.asarray(background_uncertainty, np.float64) ** 2
    # both forms are evaluated everywhere and the valid one chosen: silence the other's overflow
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        b_safe = np.maximum(b, 1e-300)
        exact = 2 * ((s + b) * np.log1p(s / b_safe) - s)
        variance_safe = np.maximum(variance, 1e-300)
        with_uncertainty = 2 * (
            (s + b) * np.log((s + b) * (b + variance) / (b**2 + (s + b) * variance))
            - b**2 / variance_safe * np.log1p(variance * s / (b_safe * (b + variance)))
        )
        # below a relative variance of 1e-9 the second form loses precision: use the limit σ_b -> 0
        z_squared = np.where(variance > 1e-9 * b_safe**2, with_uncertainty, exact)
        return np.where(b > 0, np.sqrt(np.maximum(z_squared, 0.0)), np.inf)


@dataclass(frozen=True)
class BestCut:
    """The cut on the score that maximises one significance figure, and what passes it."""

    figure: str
    threshold: float  # keep jets with score >= threshold
    significance: float
    signal: float  # expected signal events passing
    background: float
    signal_efficiency: float
    background_efficiency: float


@dataclass(frozen=True)
class SignificanceScan:
    """Every figure at every allowed threshold, and the best cut for each."""

    thresholds: np.ndarray
    signal: np.ndarray
    background: np.ndarray
    figures: dict[str, np.ndarray]
    best: dict[str, BestCut]
    signal_yield: float
    background_yield: float
    relative_background_uncertainty: float


def significance_figures(
    s: np.ndarray,
    b: np.ndarray,
    relative_background_uncertainty: float = 0.0,
) -> dict[str, np.ndarray]:
    """Every significance figure for expected signal ``s`` and background ``b`` (per cut)."""
    return {
        "s_over_sqrt_b": s_over_sqrt_b(s, b),
        "s_over_sqrt_s_plus_b": s_over_sqrt_s_plus_b(s, b),
        "asimov": asimov_significance(s, b, relative_background_uncertainty * np.asarray(b)),
    }


def best_cuts(
    is_signal: np.ndarray,
    score: np.ndarray,
    weight: np.ndarray | None = None,
    signal_yield: float | None = None,
    background_yield: float | None = None,
    relative_background_uncertainty: float = 0.0,
    min_background: float = 1.0,
) -> SignificanceScan:
    """The score cut maximising s/√b, s/√(s+b) and Z_A for the given yields before the cut.

    The yields default to the summed weights of the sample's signal and background jets;
    ``relative_background_uncertainty`` is σ_b / b after the cut.
    """
    is_signal, score, weight = check_inputs(is_signal, score, weight)
    if relative_background_uncertainty < 0:
        raise ConfigError(f"relative background uncertainty must be ≥ 0, got {relative_background_uncertainty}")
    signal_yield = float(weight[is_signal].sum()) if signal_yield is None else float(signal_yield)
    background_yield = float(weight[~is_signal].sum()) if background_yield is None else float(background_yield)
    if signal_yield <= 0 or background_yield <= 0:
        raise ConfigError(f"signal and background yields must be positive, got {signal_yield}, {background_yield}")
    curve = roc(is_signal, score, weight)
    finite = np.isfinite(curve.thresholds)  # sklearn's first threshold is +inf: nothing passes
    s = signal_yield * curve.signal_efficiency[finite]
    b = background_yield * curve.background_efficiency[finite]
    thresholds = curve.thresholds[finite]
    allowed = b >= min_background
    if not allowed.any():
        raise ConfigError(
            f"no score cut leaves {min_background} expected background events "
            f"(background yield {background_yield:g}); lower min_background"
        )
    s, b, thresholds = s[allowed], b[allowed], thresholds[allowed]
    figures = significance_figures(s, b, relative_background_uncertainty)
    best = {}
    for name, values in figures.items():
        index = int(np.argmax(values))
        best[name] = BestCut(
            name,
            float(thresholds[index]),
            float(values[index]),
            float(s[index]),
            float(b[index]),
            float(s[index] / signal_yield),
            float(b[index] / background_yield),
        )
    return SignificanceScan(
        thresholds, s, b, figures, best, signal_yield, background_yield, relative_background_uncertainty
    )
