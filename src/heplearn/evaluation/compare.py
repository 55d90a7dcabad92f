"""Compare several trained runs on the same jets: one report with the ROC overlay and a table.

``compare_runs(run_dirs, files, output)`` applies every run to the jets of ``files`` and writes
``output/metrics.json``, ``output/plots/`` and ``output/report.html``: the ROC curves with a ratio
panel to the first run, the efficiencies versus jet pT at one working point, and a table of AUC,
background rejections, signal efficiencies, mass sculpting (1/JSD) and the best Asimov
significance per model. The runs must select the same jets with the same labels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heplearn.data.in_memory import load_arrays
from heplearn.data.jets import JetArrays
from heplearn.errors import ConfigError, DataError
from heplearn.evaluation import plots
from heplearn.evaluation.binned import BinnedEfficiency, bulk_range, efficiency_versus
from heplearn.evaluation.figures import (
    NULL_NOTE,
    OPTIMAL_LABEL,
    EvaluationSettings,
    PlotSet,
    neyman_pearson,
    summarise_score,
)
from heplearn.evaluation.report import environment, jsonable, write_json, write_report
from heplearn.evaluation.scoring import (
    OBSERVER_LABELS,
    chosen_observers,
    data_files,
    data_summary,
    evaluation_data_config,
    load_run,
    predict,
    safe_name,
    signal_score,
)
from heplearn.evaluation.sculpting import mass_sculpting
from heplearn.progress import progress_bar
from heplearn.trained_model import TrainedModel

log = logging.getLogger(__name__)

__all__ = ["ComparisonResult", "compare_runs"]


@dataclass
class ComparisonResult:
    """What ``compare_runs`` wrote: the folder, its metrics, its plots and its report."""

    output: Path
    metrics: dict[str, Any]  # the content of metrics.json; one row per model in metrics["models"]
    plots: list[Path]
    report: Path


def unique_names(run_dirs: Sequence[Path]) -> list[str]:
    """The run folders' names, made unique with a suffix where two are equal."""
    names: list[str] = []
    for run_dir in run_dirs:
        name, suffix = run_dir.name, 2
        while name in names:
            name, suffix = f"{run_dir.name}-{suffix}", suffix + 1
        names.append(name)
    return names


