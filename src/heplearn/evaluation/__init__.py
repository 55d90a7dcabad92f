"""Evaluation: physics metrics, plots and HTML reports for trained taggers.

The entry points (imported on first use, so that ``heplearn.evaluation.metrics`` stays light)::

    evaluate_run(run_dir, files, output=None, train_files=None, ...) -> EvaluationResult
    compare_runs(run_dirs, files, output, ...) -> ComparisonResult

The figures themselves live in small modules: ``metrics`` (ROC, AUC, rejection), ``overtraining``,
``multiclass``, ``significance``, ``sculpting``, ``importance``, ``binned``; ``plots`` draws them
and ``report`` renders the HTML page.
"""

from __future__ import annotations

from heplearn._lazy import lazy_api

__getattr__, __dir__ = lazy_api(
    __name__,
    {
        "heplearn.evaluation.evaluate": ["evaluate_run", "EvaluationResult"],
        "heplearn.evaluation.figures": ["EvaluationSettings"],
        "heplearn.evaluation.compare": ["compare_runs", "ComparisonResult"],
        "heplearn.evaluation.plots": ["PlotStyle"],
    },
)
__all__ = ["ComparisonResult", "EvaluationResult", "EvaluationSettings", "PlotStyle", "compare_runs", "evaluate_run"]
