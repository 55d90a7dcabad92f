"""INFERNO on generated jets: a top tagger trained for σ of the top fraction with the FSR systematic
profiled, against the cross-entropy tagger on the same inputs, both fitted the same way.

Both taggers are the MLP of ``configs/top_qcd_inferno.yaml`` on five jet-level features (masses,
τ21, τ32, constituent multiplicity) of Pythia 8 top and QCD jets (550–650 GeV): INFERNO
(arXiv:1806.04743) trains ten learned bins with the ``inferno`` loss and the FSR up/down samples
(``data.variations``); the reference is the same network trained with cross entropy on the nominal
jets (``--set data.labels.type=classification ...``). Each is then fitted as ``heplearn fit`` fits
(``heplearn.stats.fitting.fit_inputs``: pyhf, μ = α/α₀, background normalisation free,
Barlow–Beeston MC statistics, FSR as a shape ``histosys`` from the up/down samples): templates from
the nominal test jets, the FSR templates from the varied test jets, the data a mixture of the
nominal validation jets with 5% top. The cross-entropy tagger's score is binned in ten equal bins
of p(top), INFERNO's in its ten bins (the argmax); sparse bins are merged alike. A third tagger,
INFERNO trained without the FSR samples (stat-only loss), separates what the learned binning gains
from what knowing the systematic gains. The table gives σ(α) = α₀ σ(μ) without and with the FSR
nuisance, median over seeds (the run's seed).

    python benchmarks/inferno_top_fsr.py            # 3 seeds
    python benchmarks/inferno_top_fsr.py --quick    # 1 seed, shorter trainings

Needs data/top_qcd (``heplearn generate top qcd --jets 30000 -o data/top_qcd``) and the FSR samples
of the config's header.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import print_machine
from tqdm.auto import tqdm

from heplearn.data.in_memory import load_arrays
from heplearn.evaluation.scoring import predict
from heplearn.run_config import RunConfig, load_run_config
from heplearn.stats.fitting import FitInputs, FitSettings, Values, fit_inputs
from heplearn.stats.templates import Binning
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train

CONFIG = Path(__file__).resolve().parents[1] / "src" / "heplearn" / "configs" / "top_qcd_inferno.yaml"
#: the reference: the same network and inputs trained with cross entropy on the nominal jets
CROSS_ENTROPY = [
    "data.labels.type=classification",
    "data.variations={}",
    "training.loss=auto",
    "training.batch_size=256",
    "training.learning_rate=0.002",
    "training.early_stopping_patience=3",
]
#: the ablation: INFERNO without the FSR samples (its loss is the stat-only σ(s), background free)
STAT_ONLY = [
    "data.variations={}",
    "training.loss=[{name: inferno, signal_yield: 158, background_yield: 3000, "
    "background_uncertainty: 30000, temperature: 0.1}]",
]


def train_runs(config_path: Path, seed: int, runs: Path, epochs: tuple[int, int]) -> dict[str, Path]:
    """The INFERNO (with and without FSR) and cross-entropy runs of one seed (reused when already finished)."""
    settings = {
        "inferno": [f"training.epochs={epochs[0]}"],
        "inferno_stat": [*STAT_ONLY, f"training.epochs={epochs[0]}"],
        "cross_entropy": [*CROSS_ENTROPY, f"training.epochs={epochs[1]}"],
    }
    paths = {}
    for kind, overrides in settings.items():
        name = f"{kind}_seed{seed}_epochs{epochs[1 if kind == 'cross_entropy' else 0]}"
        paths[kind] = runs / name
        if (paths[kind] / "model.json").is_file():
            continue
        config = load_run_config(config_path, [*overrides, f"training.seed={seed}", "training.threads=1"])
        train(config, name=name, runs_dir=runs, progress=False)
    return paths


def scores(model: TrainedModel, files: list[Path], config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per jet of ``files``: the value fitted (p(top), or a summary statistic's bin + ½) and the label."""
    arrays, _ = load_arrays(files, config.data.model_copy(update={"variations": {}}))
    outputs = predict(model, arrays, progress=False)
    values = outputs.argmax(1) + 0.5 if model.task.kind == "summary_statistic" else outputs[:, 0]
    return values, np.asarray(arrays.label)


