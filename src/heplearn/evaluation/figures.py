"""What evaluation and comparison share: the settings, the summary of a score, the plots of a report.

``summarise_score`` gathers the binary figures of one signal score on one sample: the ROC, the
AUC with its bootstrap uncertainty, 1/ε_B at fixed ε_S, ε_S at fixed ε_B and the best significance
cuts. ``neyman_pearson`` adds the optimal ROC when the data carry the exact likelihood ratio.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from heplearn.data.jets import JetArrays
from heplearn.errors import ConfigError
from heplearn.evaluation import plots
from heplearn.evaluation.metrics import (
    DEFAULT_BACKGROUND_EFFICIENCIES,
    DEFAULT_SIGNAL_EFFICIENCIES,
    AucEstimate,
    OperatingPoint,
    Roc,
    auc_with_uncertainty,
    effective_count,
    rejection_table,
    roc,
    signal_efficiency_table,
)
from heplearn.evaluation.report import embed_png, jsonable
from heplearn.evaluation.scoring import OPTIMAL_OBSERVER
from heplearn.evaluation.significance import SignificanceScan, best_cuts

log = logging.getLogger(__name__)

NULL_NOTE = "null stands for an infinite or undefined value (1/ε_B when no background jet passes, 1/JSD = ∞)"


@dataclass(frozen=True)
class EvaluationSettings:
    """Everything an evaluation can be tuned by; the defaults follow TMVA and the tagging papers."""

    signal_efficiencies: tuple[float, ...] = DEFAULT_SIGNAL_EFFICIENCIES  # for 1/ε_B and the sculpting
    background_efficiencies: tuple[float, ...] = DEFAULT_BACKGROUND_EFFICIENCIES  # for ε_S (TMVA's table)
    working_point: float = 0.5  # ε_S of the cut used for the efficiencies versus observables
    bootstrap: int = 100  # replicas for the AUC uncertainty
    seed: int = 0
    signal_yield: float | None = None  # expected events before the cut; default: the summed weights
    background_yield: float | None = None
    background_uncertainty: float = 0.0  # relative σ_b/b for the Asimov significance
    min_background: float = 1.0  # expected background events a significance cut must keep
    background_fractions: tuple[float, ...] | None = None  # f_i of the multiclass discriminant
    mass_observer: str | None = None  # default: the first of jet_sdmass, jet_mass present
    observers: tuple[str, ...] | None = None  # for efficiencies versus observables; default: pT, η, mass
    bins: int = 12
    importance: bool = True
    importance_repeats: int = 3
    importance_jets: int = 20_000
    style: plots.PlotStyle = field(default_factory=plots.PlotStyle)


@dataclass
class ScoreSummary:
    """The binary figures of one score on one sample."""

    roc: Roc
    auc: AucEstimate
    rejection: list[OperatingPoint]
    signal_efficiency: list[tuple[float, float, float]]  # (ε_B, ε_S, σ_εS)
    significance: SignificanceScan | None
    effective_signal: float
    effective_background: float

    def as_json(self) -> dict[str, Any]:
        """The summary as the JSON of ``metrics.json``."""
        significance = None
        if self.significance is not None:
            scan = self.significance
            significance = {
                "signal_yield": scan.signal_yield,
                "background_yield": scan.background_yield,
                "relative_background_uncertainty": scan.relative_background_uncertainty,
                "best": scan.best,
            }
        return jsonable(
            {
                "auc": self.auc.value,
                "auc_uncertainty": self.auc.uncertainty,
                "bootstrap_replicas": self.auc.replicas,
                "rejection": self.rejection,
                "signal_efficiency_at_background": [
                    {"background_efficiency": b, "signal_efficiency": s, "uncertainty": u}
                    for b, s, u in self.signal_efficiency
                ],
                "significance": significance,
                "effective_signal_jets": self.effective_signal,
                "effective_background_jets": self.effective_background,
            }
        )

    def figures(self) -> dict[str, float]:
        """AUC and ``rejection_at_30``... named as ``metrics.summary`` names them (with
        ``signal_efficiency_at_30``... where a discrete-score tagger's nearest cut misses the target)."""
        values = {"auc": self.auc.value}
        for row in self.rejection:
            values[f"rejection_at_{round(row.signal_efficiency * 100)}"] = row.rejection
            if row.achieved_signal_efficiency is not None:
                values[f"signal_efficiency_at_{round(row.signal_efficiency * 100)}"] = row.achieved_signal_efficiency
        return values


def summarise_score(
    is_signal: np.ndarray, score: np.ndarray, weight: np.ndarray, settings: EvaluationSettings
) -> ScoreSummary:
    """The ROC, AUC with its uncertainty, rejections, efficiencies and significance of one score."""
    curve = roc(is_signal, score, weight)
    effective_signal, effective_background = effective_count(weight[is_signal]), effective_count(weight[~is_signal])
    try:
        significance = best_cuts(
            is_signal,
            score,
            weight,
            settings.signal_yield,
            settings.background_yield,
            settings.background_uncertainty,
            settings.min_background,
        )
    except ConfigError as error:
        log.warning("significance scan skipped: %s", error)
        significance = None
    return ScoreSummary(
        curve,
        auc_with_uncertainty(is_signal, score, weight, settings.bootstrap, settings.seed),
        rejection_table(curve, effective_signal, effective_background, settings.signal_efficiencies),
        signal_efficiency_table(curve, effective_signal, settings.background_efficiencies),
        significance,
        effective_signal,
        effective_background,
    )


def neyman_pearson(
    arrays: JetArrays, is_signal: np.ndarray, model_roc: Roc | None, settings: EvaluationSettings
) -> tuple[Roc | None, dict[str, Any] | None]:
    """The optimal ROC from the exact likelihood ratio, when the data carry it (else ``None, None``).

    By the Neyman–Pearson lemma, a cut on the likelihood ratio p_S(x)/p_B(x) has the highest signal
    efficiency at every background efficiency: no classifier's ROC can lie above it.
    """
    if OPTIMAL_OBSERVER not in arrays.observers:
        return None, None
    optimal = roc(is_signal, arrays.observers[OPTIMAL_OBSERVER], arrays.weight)
    content: dict[str, Any] = {
        "optimal_auc": optimal.auc,
        "rejection": [
            {
                "signal_efficiency": e,
                "optimal": optimal.rejection_at(e),
                **({"model": model_roc.rejection_at(e)} if model_roc is not None else {}),
            }
            for e in settings.signal_efficiencies
        ],
    }
    if model_roc is not None:
        content.update(model_auc=model_roc.auc, auc_gap=optimal.auc - model_roc.auc)
    return optimal, jsonable(content)


OPTIMAL_LABEL = "exact likelihood ratio"


class PlotSet:
    """The plots of one report: written to ``directory``, remembered with a title and a caption."""

    def __init__(self, directory: Path, style: plots.PlotStyle) -> None:
        self.directory = directory
        self.style = style
        self.entries: list[dict[str, Any]] = []

    def add(self, figure: Figure, stem: str, title: str, caption: str) -> None:
        """Save ``figure`` as ``stem`` (PNG and PDF) and list it with its title and caption for the report."""
        paths = plots.save_figure(figure, self.directory, stem, self.style)
        png = next((path for path in paths if path.suffix == ".png"), None)
        self.entries.append({"stem": stem, "title": title, "caption": caption, "png": png, "paths": paths})

    @property
    def paths(self) -> list[Path]:
        """Every file written."""
        return [path for entry in self.entries for path in entry["paths"]]

    def for_report(self) -> list[dict[str, Any]]:
        """Title, caption, the PNG as a ``data:`` URI and the relative paths of the files."""
        return [
            {
                "stem": e["stem"],
                "title": e["title"],
                "caption": e["caption"],
                "uri": embed_png(e["png"]) if e["png"] else None,
                "files": [f"plots/{path.name}" for path in e["paths"]],
            }
            for e in self.entries
        ]
