"""The LHC Olympics R&D-like resonant anomaly benchmark on heplearn's own generated events.

Background: ``heplearn generate events dijet_qcd``; signal: ``heplearn generate events wprime``
(W' → X(→qq̄) Y(→qq̄), m_W' = 3.5 TeV, m_X = 500 GeV, m_Y = 100 GeV; leading large-R jet pT > 1.2 TeV).
Features as in CATHODE (arXiv:2109.00546) from the two leading R = 0.8 jets: m_jj, m_J1 (the
lighter jet's mass), Δm_J = m_J2 − m_J1, τ21 of J1 and of J2 (TeV for masses); signal region
3.3 < m_jj < 3.7 TeV, the rest the sidebands. Signal is injected into the "data" at S/B =
``--injection`` in the SR (0.6% by default, the R&D default of 1000 signal events in 10⁶).

The background events are dealt into three parts: the data (with the injected signal), a second
background sample for the idealised detector and the supervised classifier, and the test
background; the SR signal events not injected are split in two: the supervised classifier's
training signal and the test signal. Each method scores the independent SR test events, and the figure is
SIC = ε_S/√ε_B against ε_S (``heplearn.methods.weak_supervision``), with the max SIC beside the
LHCO R&D values of the CATHODE paper (supervised 17.6, idealised 15.1, CATHODE 14.0, CWoLa 10.8).

    heplearn generate events dijet_qcd --events 20000 -o lhco_qcd --split 1,0,0
    heplearn generate events wprime --events 3000 -o lhco_wprime --split 1,0,0
    python benchmarks/bench_lhco.py --background lhco_qcd --signal lhco_wprime -o lhco_benchmark [--quick]

Reads the split files of each folder, or its finished generator chunks while it still runs.
``OUTPUT/report.html`` holds the SIC figure and the table. The last line is JSON: our CATHODE max
SIC, the literature's, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import awkward as ak
import numpy as np
from machine import print_machine

from heplearn.methods.anomaly_report import plot_sic, write_anomaly_report
from heplearn.methods.cathode import cathode_scores
from heplearn.methods.cwola import default_training
from heplearn.methods.weak_supervision import (
    LITERATURE_MAX_SIC,
    cwola_scores,
    ensemble_score,
    idealised_scores,
    in_window,
    sic_curve,
    supervised_scores,
    vae_scores,
)
from heplearn.run_config import TrainingConfig

SIGNAL_REGION = (3.3, 3.7)
SIDEBANDS = (1.5, 9.0)
FEATURE_NAMES = ["m_J1", "delta_m_J", "tau21_J1", "tau21_J2"]


def event_features(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, 4), m_jj (n,)) in TeV of the events under ``folder`` with two large-R jets."""
    # the generator's split files, or while it still runs, its finished chunks
    files = sorted(folder.glob("*.parquet")) or sorted(folder.rglob("chunk-*.parquet"))
    if not files:
        raise SystemExit(f"no parquet files under {folder}")
    events = ak.concatenate([ak.from_parquet(path, columns=["FatJet_*"]) for path in files])
    events = events[ak.num(events.FatJet_pt) >= 2]
    jets = [
        {
            name: ak.to_numpy(events[f"FatJet_{name}"][:, i]).astype(np.float64)
            for name in ("pt", "eta", "phi", "mass", "tau1", "tau2")
        }
        for i in (0, 1)
    ]
    px = sum(j["pt"] * np.cos(j["phi"]) for j in jets)
    py = sum(j["pt"] * np.sin(j["phi"]) for j in jets)
    pz = sum(j["pt"] * np.sinh(j["eta"]) for j in jets)
    energy = sum(np.sqrt((j["pt"] * np.cosh(j["eta"])) ** 2 + j["mass"] ** 2) for j in jets)
    mjj = np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0.0)) / 1000.0
    tau21 = [np.where(j["tau1"] > 0, j["tau2"] / np.where(j["tau1"] > 0, j["tau1"], 1.0), 0.0) for j in jets]
    lighter_first = jets[0]["mass"] <= jets[1]["mass"]  # J1 is the lighter jet (CATHODE's convention)
    m1 = np.where(lighter_first, jets[0]["mass"], jets[1]["mass"]) / 1000.0
    m2 = np.where(lighter_first, jets[1]["mass"], jets[0]["mass"]) / 1000.0
    t1 = np.where(lighter_first, tau21[0], tau21[1])
    t2 = np.where(lighter_first, tau21[1], tau21[0])
    return np.stack([m1, m2 - m1, t1, t2], axis=1), mjj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--background", type=Path, required=True, help="folder of dijet_qcd event files")
    parser.add_argument("--signal", type=Path, required=True, help="folder of wprime event files")
    parser.add_argument("--output", "-o", type=Path, default=Path("lhco_benchmark"))
    parser.add_argument("--injection", type=float, default=0.006, help="S/B in the signal region of the data")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of every classifier")
    parser.add_argument("--flow-epochs", type=int, default=60)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--min-background", type=int, default=20, help="background test events a cut must keep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="few epochs and folds (a smoke run)")
    args = parser.parse_args()
    print_machine()
    if args.quick:
        args.epochs, args.flow_epochs, args.folds = 5, 5, 2
    args.output.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()

    background, background_mass = event_features(args.background)
    signal, signal_mass = event_features(args.signal)
    part = rng.permutation(len(background)) % 4  # 0, 1: data; 2: extra background; 3: test
    data_x, data_m = background[part <= 1], background_mass[part <= 1]
    extra = background[(part == 2) & in_window(background_mass, SIGNAL_REGION)]
    test_background = background[(part == 3) & in_window(background_mass, SIGNAL_REGION)]
    sr_background = int(in_window(data_m, SIGNAL_REGION).sum())
    signal_sr = in_window(signal_mass, SIGNAL_REGION)
    order = rng.permutation(len(signal))
    # inject signal events (all masses) until the SR holds S/B = injection
    n_inject = int(np.searchsorted(np.cumsum(signal_sr[order]), round(args.injection * sr_background)) + 1)
    injected, rest = order[:n_inject], order[n_inject:]
    data_x, data_m = np.r_[data_x, signal[injected]], np.r_[data_m, signal_mass[injected]]
    rest_sr = signal[rest][signal_sr[rest]]
    supervised_signal, test_signal = rest_sr[::2], rest_sr[1::2]  # SR signal: half trains the supervised bound
    print(
        f"background events {len(background)} (SR {int(in_window(background_mass, SIGNAL_REGION).sum())}), "
        f"signal events {len(signal)} (SR fraction {signal_sr.mean():.2f}); data: {len(data_x)} events, "
        f"SR background {sr_background}, injected SR signal {int(signal_sr[injected].sum())} "
        f"(S/B {signal_sr[injected].sum() / max(sr_background, 1):.4f}); extra SR background {len(extra)}; "
        f"test: {len(test_signal)} signal, {len(test_background)} background",
        flush=True,
    )

    classifier = default_training(epochs=args.epochs, batch_size=256)
    kfold = {"folds": args.folds, "hidden": (64, 64, 64), "training": classifier, "seed": args.seed}
    test = np.r_[test_signal, test_background]
    is_signal = np.r_[np.ones(len(test_signal), bool), np.zeros(len(test_background), bool)]
    in_sr = in_window(data_m, SIGNAL_REGION)
    scores: dict[str, np.ndarray] = {}
    scores["supervised"] = ensemble_score(supervised_scores(supervised_signal, extra, **kfold), test)
    scores["idealised"] = ensemble_score(idealised_scores(data_x[in_sr], extra, **kfold), test)
    flow_training = TrainingConfig(
        epochs=args.flow_epochs, batch_size=256, learning_rate=1e-3, early_stopping_patience=None, weight_decay=1e-6
    )
    cathode, _ = cathode_scores(
        data_x,
        data_m,
        SIGNAL_REGION,
        SIDEBANDS,
        oversampling=4,
        folds=args.folds,
        transforms=4,
        hidden=(64, 64),
        flow_training=flow_training,
        classifier_training=classifier,
        seed=args.seed,
    )
    scores["CATHODE"] = ensemble_score(cathode, test)
    scores["CWoLa"] = ensemble_score(cwola_scores(data_x, data_m, SIGNAL_REGION, SIDEBANDS, **kfold), test)
    scores["VAE"] = vae_scores(
        data_x[in_sr], test, training=default_training(class_weights=None, epochs=args.epochs), seed=args.seed
    )
    curves = {name: sic_curve(is_signal, score, min_background=args.min_background) for name, score in scores.items()}
    ceiling = 1 / np.sqrt(args.min_background / len(test_background))
    literature = {"supervised": 17.6, "idealised": 15.1, "CATHODE": 14.0, "CWoLa": 10.8}
    assert set(LITERATURE_MAX_SIC.values()) == set(literature.values())
    rows = []
    print(f"{'method':<11} {'max SIC':>8} {'AUC':>6} {'LHCO R&D':>9} {'ratio':>6}")
    for name, curve in curves.items():
        reference = literature.get(name)
        rows.append({"method": name, "max_sic": curve.max_sic, "auc": curve.auc, "literature": reference})
        print(
            f"{name:<11} {curve.max_sic:>8.2f} {curve.auc:>6.3f} {reference if reference else '–':>9} "
            f"{curve.max_sic / reference if reference else float('nan'):>6.2f}"
        )
    print(
        f"(max SIC ceiling from the test background's size: {ceiling:.1f}; {time.perf_counter() - started:.0f} s; "
        "on a shared, loaded 2-core machine)"
    )
    (args.output / "sic.json").write_text(
        json.dumps({"rows": rows, "ceiling": ceiling, "injection": args.injection}, indent=1)
    )
    table = [
        [
            row["method"],
            f"{row['max_sic']:.2f}",
            f"{row['auc']:.3f}",
            f"{row['literature']}" if row["literature"] else "–",
            f"{row['max_sic'] / row['literature']:.2f}" if row["literature"] else "–",
        ]
        for row in rows
    ]
    subtitle = (
        f"generated W' (3.5 TeV) → X(500) Y(100) vs QCD dijets · S/B = {args.injection:.2%} in the SR · "
        f"{len(background)} background, {len(signal)} signal events"
    )
    report = write_anomaly_report(
        args.output,
        "Resonant anomaly detection: SIC of five methods",
        subtitle,
        [
            {
                "title": "Max SIC",
                "header": ["method", "max SIC", "AUC", "LHCO R&D", "ours / LHCO"],
                "rows": table,
                "note": f"Max SIC over cuts keeping at least {args.min_background} of the "
                f"{len(test_background)} SR test background events (ceiling {ceiling:.1f}). "
                "LHCO R&D values: CATHODE paper, arXiv:2109.00546.",
            }
        ],
        [
            (
                plot_sic(curves),
                "sic",
                "SIC against signal efficiency",
                "SIC = ε_S/√ε_B of a cut on each method's score, on the independent SR test events.",
            )
        ],
    )
    print(f"report: {report}")
    ours = curves["CATHODE"].max_sic
    print(json.dumps({"ours": round(ours, 2), "reference": 14.0, "ratio": round(ours / 14.0, 3)}))


if __name__ == "__main__":
    main()
