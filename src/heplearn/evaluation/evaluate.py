"""Evaluate one trained run on data: ``metrics.json``, plots and a self-contained ``report.html``.

``evaluate_run(run_dir, files)`` applies the run's model to the jets of ``files`` (with the run's
own selection, labels and weights) and writes, by default under ``runs/<run>/eval/<dataset>/``::

    metrics.json     every figure below, machine-readable (strict JSON: null for infinities)
    plots/*.png|pdf  ROC, score distributions, efficiencies versus observables, mass sculpting, ...
    report.html      one page: tables, plots, the config, the data, the software versions

The signal is the first class of the run (heplearn's convention); for more than two classes the
signal score is the discriminant D = ln(p_sig / Σ f_i p_bkg,i) (see ``multiclass``). With training
files, TMVA's overtraining check is added. When the data carry the exact log-likelihood ratio
(``aux_log_lr``), the optimal ROC of the Neyman–Pearson lemma is drawn beside the model's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heplearn.data.config import DataConfig
from heplearn.data.in_memory import load_arrays
from heplearn.data.jets import JetArrays
from heplearn.evaluation import plots
from heplearn.evaluation.agreement import agreement
from heplearn.evaluation.binned import bulk_range, efficiency_versus, reliability_curve
from heplearn.evaluation.figures import (
    NULL_NOTE,
    OPTIMAL_LABEL,
    EvaluationSettings,
    PlotSet,
    ScoreSummary,
    neyman_pearson,
    summarise_score,
)
from heplearn.evaluation.importance import bdt_gain, permutation_importance
from heplearn.evaluation.multiclass import background_fraction_vector, confusion_matrix, one_vs_one, one_vs_rest
from heplearn.evaluation.overtraining import overtraining_check
from heplearn.evaluation.regression import evaluate_regression
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
from heplearn.runs import RunDirectory
from heplearn.tasks import Regression
from heplearn.trained_model import TrainedModel

log = logging.getLogger(__name__)

AGREEMENT_BINS = 20  # bins of the score histograms compared across domains

__all__ = ["EvaluationResult", "EvaluationSettings", "evaluate_run"]


@dataclass
class EvaluationResult:
    """What ``evaluate_run`` wrote: the figures of ``metrics.json``, the plots and the report, and where."""

    run_dir: Path
    output: Path
    dataset: str
    metrics: dict[str, Any]  # the content of metrics.json
    plots: list[Path]
    report: Path


@dataclass
class Sample:
    """The jets of one split with the model's probabilities and the signal score."""

    arrays: JetArrays
    probabilities: np.ndarray
    score: np.ndarray
    weight: np.ndarray

    @property
    def is_signal(self) -> np.ndarray:
        return self.arrays.label == 0

    def by_class(self, class_names: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Class name -> (scores, weights) of its jets, for the classes present."""
        labels = self.arrays.label
        return {
            name: (self.score[labels == i], self.weight[labels == i])
            for i, name in enumerate(class_names)
            if (labels == i).any()
        }


def apply_model(
    model: TrainedModel, files: Sequence[Path], data: DataConfig, settings: EvaluationSettings, progress: bool
) -> Sample:
    arrays, _ = load_arrays(files, data)
    probabilities = predict(model, arrays, progress)
    score, _ = signal_score(probabilities, model.class_names, settings.background_fractions)
    return Sample(arrays, probabilities, score, arrays.weight.astype(np.float64))


def evaluate_run(
    run_dir: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None = None,
    train_files: Sequence[str | os.PathLike[str]] | None = None,
    *,
    dataset: str | None = None,
    settings: EvaluationSettings | None = None,
    progress: bool = True,
    domain_files: Sequence[str | os.PathLike[str]] | None = None,
) -> EvaluationResult:
    """Evaluate the run in ``run_dir`` on ``files``; ``train_files`` add TMVA's overtraining check.

    ``domain_files`` (a data or other-domain sample, labels not needed) add the domain agreement:
    the score's distribution on them against the test jets', with χ²/ndf, KS and the AUC with
    which the score tells the two apart (½ when the tagger behaves the same on both).

    Writes ``metrics.json``, ``plots/`` and ``report.html`` to ``output`` (default
    ``<run_dir>/eval/<dataset>``, ``dataset`` defaulting to the first file's name). A missing run
    or data file is a ``DataError``, raised before anything is written.
    """
    settings = settings or EvaluationSettings()
    run_dir = Path(run_dir)
    model = load_run(run_dir, kinds=(Regression.kind,))
    test_paths = data_files(files, "--data")
    train_paths = data_files(train_files, "--train-data") if train_files else None
    domain_paths = data_files(domain_files, "--domain-data") if domain_files else None
    dataset = safe_name(dataset or test_paths[0].stem)
    run = RunDirectory(run_dir)
    output = Path(output) if output is not None else run.eval_dir(dataset)
    data = evaluation_data_config(model, test_paths)
    if isinstance(model.task, Regression):
        return _evaluate_regression(model, run, test_paths, data, output, dataset, settings, progress)
    test = apply_model(model, test_paths, data, settings, progress)
    binned_observers, mass_observer = chosen_observers(test.arrays, settings.observers, settings.mass_observer)
    train = apply_model(model, train_paths, data, settings, progress) if train_paths else None
    log.info("evaluating %s on %d jets of %s", run_dir, len(test.arrays), dataset)

    class_names = model.class_names
    scores = summarise_score(test.is_signal, test.score, test.weight, settings)
    figures = PlotSet(output / "plots", settings.style)
    metrics: dict[str, Any] = {
        "note": NULL_NOTE,
        "run": str(run_dir),
        "model": model.name,
        "dataset": dataset,
        "class_names": class_names,
        "signal": class_names[0],
        "score": signal_score(test.probabilities[:1], class_names)[1],
        "jets": len(test.arrays),
        **scores.as_json(),
    }
    metrics["neyman_pearson"] = _roc(model, test, scores, settings, figures)
    metrics["overtraining"] = _overtraining(model, test, train, train_paths, metrics["score"], settings, figures)
    metrics |= _classes(model, test, settings, figures)
    metrics |= _physics(model, test, scores, binned_observers, mass_observer, metrics["score"], settings, figures)
    metrics["domain_agreement"] = _domain(
        model, test, domain_paths, data, metrics["score"], settings, figures, progress
    )
    metrics["feature_importance"] = _ranking(model, test, settings, figures, progress)
    history = run.read_history()
    if sum("train_loss" in record for record in history) > 1:
        figures.add(
            plots.plot_training_history(history, settings.style),
            "history",
            "Training history",
            "Loss per epoch on the training and validation splits (metrics.jsonl).",
        )
    metrics["data"] = data_summary(test_paths, test.arrays, class_names, data)
    return _write(
        model,
        run,
        output,
        dataset,
        metrics,
        figures,
        "evaluation.html.j2",
        history_last=jsonable(history[-1]) if history else None,
    )


def _write(
    model: TrainedModel,
    run: RunDirectory,
    output: Path,
    dataset: str,
    metrics: dict[str, Any],
    figures: PlotSet,
    template: str,
    **context: Any,
) -> EvaluationResult:
    """``metrics.json`` (with the environment) and ``report.html`` from ``template``, in ``output``."""
    metrics = jsonable(metrics | {"environment": environment()})
    write_json(output / "metrics.json", metrics)
    config_path = run.config_file
    report = write_report(
        output / "report.html",
        template,
        {
            "title": f"{model.name}: {run.path.name} on {dataset}",
            "m": metrics,
            "plots": figures.for_report(),
            "config_text": config_path.read_text() if config_path.is_file() else "",
            **context,
        },
    )
    log.info("report: %s", report)
    return EvaluationResult(run.path, output, dataset, metrics, figures.paths, report)


def _evaluate_regression(
    model: TrainedModel,
    run: RunDirectory,
    test_paths: list[Path],
    data: DataConfig,
    output: Path,
    dataset: str,
    settings: EvaluationSettings,
    progress: bool,
) -> EvaluationResult:
    """A regression run: bias, resolution and quantile coverage, overall and binned (``regression``)."""
    arrays, _ = load_arrays(test_paths, data)
    outputs = predict(model, arrays, progress)
    observers = [name for name in (settings.observers or ("jet_pt",)) if name in arrays.observers]
    log.info("evaluating regression %s on %d events of %s", run.path, len(arrays), dataset)
    figures = PlotSet(output / "plots", settings.style)
    metrics: dict[str, Any] = {
        "note": NULL_NOTE,
        "run": str(run.path),
        "model": model.name,
        "dataset": dataset,
        "task": model.task.kind,
        "jets": len(arrays),
        **evaluate_regression(model, arrays, outputs, observers, settings, figures),
    }
    metrics["data"] = data_summary(test_paths, arrays, [], data)
    return _write(model, run, output, dataset, metrics, figures, "regression.html.j2")


def _roc(
    model: TrainedModel, test: Sample, scores: ScoreSummary, settings: EvaluationSettings, figures: PlotSet
) -> dict[str, Any] | None:
    """The ROC plot, with the Neyman–Pearson optimum when the data carry it; returns the check."""
    optimal, check = neyman_pearson(test.arrays, test.is_signal, scores.roc, settings)
    lines = [plots.RocLine(model.name, scores.roc, scores.effective_background)]
    if optimal is not None:
        lines.append(plots.RocLine(OPTIMAL_LABEL, optimal, dashed=True))
    figures.add(
        plots.plot_roc(lines, settings.style, ratio=optimal is not None, title=f"{model.class_names[0]} vs rest"),
        "roc",
        "ROC curve",
        "Background rejection versus signal efficiency with binomial uncertainty bands"
        + ("; dashed: the Neyman–Pearson optimum, with the ratio to it" if optimal is not None else "")
        + ".",
    )
    return check


def _overtraining(
    model: TrainedModel,
    test: Sample,
    train: Sample | None,
    train_paths: list[Path] | None,
    score_label: str,
    settings: EvaluationSettings,
    figures: PlotSet,
) -> dict[str, Any] | None:
    """TMVA's check (ε_S at fixed ε_B and KS tests, train vs test) and the score distributions."""
    class_names = model.class_names
    check, pvalues, train_by_class = None, None, None
    if train is not None and train_paths is not None:
        uniform = bool(np.all(test.weight == test.weight[0]) and np.all(train.weight == train.weight[0]))
        result = overtraining_check(
            test.score,
            test.arrays.label,
            train.score,
            train.arrays.label,
            class_names,
            test.weight,
            train.weight,
            0,
            settings.background_efficiencies,
            weighted=not uniform,
        )
        check = jsonable(result) | {
            "train_files": [str(path) for path in train_paths],
            "train_jets": len(train.arrays),
            "weighted_ks": not uniform,
        }
        pvalues = {name: ks.pvalue for name, ks in result.ks.items()}
        train_by_class = train.by_class(class_names)
    binary = test.probabilities.shape[1] == 2
    figures.add(
        plots.plot_score_distributions(
            test.by_class(class_names),
            train_by_class,
            pvalues,
            settings.style,
            xlabel=score_label,
            score_range=(0.0, 1.0) if binary else bulk_range(test.score, (0.001, 0.999)),
        ),
        "scores",
        "Score distributions",
        "Per true class, normalised: test jets filled"
        + (", training jets as points, with the KS p-value" if train_by_class else "")
        + ".",
    )
    return check


def _classes(model: TrainedModel, test: Sample, settings: EvaluationSettings, figures: PlotSet) -> dict[str, Any]:
    """One-vs-rest and one-vs-one AUCs (more than two classes), the confusion matrix, calibration."""
    class_names, labels = model.class_names, test.arrays.label
    content: dict[str, Any] = {"multiclass": None}
    if len(class_names) > 2:
        rest = one_vs_rest(labels, test.probabilities, class_names, test.weight)
        pairs = one_vs_one(labels, test.probabilities, class_names, test.weight)
        fractions = background_fraction_vector(len(class_names), 0, settings.background_fractions)
        content["multiclass"] = {
            "one_vs_rest_auc": {name: curve.auc for name, curve in rest.items()},
            "one_vs_one_auc": {name: curve.auc for name, curve in pairs.items()},
            "background_fractions": dict(zip(class_names, fractions.tolist(), strict=True)),
        }
        figures.add(
            plots.plot_roc(
                [plots.RocLine(name, curve) for name, curve in rest.items()],
                settings.style,
                ratio=False,
                title="one vs rest",
            ),
            "roc_one_vs_rest",
            "One-vs-rest ROC curves",
            "Each class against all others, scored by its own probability.",
        )
    matrix = confusion_matrix(labels, test.probabilities, test.weight)
    content["confusion_matrix"] = matrix
    figures.add(
        plots.plot_confusion_matrix(matrix, class_names, settings.style),
        "confusion",
        "Confusion matrix",
        "Weighted fraction of each true class assigned to each class by the largest probability.",
    )
    shown = [0] if len(class_names) == 2 else range(len(class_names))
    calibration = {
        class_names[i]: reliability_curve(labels == i, np.clip(test.probabilities[:, i], 0, 1), test.weight)
        for i in shown
    }
    content["calibration"] = calibration
    figures.add(
        plots.plot_reliability(calibration, settings.style),
        "calibration",
        "Calibration",
        "Observed fraction of a class versus its predicted probability (reliability curve).",
    )
    return content


def _physics(
    model: TrainedModel,
    test: Sample,
    scores: ScoreSummary,
    binned_observers: list[str],
    mass_observer: str | None,
    score_label: str,
    settings: EvaluationSettings,
    figures: PlotSet,
) -> dict[str, Any]:
    """Significance scan, efficiencies versus observables at the working point, mass sculpting."""
    style, observers = settings.style, test.arrays.observers
    if scores.significance is not None:
        figures.add(
            plots.plot_significance(scores.significance, style, xlabel=f"Cut on {score_label}"),
            "significance",
            "Significance versus score cut",
            "s/√b, s/√(s+b) and the Asimov Z_A (arXiv:1007.1727); stars mark the best cuts.",
        )
    threshold = scores.roc.threshold_at(settings.working_point)
    content: dict[str, Any] = {
        "working_point": {"signal_efficiency": settings.working_point, "threshold": threshold},
        "efficiency_versus": {},
        "sculpting": None,
    }
    point = rf"$\varepsilon_\mathrm{{S}}$ = {settings.working_point:.0%}"
    for name in binned_observers:
        values = observers[name].astype(np.float64)
        binned = efficiency_versus(
            values, test.is_signal, test.score, threshold, test.weight, settings.bins, bulk_range(values), name
        )
        content["efficiency_versus"][name] = jsonable(binned) | {"rejection": jsonable(binned.rejection)}
        figures.add(
            plots.plot_efficiency_versus([(model.name, binned)], OBSERVER_LABELS.get(name, name), style, point),
            f"efficiency_{safe_name(name)}",
            f"Efficiency versus {name}",
            f"Signal efficiency and background rejection of the cut at a global ε_S of "
            f"{settings.working_point:.0%}, in bins of {name}.",
        )
    if mass_observer is not None:
        sculpting = mass_sculpting(
            observers[mass_observer],
            test.is_signal,
            test.score,
            test.weight,
            settings.signal_efficiencies,
            observer=mass_observer,
        )
        content["sculpting"] = {
            "observer": mass_observer,
            "cuts": [
                {
                    "signal_efficiency": cut.signal_efficiency,
                    "threshold": cut.threshold,
                    "background_efficiency": cut.background_efficiency,
                    "jsd": cut.jsd,
                    "inverse_jsd": cut.inverse_jsd,
                }
                for cut in sculpting.after
            ],
        }
        figures.add(
            plots.plot_mass_sculpting(sculpting, OBSERVER_LABELS.get(mass_observer, mass_observer), style),
            "sculpting",
            "Mass sculpting",
            f"Background {mass_observer} before and after the score cut at each ε_S, with 1/JSD (arXiv:2010.09745).",
        )
    return content


def _domain(
    model: TrainedModel,
    test: Sample,
    domain_paths: list[Path] | None,
    data: DataConfig,
    score_label: str,
    settings: EvaluationSettings,
    figures: PlotSet,
    progress: bool,
) -> dict[str, Any] | None:
    """The score on another domain (data, another detector or tune) against the test jets' score."""
    if not domain_paths:
        return None
    arrays, _ = load_arrays(domain_paths, data.unlabelled())
    score, _ = signal_score(predict(model, arrays, progress), model.class_names, settings.background_fractions)
    binary = test.probabilities.shape[1] == 2
    low, high = (0.0, 1.0) if binary else bulk_range(np.concatenate([test.score, score]), (0.001, 0.999))
    result = agreement(test.score, score, test.weight, edges=np.linspace(low, high, AGREEMENT_BINS + 1))
    figures.add(
        plots.plot_agreement(result, "simulation (test)", "data", score_label, settings.style),
        "domain_agreement",
        "Score on simulation and data",
        f"The score's distribution on the test jets and on {len(arrays)} jets of the other domain, "
        "normalised, with their ratio; χ²/ndf (shape), KS, the separation AUC and the cross-validated "
        "domain-classifier AUC (the binned likelihood ratio, which also sees a change of shape) in the legend.",
    )
    return result.as_json() | {"files": [str(path) for path in domain_paths], "jets": len(arrays)}


def _ranking(
    model: TrainedModel, test: Sample, settings: EvaluationSettings, figures: PlotSet, progress: bool
) -> dict[str, Any] | None:
    """Permutation importance of every input feature, XGBoost's gain beside it for BDTs."""
    if not settings.importance:
        return None
    ranking = permutation_importance(
        model,
        test.arrays,
        repeats=settings.importance_repeats,
        seed=settings.seed,
        max_jets=settings.importance_jets,
        gains=bdt_gain(model),
        progress=progress,
    )
    if not ranking.features:
        return None
    with_gain = any(feature.gain is not None for feature in ranking.features)
    figures.add(
        plots.plot_feature_ranking(ranking, settings.style),
        "importance",
        "Feature ranking",
        "AUC lost when a feature is permuted across jets (particle features: across all real particles)"
        + ("; XGBoost gain beside it." if with_gain else "."),
    )
    return jsonable(ranking)
