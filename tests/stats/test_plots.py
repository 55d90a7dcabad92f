"""The fit plots: what each draws, read back from the figure."""

from __future__ import annotations

import numpy as np

from heplearn.stats.plots import plot_brazil, plot_postfit, plot_scale_factors, plot_scan
from heplearn.stats.results import Scan, UpperLimit
from heplearn.stats.scale_factors import BinnedScaleFactor, ScaleFactor


def test_postfit_stack_and_ratio() -> None:
    edges = np.linspace(0, 1, 5)
    figure = plot_postfit(
        edges,
        {"qcd": np.array([100.0, 50, 20, 5]), "top": np.array([1.0, 2, 5, 10])},
        np.array([99.0, 55, 24, 16]),
        np.full(4, 2.0),
        xlabel="p(top)",
    )
    main, lower = figure.axes
    assert lower.get_xlabel() == "p(top)" and lower.get_ylabel() == "Data / model"
    assert main.get_ylabel() == "Events / bin" and main.get_yscale() == "log"
    # the stack's top edge is the total model
    top = next(patch for patch in main.patches if patch.get_label() == "top")
    assert np.max(top.get_path().vertices[:, 1]) == 100.0 + 1.0


def test_scan_and_brazil_plots() -> None:
    grid = np.linspace(0, 2, 21)
    figure = plot_scan({"stat. only": Scan(("mu",), (grid,), 0.5 * (grid - 1) ** 2, (1.0,))})
    (ax,) = figure.axes
    np.testing.assert_allclose(ax.lines[0].get_ydata(), 0.5 * (grid - 1) ** 2)
    scan = np.linspace(0, 4, 9)
    cls = np.exp(-scan)
    limit = UpperLimit(3.0, np.array([1.0, 1.5, 2.0, 2.5, 3.0]), scan, cls, np.vstack([cls] * 5))
    (ax,) = plot_brazil(limit).axes
    assert ax.get_ylabel() == r"CL$_s$" and "3 observed" in ax.get_legend().get_texts()[-1].get_text()


def test_scale_factor_plot_shows_the_ratio_per_bin() -> None:
    binned = [
        BinnedScaleFactor(300, 500, ScaleFactor(0.54, 0.01, 0.6, 0.004, 0.9, 0.02, 0.017)),
        BinnedScaleFactor(500, 800, ScaleFactor(0.6, 0.01, 0.6, 0.004, 1.0, 0.02, 0.017)),
    ]
    top, bottom = plot_scale_factors(binned).axes
    assert top.get_ylabel() == r"Signal efficiency $\varepsilon$"
    assert bottom.get_ylabel() == "SF" and "GeV" in bottom.get_xlabel()
    ratio = bottom.containers[0].lines[0]
    np.testing.assert_allclose(np.asarray(ratio.get_xdata(), np.float64), [400, 650])
    np.testing.assert_allclose(np.asarray(ratio.get_ydata(), np.float64), [0.9, 1.0])
