"""Evaluation: physics metrics, plots and HTML reports for trained taggers.

The entry points (imported on first use, so that ``heplearn.evaluation.metrics`` stays light)::

    evaluate_run(run_dir, files, output=None, train_files=None, ...) -> EvaluationResult
    compare_runs(run_dirs, files, output, ...) -> ComparisonResult

The figures themselves live in small modules: ``metrics`` (ROC, AUC, rejection), ``overtraining``,
``multiclass``, ``significance``, ``sculpting``, ``importance``, ``binned``; ``plots`` draws them
and ``report`` renders the HTML page.
"""

from __future__ import annotations

from typing import Any

_API = {
    "evaluate_run": "heplearn.evaluation.evaluate",
    "EvaluationResult": "heplearn.evaluation.evaluate",
    "EvaluationSettings": "heplearn.evaluation.figures",
    "compare_runs": "heplearn.evaluation.compare",
    "ComparisonResult": "heplearn.evaluation.compare",
    "PlotStyle": "heplearn.evaluation.plots",
}
__all__ = ["ComparisonResult", "EvaluationResult", "EvaluationSettings", "PlotStyle", "compare_runs",
           "evaluate_run"]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'heplearn.evaluation' has no attribute {name!r}")
