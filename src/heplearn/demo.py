"""The README's main job: generate top and QCD jets, train taggers on them, compare them.

``heplearn demo`` runs the whole chain on this machine with no download: Pythia 8 + FastJet
generate a small top-vs-QCD sample, the example configs of ``heplearn/configs`` train the
rectangular cuts, the projective likelihood, the BDT, the MLP and the particle-level networks
(briefly, with CPU presets), and every model is evaluated on the same test jets. The table is
printed and written to ``<output>/results.md`` and ``results.json``; ``compare_runs`` writes the
full comparison (ROC overlay, rejections, mass sculpting) to ``<output>/report.html``.

What a user sees should not depend on the machine: every model trains on a fixed number of threads
(torch's and XGBoost's), torch with its deterministic algorithms, from fixed seeds. That makes a rerun
on the same machine repeat the table to the last digit; on a CPU with other vector kernels (AVX-512
against AVX2) the float sums differ in their last bits and a network's training drifts from there,
which ``benchmarks/demo_spread.py`` measures (the spread over training seeds, beside the table). The
AUC carries its bootstrap uncertainty from the test jets, and 30% of the jets are test jets so that
the rejections at ε_S = 30% rest on more than a handful of background jets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from heplearn.data.files import write_json, write_text_atomic
from heplearn.errors import HeplearnError
from heplearn.evaluation.compare import compare_runs
from heplearn.models import registry
from heplearn.run_config import RunConfig, load_run_config
from heplearn.runs import RunDirectory
from heplearn.training.from_config import train

log = logging.getLogger(__name__)

DEMO_THREADS = 2  # the same float sums on every machine with these kernels, whatever its core count
SPLIT = (0.6, 0.1, 0.3)  # train, validation, test: 4,800 test jets of 16,000
JETS_PER_CLASS = 8000
# every model: fixed threads, torch's deterministic algorithms (and the seed run_demo is given)
COMMON_OVERRIDES = [f"training.threads={DEMO_THREADS}", "training.deterministic=true"]
# model -> overrides that make it train in about a minute on 2 CPU cores
DEMO_MODELS: dict[str, list[str]] = {
    "cuts": ["model.background_efficiencies=[0.02,0.05,0.1,0.2,0.3,0.5,0.7]", "model.n_bins=40"],
    "likelihood": [],
    "bdt": ["model.n_estimators=400", f"model.n_jobs={DEMO_THREADS}"],
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
    auc_uncertainty: float | None = None  # the Poisson bootstrap's standard deviation on the test jets


def config_path(name: str) -> Path:
    """The path of a config shipped with heplearn (``heplearn/configs/<name>``)."""
    return Path(str(resources.files("heplearn") / "configs" / name))


def available_models() -> list[str]:
    """Demo models that this installation can train: the BDT needs the ``bdt`` extra (XGBoost)."""
    names = []
    for name in DEMO_MODELS:
        try:
            registry.model_class(name)
            registry.check_installed(name)
        except (ImportError, AttributeError) as error:  # a MissingExtraError is an ImportError
            log.warning("model %s is not available in this installation (%s); skipped", name, error)
            continue
        names.append(name)
    return names


def run_demo(
    output: Path,
    jets_per_class: int = JETS_PER_CLASS,
    workers: int = 2,
    models: list[str] | None = None,
    progress: bool = True,
    seed: int = 0,
) -> list[DemoResult]:
    """Generate top and QCD jets, train the demo's models briefly, compare them; write the report into ``output``.

    ``seed`` is the training seed of every model (the jets are always generated with seed 1).
    """
    from heplearn.generate.driver import generate

    output = Path(output)
    data_dir = output / "data"
    generated = generate(
        ["top", "qcd"], jets_per_class, data_dir, seed=1, workers=workers, fractions=SPLIT, progress=progress
    )
    files = {split: str(path) for split, path in generated.files.items()}
    run_dirs: dict[str, Path] = {}
    for name in models or available_models():
        overrides = [
            f"data.train=[{files['train']}]",
            f"data.val=[{files['val']}]",
            f"data.test=[{files['test']}]",
            *COMMON_OVERRIDES,
            f"training.seed={seed}",
            *DEMO_MODELS.get(name, []),
        ]
        config = load_run_config(config_path(f"top_qcd_{name}.yaml"), overrides)
        run_dir = output / "runs" / name
        if not _same_run(RunDirectory(run_dir), config):
            if run_dir.exists():
                import shutil

                shutil.rmtree(run_dir)  # an interrupted earlier demo: start this model afresh
            log.info("training %s", name)
            train(config, name=name, runs_dir=output / "runs", progress=progress)
        run_dirs[name] = run_dir
    # every model on the same test jets: the table below and the full report
    comparison = compare_runs(list(run_dirs.values()), [files["test"]], output, names=list(run_dirs), progress=progress)
    results = [
        DemoResult(
            row["name"],
            row["figures"]["auc"],
            _rejection(row["figures"]["rejection_at_30"]),
            _rejection(row["figures"]["rejection_at_50"]),
            run_dirs[row["name"]],
            auc_uncertainty=row.get("auc_uncertainty"),
            signal_efficiency_at_30=row["figures"].get("signal_efficiency_at_30"),
            signal_efficiency_at_50=row["figures"].get("signal_efficiency_at_50"),
        )
        for row in comparison.metrics["models"]
    ]
    write_results(output, results, generated.jets_per_split)
    log.info("report: %s", comparison.report)
    return results


def _same_run(run: RunDirectory, config: RunConfig) -> bool:
    """Whether ``run`` finished with these settings (an earlier demo with another seed or size trains again)."""
    if not run.is_finished():
        return False
    try:
        return run.read_config().model_dump(mode="json") == config.model_dump(mode="json")
    except HeplearnError:
        return False


def _rejection(value: float | None) -> float:
    """metrics.json stores an infinite rejection (no background jet passes) as null."""
    return float("inf") if value is None else float(value)


def results_table(results: list[DemoResult]) -> str:
    """The demo's results as a Markdown table."""
    lines = ["| model | AUC ± stat. | 1/ε_B at ε_S = 30% | 1/ε_B at ε_S = 50% |", "|---|---|---|---|"]
    lines += [
        f"| {r.model} | {r.auc:.4f}{_uncertainty(r.auc_uncertainty)} | "
        f"{_cell(r.rejection_at_30, r.signal_efficiency_at_30)} | "
        f"{_cell(r.rejection_at_50, r.signal_efficiency_at_50)} |"
        for r in results
    ]
    return "\n".join(lines)


