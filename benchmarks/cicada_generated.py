"""CICADA and the normalized autoencoder on generated events: QCD dijets as background, W' as the anomaly.

The whole event as CICADA's calorimeter-region image (18 φ × 14 η regions over |η| < 3, transverse
energy of the jets, electrons and photons; ``heplearn.features.images.calorimeter_images``, built by
the data layer), a convolutional autoencoder trained on background alone (``model.name: cicada``),
once as a plain autoencoder (score: the MSE over the regions) and once as a normalized autoencoder
(``training.step: normalized_autoencoder``, Dillon et al. arXiv:2206.14225: the same network, the
MSE as an energy, Langevin negative samples). Scored on independent background and signal events:
the AUC, and the signal efficiency at a threshold set on half of the test background at a target
background efficiency (``heplearn.methods.thresholds``, Clopper–Pearson interval) and checked on
the other half.

    heplearn generate events dijet_qcd --events 8000 --chunk-size 1000 -o lhco_qcd --split 1,0,0
    heplearn generate events wprime --events 3000 --chunk-size 500 -o lhco_wprime --split 1,0,0
    python benchmarks/cicada_generated.py --background lhco_qcd --signal lhco_wprime -o cicada_generated \
        --extra "Z/τ=ztautau_events" --epochs 6 --nae-epochs 3

A trigger rate of 1 kHz out of 40 MHz (ε_B = 2.5 × 10⁻⁵) needs ≳ 10⁵ background events to set;
``--efficiency`` (1% by default) is what a few thousand test events support. The last line is JSON:
the last model's AUC (ours: the NAE), the first's (reference: the plain autoencoder) and their ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import awkward as ak
import numpy as np
from machine import print_machine
from sklearn.metrics import roc_auc_score

from heplearn.data import io
from heplearn.methods.thresholds import threshold_at_efficiency, weighted_fraction
from heplearn.run_config import load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train

COLLECTIONS = ["Jet", "Electron", "Photon"]


def event_files(folder: Path) -> list[Path]:
    """The generator's split files of ``folder``, or its finished chunks."""
    files = sorted(folder.glob("*.parquet")) or sorted(folder.rglob("chunk-*.parquet"))
    if not files:
        raise SystemExit(f"no parquet files under {folder}")
    return files


