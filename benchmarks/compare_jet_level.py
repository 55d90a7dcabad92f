"""Jet-level taggers side by side on the same top-vs-QCD test jets: the classical ladder.

Trains the rectangular cuts, the projective likelihood, the BDT and the MLP with the example
configs on jet-level features (mass, soft-drop mass, τ21, τ32, multiplicity, pT) and compares them
with the best single-variable cut (each feature alone as the score, either direction). Expected:
bdt > mlp ≥ likelihood > best single variable.

    heplearn generate top qcd --jets 10000 -o data/top_qcd --workers 2
    python benchmarks/compare_jet_level.py --data data/top_qcd [--quick]

Prints a table and a last JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from heplearn.data.in_memory import load_arrays
from heplearn.demo import config_path
from heplearn.evaluation.metrics import summary
from heplearn.run_config import load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train

MODELS = {"cuts": ["model.n_bins=60"], "likelihood": [], "bdt": [], "mlp": []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/top_qcd"))
    parser.add_argument("--quick", action="store_true", help="fewer epochs and trees")
    args = parser.parse_args()
    files = {split: str(args.data / f"{split}.parquet") for split in ("train", "val", "test")}
    runs = Path(tempfile.mkdtemp(prefix="compare_jet_level_"))
    rows = {}
    test_arrays = None
    for name, overrides in MODELS.items():
        extra = (
            (["training.epochs=5"] if name == "mlp" else ["model.n_estimators=200"] if name == "bdt" else [])
            if args.quick
            else []
        )
        config = load_run_config(
            config_path(f"top_qcd_{name}.yaml"),
            [f"data.train=[{files['train']}]", f"data.val=[{files['val']}]", *overrides, *extra],
        )
        train(config, name=name, runs_dir=runs, progress=False)
        probabilities, test_arrays = TrainedModel.load(runs / name).predict_files([files["test"]])
        rows[name] = summary(test_arrays.label == 0, probabilities[:, 0], test_arrays.weight, (0.3, 0.5))
    assert test_arrays is not None
    config = load_run_config(config_path("top_qcd_bdt.yaml"))
    raw, _ = load_arrays([files["test"]], config.data)
    features = config.data.inputs["jet"].variables
    single = {}
    for index, feature in enumerate(features):
        values = raw.inputs["jet"][:, index]
        figures = max(
            (summary(raw.label == 0, sign * values, raw.weight, (0.3, 0.5)) for sign in (1, -1)), key=lambda f: f["auc"]
        )
        single[feature] = figures
    best_feature = max(single, key=lambda f: single[f]["auc"])
    rows[f"best single variable ({best_feature})"] = single[best_feature]
    print(f"{'model':34} {'AUC':>7} {'1/eB@30%':>9} {'1/eB@50%':>9}   test jets: {len(raw)}")
    for name, figures in rows.items():
        reached = {percent: figures.get(f"signal_efficiency_at_{percent}") for percent in (30, 50)}
        notes = "".join(
            f"  (the {percent}% column's cut has ε_S = {value:.0%})"
            for percent, value in reached.items()
            if value is not None
        )
        print(
            f"{name:34} {figures['auc']:7.4f} {figures['rejection_at_30']:9.1f} {figures['rejection_at_50']:9.1f}"
            + notes
        )
    print(
        json.dumps(
            {name: {k: round(float(v), 4) for k, v in f.items()} for name, f in rows.items()}
            | {"test_jets": len(raw), "single_variables": {k: round(v["auc"], 4) for k, v in single.items()}}
        )
    )


if __name__ == "__main__":
    main()
