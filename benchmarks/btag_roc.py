"""b-tagging rejection curves: the same tagger with and without the track fields.

    heplearn generate bjets bjets_qcd --jets 5000 --pt-min 30 --pt-max 250 --seed 5 -o data/btag
    heplearn train -c configs/btag_particlenet.yaml --name btag_tracks
    heplearn train -c configs/btag_particlenet.yaml --name btag_notracks --set 'data.inputs.particles.variables=[...]'
    python benchmarks/btag_roc.py runs/btag_tracks runs/btag_notracks --data data/btag/test.parquet

For each run (classes b, c, light) the discriminants of the flavour-tagging plots ATLAS shows for
DL1d/GN2 and CMS for DeepJet: b vs light, p_b/(p_b + p_light), and b vs c, p_b/(p_b + p_c), on the
b jets against the light (resp. c) jets alone. Prints the rejection at ε_b = 50/60/70/85% and draws
light- and c-rejection against ε_b with a ratio to the first run (``--plot``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from heplearn.evaluation import plots
from heplearn.evaluation.metrics import effective_count, roc
from heplearn.trained_model import TrainedModel

EFFICIENCIES = (0.5, 0.6, 0.7, 0.85)


def main() -> None:
    """Print the rejection table and draw the two figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--plot", type=Path, default=Path("docs/btag_rejection.png"))
    arguments = parser.parse_args()
    curves: dict[str, list[plots.RocLine]] = {"light": [], "c": []}
    table = {}
    for run in arguments.runs:
        model = TrainedModel.load(run)
        probabilities, arrays = model.predict_files(arguments.data)
        index = {name.removeprefix("label_"): i for i, name in enumerate(model.class_names)}
        is_b = arrays.label == index["b"]
        table[run.name] = {}
        for background, lines in curves.items():
            other = arrays.label == index[background]
            chosen = is_b | other
            p_b, p_x = probabilities[chosen, index["b"]], probabilities[chosen, index[background]]
            curve = roc(is_b[chosen], p_b / np.maximum(p_b + p_x, 1e-12))
            lines.append(plots.RocLine(run.name, curve, effective_count(np.ones(int(other.sum())))))
            rejections = {f"{e:.0%}": curve.rejection_at(e) for e in EFFICIENCIES}
            table[run.name][background] = {"auc": curve.auc, **rejections}
        table[run.name]["jets"] = {
            "b": int(is_b.sum()),
            **{name: int((arrays.label == index[name]).sum()) for name in curves},
        }
    print("| run | background | AUC | " + " | ".join(f"1/ε at ε_b = {e:.0%}" for e in EFFICIENCIES) + " |")
    print("|---|---|---|" + "---|" * len(EFFICIENCIES))
    for name, rows in table.items():
        for background in curves:
            row = rows[background]
            print(
                f"| {name} | {background} | {row['auc']:.4f} | "
                + " | ".join(f"{row[f'{e:.0%}']:.1f}" for e in EFFICIENCIES)
                + " |"
            )
    for background, lines in curves.items():
        figure = plots.plot_roc(lines, ratio=len(lines) > 1, title=f"b vs {background}")
        figure.axes[-1].set_xlabel(r"b-jet efficiency $\varepsilon_b$")
        figure.axes[0].set_ylabel(rf"{background}-jet rejection $1/\varepsilon_{{{background}}}$")
        plots.save_figure(
            figure, arguments.plot.parent, f"{arguments.plot.stem}_{background}", plots.PlotStyle(formats=("png",))
        )
    print(json.dumps(table))


if __name__ == "__main__":
    main()
