"""The README's main job: generate top and QCD jets, train taggers on them, compare them.

``heplearn demo`` runs the whole chain on this machine with no download: Pythia 8 + FastJet
generate a small top-vs-QCD sample, the example configs of ``heplearn/configs`` train the
rectangular cuts, the projective likelihood, the BDT, the MLP and the particle-level networks
(briefly, with CPU presets), and every model is evaluated on the same test jets. The table is
printed and written to ``<output>/results.md`` and ``results.json``; ``compare_runs`` writes the
full comparison (ROC overlay, rejections, mass sculpting) to ``<output>/report.html``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from heplearn.data.files import write_json, write_text_atomic
from heplearn.evaluation.compare import compare_runs
from heplearn.models import registry
from heplearn.run_config import load_run_config
from heplearn.runs import RunDirectory
from heplearn.training.run import train

log = logging.getLogger(__name__)

# model -> overrides that make it train in about a minute on 2 CPU cores
DEMO_MODELS: dict[str, list[str]] = {
    "cuts": ["model.background_efficiencies=[0.02,0.05,0.1,0.2,0.3,0.5,0.7]", "model.n_bins=40"],
    "likelihood": [],
    "bdt": ["model.n_estimators=400"],
    "mlp": ["training.epochs=15"],
    "pfn": ["model.preset=small", "training.epochs=20", "training.learning_rate=0.003"],
    "particlenet": ["model.preset=small", "training.epochs=8", "training.learning_rate=0.003"],
    "part": ["model.preset=small", "training.epochs=5", "training.learning_rate=0.003"],
}


@dataclass
class DemoResult:
    """One row of the demo's table: a model's AUC and its rejections at 30% and 50% signal efficiency."""

    model: str
    auc: float
    rejection_at_30: float
    rejection_at_50: float
    run_dir: Path
    # the ε_S a discrete-score tagger's nearest cut reaches, where no cut reaches 30% / 50% (None: reached)
    signal_efficiency_at_30: float | None = None
    signal_efficiency_at_50: float | None = None


def config_path(name: str) -> Path:
    """The path of a config shipped with heplearn (``heplearn/configs/<name>``)."""
    return Path(str(resources.files("heplearn") / "configs" / name))


def available_models() -> list[str]:
    """Demo models whose implementation is importable (the particle networks may be absent)."""
    names = []
    for name in DEMO_MODELS:
        try:
            registry.model_class(name)
        except (ImportError, AttributeError):
            log.warning("model %s is not available in this installation; skipped", name)
            continue
        names.append(name)
    return names


def run_demo(output: Path, jets_per_class: int = 6000, workers: int = 2, models: list[str] | None = None,
             progress: bool = True) -> list[DemoResult]:
    """Generate top and QCD jets, train the demo's models briefly, compare them; write the report into ``output``."""
    from heplearn.generate.driver import generate

    output = Path(output)
    data_dir = output / "data"
    generated = generate(["top", "qcd"], jets_per_class, data_dir, seed=1, workers=workers, progress=progress)
    files = {split: str(path) for split, path in generated.files.items()}
    run_dirs: dict[str, Path] = {}
    for name in models or available_models():
        overrides = [f"data.train=[{files['train']}]", f"data.val=[{files['val']}]", f"data.test=[{files['test']}]",
                     *DEMO_MODELS.get(name, [])]
        config = load_run_config(config_path(f"top_qcd_{name}.yaml"), overrides)
        run_dir = output / "runs" / name
        if not RunDirectory(run_dir).is_finished():
            if run_dir.exists():
                import shutil

                shutil.rmtree(run_dir)  # an interrupted earlier demo: start this model afresh
            log.info("training %s", name)
            train(config, name=name, runs_dir=output / "runs", progress=progress)
        run_dirs[name] = run_dir
    # every model on the same test jets: the table below and the full report
    comparison = compare_runs(list(run_dirs.values()), [files["test"]], output, names=list(run_dirs),
                              progress=progress)
    results = [DemoResult(row["name"], row["figures"]["auc"], _rejection(row["figures"]["rejection_at_30"]),
                          _rejection(row["figures"]["rejection_at_50"]), run_dirs[row["name"]],
                          row["figures"].get("signal_efficiency_at_30"), row["figures"].get("signal_efficiency_at_50"))
               for row in comparison.metrics["models"]]
    write_results(output, results, generated.jets_per_split)
    log.info("report: %s", comparison.report)
    return results


def _rejection(value: float | None) -> float:
    """metrics.json stores an infinite rejection (no background jet passes) as null."""
    return float("inf") if value is None else float(value)


def results_table(results: list[DemoResult]) -> str:
    """The demo's results as a Markdown table."""
    lines = ["| model | AUC | 1/ε_B at ε_S = 30% | 1/ε_B at ε_S = 50% |", "|---|---|---|---|"]
    lines += [f"| {r.model} | {r.auc:.4f} | {_cell(r.rejection_at_30, r.signal_efficiency_at_30)} | "
              f"{_cell(r.rejection_at_50, r.signal_efficiency_at_50)} |" for r in results]
    return "\n".join(lines)


def _cell(rejection: float, reached: float | None) -> str:
    """A rejection, with the ε_S of the cut it belongs to when that is not the column's (discrete scores)."""
    return f"{rejection:.1f}" + (f" (at ε_S = {reached:.0%})" if reached is not None else "")


def write_results(output: Path, results: list[DemoResult], jets_per_split: dict[str, Any]) -> None:
    """Write ``results.md`` (the table) into ``output``."""
    write_text_atomic(output / "results.md", f"Top vs QCD, test jets: {jets_per_split.get('test')}\n\n"
                      + results_table(results) + "\n\nFull comparison: report.html\n")
    write_json(output / "results.json",  # strict JSON: an infinite rejection is null, as in metrics.json
               [{"model": r.model, "auc": r.auc, "rejection_at_30": r.rejection_at_30,
                 "rejection_at_50": r.rejection_at_50, "signal_efficiency_at_30": r.signal_efficiency_at_30,
                 "signal_efficiency_at_50": r.signal_efficiency_at_50, "run": str(r.run_dir)} for r in results])