def fit_run(run: Path, config: RunConfig, fraction: float, output: Path) -> dict[str, float]:
    """Fit the top fraction of the pseudo-data with the run's templates, with and without FSR."""
    model = TrainedModel.load(run)
    bins = config.training.bins
    summary = model.task.kind == "summary_statistic"
    binning = Binning(bins, 0.0, float(bins)) if summary else Binning(bins, 0.0, 1.0)

    def split(files: list[Path]) -> tuple[Values, Values]:
        values, label = scores(model, files, config)
        return Values(values[label == 0], np.ones(int((label == 0).sum()))), Values(
            values[label == 1], np.ones(int((label == 1).sum()))
        )

    signal, background = split(config.data.files("test"))
    varied = {code: split(files) for code, files in config.data.variation_files("test")}
    # pseudo-data: every QCD jet of the validation split and top jets for a fraction α
    values, label = scores(model, config.data.files("val"), config)
    qcd, top = values[label == 1], values[label == 0]
    chosen = np.random.default_rng(0).choice(len(top), round(fraction / (1 - fraction) * len(qcd)), replace=False)
    data = np.concatenate([qcd, top[chosen]])
    inputs = FitInputs(
        signal,
        background,
        Values(data, np.ones(len(data))),
        systematics={"fsr": varied[1]},
        systematics_down={"fsr": varied[-1]},
        signal_name="top",
        background_name="qcd",
        observable="INFERNO bin" if summary else "p(top)",
        true_fraction=len(chosen) / len(data),
    )
    settings = FitSettings(
        binning=binning,
        expected_fraction=len(chosen) / len(data),
        unbinned=False,
        limit=False,
        impacts=False,
        scan_2d=False,
        discovery=False,
        scan_points=7,
    )
    outcome = fit_inputs(inputs, output, settings, progress=False)
    alpha = settings.expected_fraction or fraction
    return {
        "alpha_true": alpha,
        "alpha": outcome.fraction.fraction,
        "sigma_stat": alpha * outcome.stat_only.uncertainty(),
        "sigma_fsr": alpha * outcome.full.uncertainty(),
        "bins": len(outcome.metrics["binning"]["edges"]) - 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 40 INFERNO epochs, 3 cross-entropy epochs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--epochs",
        type=int,
        nargs=2,
        metavar=("INFERNO", "CE"),
        help="epochs of the two trainings (default 150 10, --quick 40 3)",
    )
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--fraction", type=float, default=0.05, help="top fraction of the pseudo-data")
    parser.add_argument("--runs", type=Path, default=Path("runs/inferno_top_fsr"))
    parser.add_argument("--output", type=Path, default=Path("runs/inferno_top_fsr/fits"), help="the fits' reports")
    args = parser.parse_args()
    print_machine()
    seeds = range(1 if args.quick else args.seeds)
    epochs: tuple[int, int] = (args.epochs[0], args.epochs[1]) if args.epochs else (40, 3) if args.quick else (150, 10)
    config = load_run_config(args.config)
    results: dict[str, list[dict[str, float]]] = {"cross_entropy": [], "inferno_stat": [], "inferno": []}
    started = time.perf_counter()
    for seed in tqdm(seeds, desc="seeds"):
        runs = train_runs(args.config, seed, args.runs, epochs)
        for kind, run in runs.items():
            results[kind].append(fit_run(run, config, args.fraction, args.output / f"{run.name}"))
            print(f"seed {seed} {kind}: " + ", ".join(f"{k} {v:.4g}" for k, v in results[kind][-1].items()), flush=True)
    elapsed = time.perf_counter() - started

    def median(kind: str, key: str) -> float:
        return float(np.median([row[key] for row in results[kind]]))

    print(
        f"\nTop fraction α = {median('inferno', 'alpha_true'):.4f} of {len(seeds)} seed(s), "
        f"median over seeds ({elapsed:.0f} s)"
    )
    print(f"{'tagger':<16} {'α̂':>8} {'σ(α) stat.':>11} {'σ(α) stat.+FSR':>15} {'bins':>5}")
    names = {"cross_entropy": "cross entropy", "inferno_stat": "INFERNO, no FSR", "inferno": "INFERNO"}
    for kind, name in names.items():
        print(
            f"{name:<16} {median(kind, 'alpha'):>8.4f} {median(kind, 'sigma_stat'):>11.4f} "
            f"{median(kind, 'sigma_fsr'):>15.4f} {median(kind, 'bins'):>5.0f}"
        )
    ours, reference = median("inferno", "sigma_fsr"), median("cross_entropy", "sigma_fsr")
    summary: dict[str, Any] = {"ours": ours, "reference": reference, "ratio": ours / reference}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