def compare_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    files: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    names: Sequence[str] | None = None,
    settings: EvaluationSettings | None = None,
    progress: bool = True,
) -> ComparisonResult:
    """Apply every run to the same jets of ``files``; one report with the ROC overlay and a table.

    The first run is the reference of the ratio panel; ``names`` label the runs (default: the
    folder names). Runs that select other jets or labels than the first are a ``DataError``.
    """
    settings = settings or EvaluationSettings()
    if not run_dirs:
        raise ConfigError("compare: give at least one run directory")
    paths = [Path(run_dir) for run_dir in run_dirs]
    names = list(names) if names is not None else unique_names(paths)
    if len(names) != len(paths):
        raise ConfigError(f"compare: {len(names)} names for {len(paths)} runs")
    models = [load_run(path) for path in paths]
    test_paths = data_files(files, "--data")
    output = Path(output)
    jets, probabilities = _apply_all(paths, models, test_paths, progress)
    reference = jets[0]
    binned_observers, mass_observer = chosen_observers(reference, settings.observers, settings.mass_observer)
    is_signal, weight = reference.label == 0, reference.weight.astype(np.float64)

    figures = PlotSet(output / "plots", settings.style)
    rows, lines, binned = [], [], []
    for path, name, model, probability in zip(paths, names, models, probabilities, strict=True):
        score, score_label = signal_score(probability, model.class_names, settings.background_fractions)
        summary = summarise_score(is_signal, score, weight, settings)
        row: dict[str, Any] = {
            "name": name,
            "run": str(path),
            "model": model.name,
            "score": score_label,
            **summary.as_json(),
            "figures": summary.figures(),
        }
        if mass_observer is not None:
            sculpting = mass_sculpting(
                reference.observers[mass_observer],
                is_signal,
                score,
                weight,
                settings.signal_efficiencies,
                observer=mass_observer,
            )
            row["inverse_jsd"] = [
                {"signal_efficiency": cut.signal_efficiency, "inverse_jsd": cut.inverse_jsd} for cut in sculpting.after
            ]
        rows.append(row)
        lines.append(plots.RocLine(name, summary.roc, summary.effective_background))
        if binned_observers:
            values = reference.observers[binned_observers[0]].astype(np.float64)
            binned.append(
                (
                    name,
                    efficiency_versus(
                        values,
                        is_signal,
                        score,
                        summary.roc.threshold_at(settings.working_point),
                        weight,
                        settings.bins,
                        bulk_range(values),
                        binned_observers[0],
                    ),
                )
            )
    optimal, optimal_check = neyman_pearson(reference, is_signal, None, settings)
    if optimal is not None:
        lines.append(plots.RocLine(OPTIMAL_LABEL, optimal, dashed=True))
        for row in rows:
            row["auc_gap_to_optimal"] = optimal.auc - row["auc"]
    _plot(figures, lines, binned, binned_observers, names[0], models[0].class_names[0], settings)

    metrics = jsonable(
        {
            "note": NULL_NOTE,
            "files": [str(path) for path in test_paths],
            "jets": len(reference),
            "signal": models[0].class_names[0],
            "sculpting_observer": mass_observer,
            "signal_efficiencies": list(settings.signal_efficiencies),
            "background_efficiencies": list(settings.background_efficiencies),
            "models": rows,
            "neyman_pearson": optimal_check,
            "data": data_summary(test_paths, reference, models[0].class_names, models[0].config.data),
            "environment": environment(),
        }
    )
    write_json(output / "metrics.json", metrics)
    report = write_report(
        output / "report.html",
        "comparison.html.j2",
        {
            "title": f"Comparison of {len(rows)} models on {test_paths[0].name}",
            "m": metrics,
            "plots": figures.for_report(),
        },
    )
    log.info("comparison report: %s", report)
    return ComparisonResult(output, metrics, figures.paths, report)


def _apply_all(
    paths: list[Path], models: list[TrainedModel], files: list[Path], progress: bool
) -> tuple[list[JetArrays], list[np.ndarray]]:
    """Every model's jets and probabilities; runs with the same data config share one read."""
    cache: dict[str, JetArrays] = {}
    jets, probabilities = [], []
    for model in progress_bar(models, desc="comparing", disable=not progress, leave=False):
        data = evaluation_data_config(model, files)
        key = data.model_dump_json()
        if key not in cache:
            cache[key] = load_arrays(files, data)[0]
        jets.append(cache[key])
        probabilities.append(predict(model, cache[key], progress=False))
    signal = models[0].class_names[0]
    for path, model, arrays in zip(paths[1:], models[1:], jets[1:], strict=True):
        if model.class_names[0] != signal:
            raise DataError(f"{path}: its signal class is {model.class_names[0]!r}, the first run's {signal!r}")
        if len(arrays) != len(jets[0]) or not np.array_equal(arrays.label == 0, jets[0].label == 0):
            raise DataError(
                f"{path}: selects other jets or labels than {paths[0]} ({len(arrays)} vs "
                f"{len(jets[0])} jets); compare runs trained with the same selection and classes"
            )
    return jets, probabilities


def _plot(
    figures: PlotSet,
    lines: list[plots.RocLine],
    binned: list[tuple[str, BinnedEfficiency]],
    binned_observers: list[str],
    reference: str,
    signal: str,
    settings: EvaluationSettings,
) -> None:
    figures.add(
        plots.plot_roc(lines, settings.style, title=f"{signal} vs rest"),
        "roc",
        "ROC curves",
        f"Background rejection versus signal efficiency on the same jets, with binomial bands; ratio to {reference}.",
    )
    if binned:
        observer = binned_observers[0]
        figures.add(
            plots.plot_efficiency_versus(
                binned,
                OBSERVER_LABELS.get(observer, observer),
                settings.style,
                rf"$\varepsilon_\mathrm{{S}}$ = {settings.working_point:.0%}",
            ),
            f"efficiency_{safe_name(observer)}",
            f"Efficiency versus {observer}",
            f"Each model cut at a global ε_S of {settings.working_point:.0%}.",
        )
