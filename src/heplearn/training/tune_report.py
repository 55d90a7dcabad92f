"""The HTML report of a ``heplearn tune`` study: Optuna's standard plots, the best trial, every trial.

The plots are Optuna's matplotlib ones (``optuna.visualization.matplotlib``: no plotly needed):
the optimisation history (each trial's value and the best so far), the parameter importances
(fANOVA, Hutter et al., ICML 2014) and the parallel coordinates of the trials. They are written
to ``plots/`` (PNG and PDF) and embedded in one self-contained ``report.html``, as in
``heplearn evaluate``'s report.
"""

from __future__ import annotations

import logging
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import yaml

from heplearn.evaluation.figures import PlotSet
from heplearn.evaluation.plots import PlotStyle
from heplearn.evaluation.report import environment, write_report

log = logging.getLogger(__name__)


def _plot(plots: PlotSet, notes: list[str], draw: Any, stem: str, title: str, caption: str, ylabel: str | None) -> None:
    """Draw one Optuna plot into ``plots``; a plot the study cannot make yet becomes a note."""
    from optuna.exceptions import ExperimentalWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            axes = draw()
    except (ValueError, RuntimeError) as error:  # e.g. importances of a single finished trial
        notes.append(f"{title}: not drawn ({error}).")
        return
    # what Optuna warns about a plot (too few trials for the importances...) goes into the report
    notes.extend(f"{title}: {warning.message}" for warning in caught if warning.category is not ExperimentalWarning)
    axes = axes.flat[0] if hasattr(axes, "flat") else axes
    if ylabel:
        axes.set_ylabel(ylabel)
    figure = axes.figure
    figure.set_size_inches(9, 6)
    figure.set_layout_engine("tight")  # not the constrained layout of plot_style: it fails on Optuna's colour bar
    try:
        plots.add(figure, stem, title, caption)
    finally:
        plt.close(figure)


def write_tune_report(study: Any, plan: Any, summary: dict[str, Any], directory: Path) -> Path:
    """Plots of the study in ``directory/plots`` and ``directory/report.html``; returns the report's path."""
    import optuna.visualization.matplotlib as optuna_plots

    plots = PlotSet(directory / "plots", PlotStyle())
    notes: list[str] = []
    metric = plan.space.metric
    _plot(
        plots,
        notes,
        lambda: optuna_plots.plot_optimization_history(study, target_name=metric),
        "optimization_history",
        "Optimisation history",
        f"{metric} of each complete trial (dots) and the best so far (line), against the trial number.",
        metric,
    )
    _plot(
        plots,
        notes,
        lambda: optuna_plots.plot_param_importances(study, target_name=metric),
        "param_importances",
        "Parameter importances",
        f"Share of the variance of {metric} over the complete trials that each key "
        "explains (fANOVA on a random forest fitted to the trials).",
        None,
    )
    _plot(
        plots,
        notes,
        lambda: optuna_plots.plot_parallel_coordinate(study, target_name=metric),
        "parallel_coordinate",
        "Parallel coordinates",
        f"Each complete trial as a line through its values of the keys; colour: {metric}.",
        None,
    )
    if study.get_trials(deepcopy=False) and any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        _plot(
            plots,
            notes,
            lambda: optuna_plots.plot_intermediate_values(study),
            "intermediate_values",
            "Per-epoch values",
            f"{metric} after each epoch of every trial, the pruned ones included (the curves the pruner compared).",
            metric,
        )
    info = environment()
    info["optuna"] = version("optuna")
    context = {
        "m": {
            **summary,
            "environment": info,
            "plot_notes": notes,
            "base_config": yaml.safe_dump(plan.base, sort_keys=False),
        },
        "plots": plots.for_report(),
        "title": f"heplearn tune: {plan.name}",
    }
    return write_report(directory / "report.html", "tuning.html.j2", context)