def _uncertainty(value: float | None) -> str:
    return "" if value is None else f" ± {value:.4f}"


def _cell(rejection: float, reached: float | None) -> str:
    """A rejection, with the ε_S of the cut it belongs to when that is not the column's (discrete scores)."""
    return f"{rejection:.1f}" + (f" (at ε_S = {reached:.0%})" if reached is not None else "")


def write_results(output: Path, results: list[DemoResult], jets_per_split: dict[str, Any]) -> None:
    """Write ``results.md`` (the table) into ``output``."""
    write_text_atomic(
        output / "results.md",
        f"Top vs QCD, test jets: {jets_per_split.get('test')}\n\n"
        + results_table(results)
        + "\n\nFull comparison: report.html\n",
    )
    write_json(
        output / "results.json",  # strict JSON: an infinite rejection is null, as in metrics.json
        [
            {
                "model": r.model,
                "auc": r.auc,
                "auc_uncertainty": r.auc_uncertainty,
                "rejection_at_30": r.rejection_at_30,
                "rejection_at_50": r.rejection_at_50,
                "signal_efficiency_at_30": r.signal_efficiency_at_30,
                "signal_efficiency_at_50": r.signal_efficiency_at_50,
                "run": str(r.run_dir),
            }
            for r in results
        ],
    )
