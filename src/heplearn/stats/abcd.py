"""The ABCD method: the background in a signal region from three control regions.

Two variables u, v that are independent for the background define four regions by one cut each:
A (u > c_u, v > c_v: the signal region), B (u > c_u, v ≤ c_v), C (u ≤ c_u, v > c_v) and D (both
below). Independence makes the background factorise, N_A = N_B·N_C / N_D. ABCDisCo trains the
variables to be independent (Kasieczka, Nachman, Schwartz & Shih, arXiv:2007.14400); the closure
N_A^pred / N_A on background measures how far they are from it, and a non-closure is a systematic.

Uncertainties are statistical, from the regions' effective counts: with weighted events each
region's relative variance is Σw² / (Σw)², added in quadrature for the product and ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heplearn.errors import DataError

REGIONS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class RegionCounts:
    """Weighted counts Σw and Σw² of the four regions (A is the signal region)."""

    sums: dict[str, float]
    sums_of_squares: dict[str, float]

    def relative_variance(self, region: str) -> float:
        """The relative variance Σw² / (Σw)² of ``region``'s count (infinite for an empty region)."""
        total = self.sums[region]
        return self.sums_of_squares[region] / total**2 if total > 0 else float("inf")


@dataclass(frozen=True)
class AbcdEstimate:
    """N_A predicted from B, C, D with its statistical uncertainty, and the closure where A is known."""

    predicted: float
    uncertainty: float
    observed: float
    observed_uncertainty: float

    @property
    def closure(self) -> float:
        """N_A^pred / N_A (1 for independent variables)."""
        return self.predicted / self.observed if self.observed > 0 else float("nan")

    @property
    def closure_uncertainty(self) -> float:
        """The statistical uncertainty of ``closure`` (prediction and observation uncorrelated)."""
        if self.observed <= 0 or self.predicted <= 0:
            return float("nan")
        relative = np.hypot(self.uncertainty / self.predicted, self.observed_uncertainty / self.observed)
        return float(self.closure * relative)

    @property
    def closure_pull(self) -> float:
        """(N_A^pred − N_A) / σ: how many standard deviations the non-closure is."""
        combined = np.hypot(self.uncertainty, self.observed_uncertainty)
        return float((self.predicted - self.observed) / combined) if combined > 0 else float("nan")


def region_counts(
    u: np.ndarray, v: np.ndarray, cut_u: float, cut_v: float, weight: np.ndarray | None = None
) -> RegionCounts:
    """Σw and Σw² of the regions A (u > cut_u, v > cut_v), B (u > cut_u only), C (v > cut_v only), D."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    if u.shape != v.shape or u.ndim != 1:
        raise DataError(f"ABCD: u and v must be 1-d arrays of one length, got shapes {u.shape} and {v.shape}")
    w = np.ones_like(u) if weight is None else np.asarray(weight, np.float64)
    if w.shape != u.shape:
        raise DataError(f"ABCD: {len(w)} weights for {len(u)} events")
    if not (np.isfinite(u).all() and np.isfinite(v).all() and np.isfinite(w).all()):
        raise DataError("ABCD: u, v and the weights must be finite (NaN or infinity found)")
    high_u, high_v = u > cut_u, v > cut_v
    masks = {"A": high_u & high_v, "B": high_u & ~high_v, "C": ~high_u & high_v, "D": ~high_u & ~high_v}
    return RegionCounts(
        {name: float(w[mask].sum()) for name, mask in masks.items()},
        {name: float((w[mask] ** 2).sum()) for name, mask in masks.items()},
    )


def abcd_estimate(counts: RegionCounts) -> AbcdEstimate:
    """N_A = N_B·N_C / N_D with its uncertainty; an empty control region is a ``DataError``."""
    empty = [name for name in ("B", "C", "D") if counts.sums[name] <= 0]
    if empty:
        raise DataError(
            f"ABCD: {'control regions' if len(empty) > 1 else 'control region'} {', '.join(empty)} "
            f"{'hold' if len(empty) > 1 else 'holds'} no events (positive total weight); move the cuts"
        )
    predicted = counts.sums["B"] * counts.sums["C"] / counts.sums["D"]
    relative = np.sqrt(sum(counts.relative_variance(name) for name in ("B", "C", "D")))
    observed = counts.sums["A"]
    return AbcdEstimate(predicted, float(predicted * relative), observed, float(np.sqrt(counts.sums_of_squares["A"])))


def gaussian_closure(rho: float) -> float:
    """N_A·N_D / (N_B·N_C) of a bivariate normal with correlation ρ cut at its medians.

    Each quadrant holds ¼ ± arcsin(ρ)/2π (Sheppard's formula), so the ratio is
    ((¼ + a)/(¼ − a))² with a = arcsin(ρ)/(2π) (arXiv:2007.14400): 1 only for ρ = 0.
    """
    a = np.arcsin(rho) / (2 * np.pi)
    return float(((0.25 + a) / (0.25 - a)) ** 2)