def config(train_file: Path, epochs: int, step: dict[str, object] | None, seed: int) -> dict[str, object]:
    """The run config of a CICADA autoencoder on the calorimeter images of ``train_file``."""
    training: dict[str, object] = {
        "epochs": epochs,
        "batch_size": 128,
        "seed": seed,
        "threads": 1,
        "learning_rate": 2e-3,
        "early_stopping_patience": None,
        "weight_decay": 0.0,
    }
    if step:
        training["step"] = step
    image = {"kind": "calorimeter", "collections": COLLECTIONS}
    return {
        "data": {"train": str(train_file), "labels": {"type": "none"}, "inputs": {"image": {"image": image}}},
        "model": {"name": "cicada", "preset": "paper"},
        "training": training,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--background", type=Path, required=True, help="folder of dijet_qcd events")
    parser.add_argument("--signal", type=Path, required=True, help="folder of wprime (anomaly) events")
    parser.add_argument("--output", "-o", type=Path, default=Path("cicada_generated"))
    parser.add_argument("--test-fraction", type=float, default=0.25, help="background share kept for the test")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the plain autoencoder")
    parser.add_argument("--nae-epochs", type=int, default=6, help="NAE epochs (after --epochs of pretraining)")
    parser.add_argument("--temperature", type=float, default=1.0, help="T of the NAE's p(x) ∝ exp(−E/T)")
    parser.add_argument("--efficiency", type=float, default=0.01, help="background efficiency of the threshold")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="another anomaly sample, scored too (repeatable), e.g. low-energy events: Z/τ, tt̄H",
    )
    parser.add_argument("--models", default="plain,nae", help="which of plain, nae to train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 + 1 epochs (a smoke run)")
    args = parser.parse_args()
    print_machine()
    if args.quick:
        args.epochs, args.nae_epochs = 2, 1
    started = time.perf_counter()
    args.output.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    columns = [f"{c}_{v}" for c in COLLECTIONS for v in ("pt", "eta", "phi")]
    background = ak.concatenate([ak.from_parquet(f, columns=columns) for f in event_files(args.background)])
    signal = ak.concatenate([ak.from_parquet(f, columns=columns) for f in event_files(args.signal)])
    is_test = rng.random(len(background)) < args.test_fraction
    files = {
        "train": io.write(background[~is_test], args.output / "train.parquet"),
        "background_test": io.write(background[is_test], args.output / "background_test.parquet"),
        "signal_test": io.write(signal, args.output / "signal_test.parquet"),
    }
    extras: dict[str, Path] = {}
    for index, item in enumerate(args.extra):
        label, _, folder = item.partition("=")
        events = ak.concatenate([ak.from_parquet(f, columns=columns) for f in event_files(Path(folder))])
        extras[label] = io.write(events, args.output / f"extra_{index}.parquet")
    print(
        f"background: {int((~is_test).sum())} training and {int(is_test.sum())} test events; signal: {len(signal)} "
        f"test events ({', '.join(COLLECTIONS)} in 18 × 14 regions)",
        flush=True,
    )
    batches = int(np.ceil((~is_test).sum() / 128))
    nae_step = {
        "name": "normalized_autoencoder",
        "pretrain_steps": args.epochs * batches,
        "temperature": args.temperature,
        "latent_steps": 10,
        "x_steps": 10,
        "x_step_size": 0.01,
        "x_noise": 0.005,
        "gamma": 1.0,
    }
    runs = {
        ("CICADA (plain AE)", "plain"): config(files["train"], args.epochs, None, args.seed),
        ("CICADA as NAE", "nae"): config(files["train"], args.epochs + args.nae_epochs, nae_step, args.seed),
    }
    chosen = {name.strip() for name in args.models.split(",")}
    runs = {key: value for key, value in runs.items() if key[1] in chosen}
    rows = []
    half = np.arange(int(is_test.sum())) % 2 == 0  # calibration / validation halves of the test background
    for (name, short), run_config in runs.items():
        run_started = time.perf_counter()
        run = train(load_run_config(run_config), name=short, runs_dir=args.output / "runs")
        model = TrainedModel.load(run.run_dir)
        score_b = model.predict_files([files["background_test"]])[0][:, 0]
        score_s = model.predict_files([files["signal_test"]])[0][:, 0]
        auc = float(roc_auc_score(np.r_[np.zeros(len(score_b)), np.ones(len(score_s))], np.r_[score_b, score_s]))
        threshold = threshold_at_efficiency(score_b[half], args.efficiency)
        check, _ = weighted_fraction(score_b[~half] > threshold.value)
        signal_efficiency, count = weighted_fraction(score_s > threshold.value)
        signal_error = np.sqrt(signal_efficiency * (1 - signal_efficiency) / count)  # binomial
        rows.append(
            {
                "model": name,
                "auc": auc,
                "median_mse_background": float(np.median(score_b)),
                "median_mse_signal": float(np.median(score_s)),
                "threshold": threshold.value,
                "background_efficiency_calibration": threshold.efficiency,
                "background_efficiency_interval": list(threshold.interval),
                "background_efficiency_validation": float(check),
                "signal_efficiency": float(signal_efficiency),
                "signal_efficiency_error": float(signal_error),
                "seconds": time.perf_counter() - run_started,
            }
        )
        for label, path in extras.items():  # AUC of each extra anomaly against the same test background
            score_x = model.predict_files([path])[0][:, 0]
            rows[-1][f"auc_{label}"] = float(
                roc_auc_score(np.r_[np.zeros(len(score_b)), np.ones(len(score_x))], np.r_[score_b, score_x])
            )
            rows[-1][f"median_mse_{label}"] = float(np.median(score_x))
            print(f"  {label}: AUC {rows[-1][f'auc_{label}']:.3f}, median MSE {np.median(score_x):.4g}", flush=True)
        print(f"{name}: AUC {auc:.3f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    print(
        f"{'model':<18} {'AUC':>6} {'med. MSE bkg':>13} {'med. MSE sig':>13} {'ε_B calib.':>11} "
        f"{'ε_B valid.':>11} {'ε_S':>14}"
    )
    for row in rows:
        print(
            f"{row['model']:<18} {row['auc']:>6.3f} {row['median_mse_background']:>13.4g} "
            f"{row['median_mse_signal']:>13.4g} {row['background_efficiency_calibration']:>11.4f} "
            f"{row['background_efficiency_validation']:>11.4f} "
            f"{row['signal_efficiency']:>7.4f} ± {row['signal_efficiency_error']:.4f}"
        )
    print(f"({time.perf_counter() - started:.0f} s on a shared, loaded 2-core machine)")
    (args.output / "results.json").write_text(json.dumps({"rows": rows, "settings": vars(args)}, default=str, indent=1))
    ours, reference = rows[-1]["auc"], rows[0]["auc"]
    print(json.dumps({"ours": round(ours, 3), "reference": round(reference, 3), "ratio": round(ours / reference, 3)}))


if __name__ == "__main__":
    main()
