"""Mass sculpting: how a cut on the tagger score distorts the background jet-mass distribution.

A tagger that learnt the jet mass turns a smoothly falling QCD background into a peak where the
signal sits, which ruins a bump hunt or a side-band background estimate. The decorrelation
literature measures it at a fixed signal efficiency with the Jensen–Shannon divergence between
the background mass distributions before and after the cut, quoting 1/JSD (larger: less
sculpting) beside the background rejection (Kasieczka & Shih, "DisCo Fever", arXiv:2001.05310;
Kasieczka, Nachman, Schwartz & Shih, arXiv:2010.09745). Here JSD = D_JS(P ‖ Q) in bits, i.e.
``scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2``, between 0 (identical) and 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon

from heplearn.errors import DataError
from heplearn.evaluation.binned import bulk_range
from heplearn.evaluation.metrics import DEFAULT_SIGNAL_EFFICIENCIES, check_inputs, roc


@dataclass(frozen=True)
class SculptedMass:
    """The background mass distribution after the cut at one signal efficiency."""

    signal_efficiency: float
    threshold: float
    background_efficiency: float
    density: np.ndarray  # normalised to unit area over the histogram range
    jsd: float

    @property
    def inverse_jsd(self) -> float:
        """1/JSD between the background mass before and after the cut (larger: less sculpted)."""
        return 1.0 / self.jsd if self.jsd > 0 else float("inf")


@dataclass(frozen=True)
class MassSculpting:
    """The background mass distribution before any cut and after cuts at several signal efficiencies."""

    observer: str
    bin_edges: np.ndarray
    before: np.ndarray  # background density before any cut
    after: list[SculptedMass]


def jensen_shannon_divergence(first: np.ndarray, second: np.ndarray) -> float:
    """D_JS of two histograms (normalised here), in bits; 0 for identical shapes."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    if first.sum() <= 0 or second.sum() <= 0:
        return float("nan")
    return float(jensenshannon(first, second, base=2) ** 2)


def mass_sculpting(
    mass: np.ndarray,
    is_signal: np.ndarray,
    score: np.ndarray,
    weight: np.ndarray | None = None,
    signal_efficiencies: tuple[float, ...] = DEFAULT_SIGNAL_EFFICIENCIES,
    bins: int = 30,
    histogram_range: tuple[float, float] | None = None,
    observer: str = "mass",
) -> MassSculpting:
    """Background ``mass`` histograms before and after ``score >= threshold`` at each target ε_S.

    The thresholds are set on the signal; the JSD compares the background shapes only.
    """
    is_signal, score, weight = check_inputs(is_signal, score, weight)
    mass = np.asarray(mass, np.float64)
    if len(mass) != len(score):
        raise DataError(f"{observer}: {len(mass)} values for {len(score)} jets")
    background = ~is_signal
    edges = np.histogram_bin_edges(mass[background], bins, histogram_range or bulk_range(mass[background]))
    before, _ = np.histogram(mass[background], edges, weights=weight[background])
    curve = roc(is_signal, score, weight)
    after = []
    for efficiency in signal_efficiencies:
        threshold = curve.threshold_at(efficiency)
        passed = background & (score >= threshold)
        counts, _ = np.histogram(mass[passed], edges, weights=weight[passed])
        passed_fraction = float(weight[passed].sum() / weight[background].sum())
        after.append(
            SculptedMass(
                efficiency,
                threshold,
                passed_fraction,
                _density(counts, edges),
                jensen_shannon_divergence(before, counts),
            )
        )
    return MassSculpting(observer, edges, _density(before, edges), after)


def _density(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / (total * np.diff(edges)) if total > 0 else np.zeros_like(counts, dtype=np.float64)
