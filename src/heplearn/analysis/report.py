"""The analysis report: one HTML page, the measured fraction per tagger beside the truth first.

It reads what the stages wrote (each fit's ``results.json``, each evaluation's ``metrics.json``,
the pseudo-data files' lengths for the truth) and links every stage's own report, folder and log.
``results.json`` beside it holds the same numbers for scripts.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from heplearn.analysis.engine import DONE, stage_states
from heplearn.analysis.plan import PSEUDO_DATA, REPORT, SNAKEFILE, Plan
from heplearn.evaluation.report import environment, write_json, write_report

RESULTS = "results.json"


def _rows(path: Path) -> int:
    if path.suffix == ".parquet":
        return int(pq.read_metadata(path).num_rows)
    import uproot

    with uproot.open(path) as file:
        return int(file[next(iter(file.keys(cycle=False)))].num_entries)


def _seconds(folder: Path) -> float | None:
    path = folder / "benchmark.tsv"
    if not path.is_file():
        return None
    with path.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return float(rows[0]["s"]) if rows else None


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def pseudo_data_counts(plan: Plan) -> dict[str, int] | None:
    """Jets of each process in the pseudo-data, or None while they are not all made."""
    counts = {}
    for process in plan.config.pseudo_data.processes:
        if PSEUDO_DATA in plan.external:
            path = Path(plan.external[PSEUDO_DATA][process])
        else:
            path = plan.output / plan.stage(f"generate_{PSEUDO_DATA}_{process}").files["test"]
        if not path.is_file():
            return None
        counts[process] = _rows(path)
    return counts


def analysis_results(plan: Plan) -> dict[str, Any]:
    """The measured fraction per tagger (ranked by σ), the truth, and every stage's state and links."""
    fit = plan.config.fit
    counts = pseudo_data_counts(plan)
    truth = None if counts is None else counts[fit.signal] / sum(counts.values())
    states = {state.stage.name: state for state in stage_states(plan)}
    taggers, missing = [], []
    for model in plan.config.models:
        fit_stage, evaluation = plan.stage(f"fit_{model}"), plan.stage(f"evaluate_{model}")
        results = _read(plan.output / fit_stage.files["results"]) if states[fit_stage.name].state == DONE else None
        if results is None:
            missing.append(model)
            continue
        full, stat = results["fraction"]["full_model"], results["fraction"]["binned_stat_only"]
        metrics = _read(plan.output / evaluation.files["metrics"]) if states[evaluation.name].state == DONE else None
        pull = None if truth is None else (full["fraction"] - truth) / full["uncertainty"]
        taggers.append(
            {
                "model": model,
                "fraction": full["fraction"],
                "uncertainty": full["uncertainty"],
                "stat_uncertainty": stat["uncertainty"],
                "unbinned": results["fraction"]["unbinned"],
                "mu": results["mu"]["stat. + syst."],
                "pull": pull,
                "pull_class": "good" if pull is not None and abs(pull) <= 2 else "bad",
                "auc": None if metrics is None else metrics.get("auc"),
                "fit_report": fit_stage.report,
                "evaluation_report": evaluation.report if metrics is not None else None,
            }
        )
    taggers.sort(key=lambda t: t["uncertainty"] if math.isfinite(t["uncertainty"]) else math.inf)
    stages = [
        {
            "name": s.stage.name,
            "kind": s.stage.kind,
            "state": s.state,
            "reason": s.reason,
            "key": s.stage.key,
            "folder": s.stage.folder,
            "log": f"{s.stage.folder}/log.txt",
            "report": s.stage.report,
            "seconds": _seconds(plan.output / s.stage.folder),
        }
        for s in states.values()
    ]
    return {
        "name": plan.config.name,
        "signal": fit.signal,
        "background": fit.background,
        "systematics": sorted(fit.systematics),
        "true_fraction": truth,
        "pseudo_data_jets": counts,
        "data_jets": None if counts is None else sum(counts.values()),
        "taggers": taggers,
        "missing": missing,
        "stages": stages,
        "snakefile": SNAKEFILE,
        "config": str(plan.config_path),
    }


def write_analysis_report(plan: Plan) -> Path:
    """Write ``report.html`` and ``results.json`` into the analysis folder; returns the report's path."""
    results = analysis_results(plan)
    write_json(plan.output / RESULTS, results)
    context = {**results, "environment": environment()}
    return write_report(
        plan.output / REPORT,
        "analysis.html.j2",
        {"title": f"Analysis {plan.config.name}: the {results['signal']} fraction", "m": context},
    )


def relative(path: str | os.PathLike[str], plan: Plan) -> str:
    """A path of the analysis folder as the user would type it (relative to the working directory if inside)."""
    try:
        return str(Path(plan.output, path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(Path(plan.output, path))


__all__ = ["analysis_results", "pseudo_data_counts", "write_analysis_report"]
