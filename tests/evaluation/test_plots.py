"""Every plot renders to a valid PNG (and PDF) of a sensible size, without a warning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from heplearn.evaluation import plots
from heplearn.evaluation.binned import efficiency_versus, reliability_curve
from heplearn.evaluation.importance import FeatureImportance, FeatureRanking
from heplearn.evaluation.metrics import roc
from heplearn.evaluation.multiclass import confusion_matrix
from heplearn.evaluation.sculpting import mass_sculpting
from heplearn.evaluation.significance import best_cuts

PNG_ONLY = plots.PlotStyle(label="heplearn Internal", formats=("png",), dpi=60)
RNG = np.random.default_rng(0)
N = 4000
IS_SIGNAL = RNG.random(N) < 0.5
SCORE = 1 / (1 + np.exp(-RNG.normal(np.where(IS_SIGNAL, 1.5, -1.0), 1.0)))
WEIGHT = RNG.uniform(0.5, 2, N)
MASS = np.where(IS_SIGNAL, RNG.normal(172, 20, N), 20 + RNG.exponential(60, N))
PT = RNG.uniform(500, 1000, N)


def roc_figure() -> Figure:
    curve = roc(IS_SIGNAL, SCORE, WEIGHT)
    worse = roc(IS_SIGNAL, SCORE + RNG.normal(0, 0.3, N), WEIGHT)
    return plots.plot_roc(
        [
            plots.RocLine("reference", curve, 2000.0),
            plots.RocLine("noisy", worse, 2000.0),
            plots.RocLine("optimal", curve, dashed=True),
        ],
        PNG_ONLY,
    )


FIGURES: dict[str, Callable[[], Figure]] = {
    "roc": roc_figure,
    "scores": lambda: plots.plot_score_distributions(
        {"top": (SCORE[IS_SIGNAL], WEIGHT[IS_SIGNAL]), "qcd": (SCORE[~IS_SIGNAL], WEIGHT[~IS_SIGNAL])},
        {
            "top": (SCORE[IS_SIGNAL][:500], WEIGHT[IS_SIGNAL][:500]),
            "qcd": (SCORE[~IS_SIGNAL][:500], WEIGHT[~IS_SIGNAL][:500]),
        },
        {"top": 0.4, "qcd": 0.001},
        PNG_ONLY,
        score_range=(0, 1),
    ),
    "efficiency": lambda: plots.plot_efficiency_versus(
        [("a", efficiency_versus(PT, IS_SIGNAL, SCORE, 0.5, WEIGHT, 8))], "pT [GeV]", PNG_ONLY, "50%"
    ),
    "sculpting": lambda: plots.plot_mass_sculpting(mass_sculpting(MASS, IS_SIGNAL, SCORE, WEIGHT), "mass", PNG_ONLY),
    "confusion": lambda: plots.plot_confusion_matrix(
        confusion_matrix(IS_SIGNAL.astype(int), np.column_stack([1 - SCORE, SCORE])), ["qcd", "top"], PNG_ONLY
    ),
    "ranking": lambda: plots.plot_feature_ranking(
        FeatureRanking(
            0.9,
            [
                FeatureImportance(
                    f"feature_{i}",
                    "particle" if i % 2 else "jet",
                    ("jet",),
                    0.1 / (i + 1),
                    0.01,
                    None if i % 2 else 1.0 / (i + 1),
                )
                for i in range(6)
            ],
            1000,
            3,
        ),
        PNG_ONLY,
    ),
    "calibration": lambda: plots.plot_reliability({"top": reliability_curve(IS_SIGNAL, SCORE, WEIGHT)}, PNG_ONLY),
    "significance": lambda: plots.plot_significance(best_cuts(IS_SIGNAL, SCORE, WEIGHT, 100, 10_000, 0.1), PNG_ONLY),
    "history": lambda: plots.plot_training_history(
        [{"train_loss": 0.6 - 0.02 * i, "val_loss": 0.62 - 0.015 * i} for i in range(8)], PNG_ONLY
    ),
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_plot_writes_a_valid_png(name: str, tmp_path: Path) -> None:
    (path,) = plots.save_figure(FIGURES[name](), tmp_path, name, PNG_ONLY)
    assert path == tmp_path / f"{name}.png"
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert 300 <= width <= 1200 and 300 <= height <= 1200, image.shape
    assert image[..., :3].std() > 0.05  # not blank
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_png_and_pdf(tmp_path: Path) -> None:
    paths = plots.save_figure(roc_figure(), tmp_path, "roc", plots.PlotStyle())
    assert [path.suffix for path in paths] == [".png", ".pdf"]
    assert paths[1].read_bytes().startswith(b"%PDF") and paths[1].stat().st_size > 5000
