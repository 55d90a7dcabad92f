"""DCTR on generated QCD jets (issue 19, part 1): α_s of the final-state shower, reweighted and fitted.

Pythia's Monash tune has ``TimeShower:alphaSvalue`` = 0.1365. As in arXiv:1907.08209 (sec. IV),

1. **parametrised DCTR**: QCD jets generated at α_s = 0.10, 0.12, …, 0.18 (the "scan", each jet
   carrying its α_s in a field ``gen_alphas``) against nominal jets paired with α_s ~ U[0.10, 0.18];
   the paper's PFN on the constituents with α_s appended to every particle learns f(x, α_s);
2. **the fit**: with f frozen, α_s is fitted by gradient descent to an independent α_s = 0.16
   sample ("mystery"; the paper: 0.1588 after 10 epochs) and, as a check, to nominal jets (0.1365);
   the parametrised weights at α_s = 0.16 are compared with the mystery sample (χ²/ndf);
3. **plain DCTR closure**: the nominal jets reweighted to the α_s = 0.16 jets, k-fold, χ²/ndf per
   observable of the closure report before and after.

The nominal jets are the QCD jets of ``data/top_qcd`` (``heplearn generate top qcd --jets 30000
--seed 7``: anti-kT R = 0.8, pT 550–650 GeV, |η| < 2, 128 constituents, MPI on, no detector); the
varied samples are made here with the same options (``heplearn generate qcd ... --pythia
TimeShower:alphaSvalue=X --workers 1``), and their options are checked against the nominal files'.

    python benchmarks/dctr_alphas.py                  # generate what is missing, train, fit, close
    python benchmarks/dctr_alphas.py --reuse          # the samples in --directory as they are
    python benchmarks/dctr_alphas.py --quick          # a few hundred jets, 2 epochs: does it run

Prints the stages' CPU time, the fits, the closure table and a last JSON line
``{"ours": α̂_s, "reference": 0.16, "ratio": α̂_s / 0.16, ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MONASH = 0.1365  # Pythia 8 Monash: TimeShower:alphaSvalue
MYSTERY = 0.16  # the paper's fitted sample
PARAMETER = "gen_alphas"
CONFIG = Path("configs/dctr_qcd_alphas.yaml")
# the generator options that must agree between the nominal and the varied samples
MATCHED_OPTIONS = (
    "algorithm",
    "detector",
    "eta_max",
    "max_particles",
    "mpi",
    "pt_max",
    "pt_min",
    "pthat_max",
    "pthat_min",
)
SPLITS = ("train", "val", "test")


def provenance(path: Path) -> dict[str, Any]:
    """The ``heplearn generate`` provenance of a Parquet file (its options, Pythia settings, radius)."""
    metadata = pq.read_metadata(path).metadata or {}
    return json.loads(metadata.get(b"heplearn_provenance", b"{}"))


def generate(directory: Path, jets: int, seed: int, alphas: float) -> float:
    """``heplearn generate qcd`` at ``TimeShower:alphaSvalue = alphas`` into ``directory``; its CPU seconds."""
    command = [
        str(Path(sys.executable).with_name("heplearn")),
        "generate",
        "qcd",
        "--jets",
        str(jets),
        "-o",
        str(directory),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--pythia",
        f"TimeShower:alphaSvalue={alphas}",
    ]
    print(" ".join(command), file=sys.stderr)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def check_options(nominal: Path, varied: Path) -> None:
    """Stop unless ``varied`` was generated with the nominal file's jet options (only α_s differs)."""
    mine, theirs = provenance(nominal), provenance(varied)
    different = {
        key: (mine["options"].get(key), theirs["options"].get(key))
        for key in MATCHED_OPTIONS
        if mine["options"].get(key) != theirs["options"].get(key)
    }
    if mine.get("radius", {}).get("qcd") != theirs.get("radius", {}).get("qcd"):
        different["radius"] = (mine.get("radius"), theirs.get("radius"))
    if different:
        raise SystemExit(f"{varied} was generated with other options than {nominal}: {different}")


def read_qcd(files: list[Path]) -> pa.Table:
    """The QCD jets (``label_qcd``) of ``files``, in order, with the first file's metadata."""
    tables = [pq.read_table(f) for f in files]
    table = pa.concat_tables(tables, promote_options="default")
    if "label_qcd" in table.column_names:
        table = table.filter(
            pc.equal(table["label_qcd"], True)
            if pa.types.is_boolean(table["label_qcd"].type)
            else pc.equal(table["label_qcd"], 1)
        )
    return table.replace_schema_metadata(tables[0].schema.metadata)


def write_table(table: pa.Table, path: Path) -> Path:
    """Write ``table`` to ``path`` atomically (a temporary name, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    pq.write_table(table, temporary, compression="zstd")
    temporary.replace(path)
    return path


def prepare(args: argparse.Namespace, grid: list[float]) -> tuple[dict[str, Any], dict[str, float]]:
    """Generate what is missing, split the nominal jets, write the scan with its α_s per jet
    (the scan only when the parametrised stage runs)."""
    directory: Path = args.directory
    cpu: dict[str, float] = {}
    samples = {"mystery": (directory / "as0160", args.mystery_jets, 160, MYSTERY)}
    if args.closure and args.closure_extra_jets:  # more α_s = 0.16 jets for the closure's target alone
        samples["closure_extra"] = (directory / "as0160_b", args.closure_extra_jets, 161, MYSTERY)
    for alphas in grid if args.parametrised else []:
        tag = f"as{round(alphas * 1000):04d}"
        samples[tag] = (directory / "grid" / tag, args.grid_jets, 1000 + round(alphas * 1000), alphas)
    for name, (where, jets, seed, alphas) in samples.items():
        if not (where / "test.parquet").is_file():
            if args.reuse:
                raise SystemExit(f"--reuse: {where} has no sample; run without --reuse to generate it")
            cpu[f"generate {name}"] = generate(where, jets, seed, alphas)
    nominal_files = [args.nominal / f"{split}.parquet" for split in SPLITS]
    for name, (where, *_rest) in samples.items():
        check_options(nominal_files[0], where / "train.parquet")
        settings = provenance(where / "train.parquet")["options"]["pythia"]
        values = [float(line.split("=")[1]) for line in settings if line.startswith("TimeShower:alphaSvalue")]
        if len(settings) != 1 or values != [samples[name][3]]:
            raise SystemExit(f"{where}: generated with {settings}, not α_s = {samples[name][3]} alone")

    # nominal QCD jets: the parametrised source, the fits' source, a nominal "mystery"; the closure's source
    nominal = read_qcd(nominal_files)
    need = max(args.source_jets + 2 * args.fit_jets, args.closure_source_jets)
    if len(nominal) < need:
        raise SystemExit(f"{args.nominal}: {len(nominal)} QCD jets, {need} needed")
    parts = {
        "source": nominal.slice(0, args.source_jets),
        "fit_source": nominal.slice(args.source_jets, args.fit_jets),
        "nominal_check": nominal.slice(args.source_jets + args.fit_jets, args.fit_jets),
        "closure": nominal.slice(0, args.closure_source_jets),
    }
    files: dict[str, Any] = {
        name: write_table(table, directory / "nominal" / f"{name}.parquet") for name, table in parts.items()
    }
    mystery = read_qcd([samples["mystery"][0] / f"{split}.parquet" for split in SPLITS])
    files["mystery_fit"] = write_table(mystery.slice(0, args.fit_jets), directory / "mystery" / "fit.parquet")
    files["mystery_all"] = [samples["mystery"][0] / f"{split}.parquet" for split in SPLITS]
    files["closure_target"] = [
        where / f"{split}.parquet"
        for name, (where, *_rest) in samples.items()
        if name.startswith(("mystery", "closure"))
        for split in SPLITS
    ]
    # the scan: every jet carries the α_s it was made with (the parametrised target's θ field)
    scan = []
    for name, (where, _jets, _seed, alphas) in samples.items():
        if name in ("mystery", "closure_extra"):
            continue
        table = read_qcd([where / f"{split}.parquet" for split in SPLITS])
        table = table.append_column(PARAMETER, pa.array(np.full(len(table), alphas, np.float64)))
        scan.append(write_table(table, directory / "scan" / f"{name}.parquet"))
    files["scan"] = scan
    return files, cpu


def chi2_table(data: Any, source: Any, target: Any, weights: np.ndarray) -> dict[str, tuple[float, float]]:
    """χ²/ndf (source, reweighted source) against the target per observable of the closure report."""
    from heplearn.evaluation.agreement import chi2_ndf
    from heplearn.methods.reweighting_report import closure_histograms

    return {
        h.name: (chi2_ndf(h.source, h.target), chi2_ndf(h.reweighted, h.target))
        for h in closure_histograms(data, source, target, weights)
        if h.target is not None
    }


def main(argv: list[str] | None = None) -> int:
    """Generate (unless ``--reuse``), train the parametrised DCTR, fit α_s, run the plain closure."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--directory", type=Path, default=Path("data/dctr_alphas"))
    parser.add_argument("--nominal", type=Path, default=Path("data/top_qcd"), help="nominal jets (train/val/test)")
    parser.add_argument("--reuse", action="store_true", help="use the samples already in --directory")
    parser.add_argument("--grid", default="0.10:0.18:5", help="scan of α_s: LO:HI:COUNT")
    parser.add_argument("--grid-jets", type=int, default=1500, help="jets generated per scan point")
    parser.add_argument("--mystery-jets", type=int, default=6000, help="jets generated at α_s = 0.16")
    parser.add_argument("--source-jets", type=int, default=7500, help="nominal jets for the parametrised training")
    parser.add_argument("--fit-jets", type=int, default=4000, help="jets of each sample in a fit")
    parser.add_argument("--epochs", type=int, default=20, help="parametrised training epochs")
    parser.add_argument("--ensemble", type=int, default=1, help="parametrised classifiers (mean log-ratio)")
    parser.add_argument("--parametrised-run", type=Path, help="a trained parametrised run: fit again, no training")
    parser.add_argument("--fit-epochs", type=int, default=5)
    parser.add_argument("--fit-batch-size", type=int, default=500, help="jets per step of the fit (Adam on α_s)")
    parser.add_argument(
        "--parametrised", action=argparse.BooleanOptionalAction, default=True, help="parametrised DCTR and the fits"
    )
    parser.add_argument("--closure", action=argparse.BooleanOptionalAction, default=True, help="plain DCTR closure")
    parser.add_argument("--closure-source-jets", type=int, default=12000, help="nominal jets in the closure")
    parser.add_argument(
        "--closure-extra-jets", type=int, default=0, help="more α_s = 0.16 jets (seed 161) for the closure's target"
    )
    parser.add_argument("--closure-epochs", type=int, default=25)
    parser.add_argument(
        "--closure-config", type=Path, default=CONFIG, help="the plain closure's run config (model and inputs)"
    )
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--closure-ensemble", type=int, default=1)
    parser.add_argument("--name", default="dctr-alphas")
    parser.add_argument("--quick", action="store_true", help="300-600 jets per sample, 3 scan points, 2 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.grid, args.grid_jets, args.mystery_jets = "0.10:0.18:3", 300, 600
        args.source_jets, args.fit_jets, args.closure_source_jets = 900, 300, 1500
        args.epochs = args.fit_epochs = args.closure_epochs = 2
        args.directory = args.directory.with_name(args.directory.name + "-quick")
        args.name += "-quick"
    low, high, count = args.grid.split(":")
    grid = [round(float(v), 4) for v in np.linspace(float(low), float(high), int(count))]

    import torch

    torch.set_num_threads(1)
    wall = time.perf_counter()
    files, cpu = prepare(args, grid)
    results_file = args.directory / f"{args.name}.json"
    stages = {}
    if args.parametrised:
        stages["parametrised"] = run_parametrised(args, files, grid, cpu)
    if args.closure:
        stages["closure"] = run_closure(args, files, cpu)
    # the stages may run as separate invocations (--no-closure, --no-parametrised): merge with theirs
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    results.update(stages)
    results.setdefault("cpu_seconds", {}).update({k: round(v, 1) for k, v in cpu.items()})
    temporary = results_file.with_name(results_file.name + ".tmp")
    temporary.write_text(json.dumps(results, indent=2))
    temporary.replace(results_file)
    print_results(results)
    print(f"wall {time.perf_counter() - wall:.0f} s; all stages' results in {results_file}")
    mystery = results.get("parametrised", {}).get("fits", {}).get("mystery", {})
    print(
        json.dumps(
            {
                "ours": mystery.get("fitted"),
                "reference": MYSTERY,
                "ratio": mystery["fitted"] / MYSTERY if "fitted" in mystery else None,
                "uncertainty": mystery.get("uncertainty"),
                "paper": 0.1588,
                **results,
            }
        )
    )
    return 0


def run_parametrised(
    args: argparse.Namespace, files: dict[str, Any], grid: list[float], cpu: dict[str, float]
) -> dict[str, Any]:
    """Train f(x, α_s) over the scan, fit α_s to the mystery and nominal samples, compare w(x | 0.16)."""
    from heplearn.errors import FitError
    from heplearn.methods.reweighting import WeightOptions, read_sample
    from heplearn.methods.reweighting_parametrised import ParametrisedModel, fit_parameters, reweight_parametrised
    from heplearn.run_config import load_run_config

    if args.parametrised_run is None:
        start = time.process_time()
        run_dir = reweight_parametrised(
            load_run_config(CONFIG, [f"training.epochs={args.epochs}"]),
            [files["source"]],
            files["scan"],
            [PARAMETER],
            ranges={PARAMETER: (grid[0], grid[-1])},
            ensemble=args.ensemble,
            options=WeightOptions(beside_source=False, report=False),
            name=f"{args.name}-parametrised-{time.strftime('%Y%m%d-%H%M%S')}",
        ).run_dir
        cpu["parametrised training"] = time.process_time() - start
    else:  # fit again with a trained run
        run_dir = args.parametrised_run
    loaded = ParametrisedModel.load(run_dir)
    best_val = [
        min(
            json.loads(line).get("val_loss", float("inf"))
            for line in (model.run_dir / "metrics.jsonl").read_text().splitlines()
            if line.strip()
        )
        for model in loaded.models
        if model.run_dir is not None
    ]
    fits: dict[str, Any] = {}
    start = time.process_time()
    for name, target, truth in (
        ("mystery", files["mystery_fit"], MYSTERY),
        ("nominal", files["nominal_check"], MONASH),
    ):
        try:
            fitted = fit_parameters(
                run_dir,
                [files["fit_source"]],
                [target],
                epochs=args.fit_epochs,
                batch_size=args.fit_batch_size,
            )
            fits[name] = {
                "truth": truth,
                "fitted": fitted.values[PARAMETER],
                "uncertainty": fitted.uncertainties[PARAMETER],
                "history": [h[PARAMETER] for h in fitted.history],
            }
        except FitError as error:
            fits[name] = {"truth": truth, "error": str(error)}
    cpu["fits"] = time.process_time() - start
    fit_source = read_sample([files["fit_source"]], loaded.data, "source")
    mystery_all = read_sample(files["mystery_all"], loaded.data, "target")
    weights = loaded.weights(fit_source.arrays, {PARAMETER: MYSTERY})
    return {
        "run": str(run_dir),
        "grid": grid,
        "grid_jets": args.grid_jets,
        "source_jets": args.source_jets,
        "fit_jets": args.fit_jets,
        "epochs": args.epochs,
        "ensemble": args.ensemble,
        "fit_epochs": args.fit_epochs,
        "fit_batch_size": args.fit_batch_size,
        "best_val_loss": best_val,
        "fits": fits,
        "chi2_ndf_at_016": chi2_table(loaded.data, fit_source, mystery_all, weights / weights.mean()),
    }


def run_closure(args: argparse.Namespace, files: dict[str, Any], cpu: dict[str, float]) -> dict[str, Any]:
    """Plain DCTR, k-fold: the nominal jets reweighted to the α_s = 0.16 jets; χ²/ndf before and after."""
    from heplearn.methods.reweighting import WeightOptions, reweight
    from heplearn.run_config import load_run_config

    start = time.process_time()
    result = reweight(
        load_run_config(args.closure_config, [f"training.epochs={args.closure_epochs}"]),
        [files["closure"]],
        files["closure_target"],
        folds=args.folds,
        ensemble=args.closure_ensemble,
        options=WeightOptions(beside_source=False),
        name=f"{args.name}-closure-{time.strftime('%Y%m%d-%H%M%S')}",
    )
    cpu["closure"] = time.process_time() - start
    rows = json.loads((result.run_dir / "report" / "closure.json").read_text())["observables"]
    settings = json.loads((result.run_dir / "reweight.json").read_text())
    return {
        "run": str(result.run_dir),
        "source_jets": len(result.source),
        "target_jets": len(result.target),
        "config": str(args.closure_config),
        "folds": args.folds,
        "ensemble": args.closure_ensemble,
        "epochs": args.closure_epochs,
        "best_val_loss": [r["best_val_loss"] for r in settings["fold_records"]],
        "weight_max": result.summary["weight_max"],
        "sum_ratio_over_target": result.summary["reweighted_total_raw_times_target_over_source"]
        / result.summary["target_total_weight"],
        "chi2_ndf": {r["observable"]: (r["chi2_ndf_source"], r["chi2_ndf_reweighted"]) for r in rows},
    }


def print_results(results: dict[str, Any]) -> None:
    """The fits and the χ²/ndf table of whichever stages have run."""
    nan = (float("nan"), float("nan"))
    parametrised = results.get("parametrised", {})
    closure = results.get("closure", {})
    if parametrised:
        print(
            f"\nparametrised: scan α_s {parametrised['grid']} × {parametrised['grid_jets']} jets against "
            f"{parametrised['source_jets']} nominal jets, {parametrised['epochs']} epochs, ensemble "
            f"{parametrised['ensemble']}; best validation loss "
            + ", ".join(f"{v:.4f}" for v in parametrised["best_val_loss"])
        )
        for name, fit in parametrised["fits"].items():
            if "error" in fit:
                print(f"fit of the {name} sample (α_s = {fit['truth']}): {fit['error']}")
                continue
            print(
                f"fit of the {name} sample (α_s = {fit['truth']}, {parametrised['fit_jets']} jets against as many "
                f"nominal): {fit['fitted']:.4f} ± {fit['uncertainty']:.4f} (pull "
                f"{(fit['fitted'] - fit['truth']) / fit['uncertainty']:+.2f}; by epoch "
                + " → ".join(f"{v:.4f}" for v in fit["history"])
                + ")"
            )
    if closure:
        print(
            f"plain DCTR: {closure['source_jets']} nominal → {closure['target_jets']} α_s = 0.16 jets, "
            f"{closure['folds']} folds, ensemble {closure['ensemble']}; best validation loss "
            f"{closure['best_val_loss']}; largest weight {closure['weight_max']:.2f}; "
            f"Σ f/(1−f) / N_target {closure['sum_ratio_over_target']:.3f}"
        )
    header = (
        f"{'χ²/ndf vs α_s = 0.16':22s} | {'w(x | 0.16): before → after':>28s} | {'plain DCTR: before → after':>28s}"
    )
    print("\n" + header)
    rows = parametrised.get("chi2_ndf_at_016", {})
    for name in sorted(set(rows) | set(closure.get("chi2_ndf", {}))):
        p = rows.get(name, nan)
        c = closure.get("chi2_ndf", {}).get(name, nan)
        print(f"{name:22s} | {p[0]:12.2f} → {p[1]:12.2f} | {c[0]:12.2f} → {c[1]:12.2f}")
    print("CPU seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in results.get("cpu_seconds", {}).items()))


if __name__ == "__main__":
    sys.exit(main())
