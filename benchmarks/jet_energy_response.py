"""Jet energy response before and after a regression run: the demonstration of calibrated regression.

    heplearn train -c configs/jet_energy_regression.yaml --name jet_energy
    python benchmarks/jet_energy_response.py runs/jet_energy --data data/top_qcd/test.parquet

The run regresses the correction factor parton pT / jet pT (``configs/jet_energy_regression.yaml``).
For each bin of the jet's pT it prints the response R = pT(jet)/pT(parton) before and
R' = pT(jet)·ĉ/pT(parton) after the correction (ĉ: the median quantile) — its median (the scale)
and its relative resolution (half the 16–84% range over the median) — and the mean predicted
resolution (q75 − q25)/1.349 of ĉ beside the measured one, then draws both (``--plot``).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from heplearn.evaluation import plots
from heplearn.evaluation.regression import QUARTILE, robust_width
from heplearn.trained_model import TrainedModel


def main() -> None:
    """Print the response table and draw the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--bins", type=int, default=6)
    parser.add_argument("--plot", type=Path, default=Path("docs/jet_energy_response.png"))
    arguments = parser.parse_args()
    model = TrainedModel.load(arguments.run)
    outputs, arrays = model.predict_files(arguments.data)
    matched = arrays.observers["aux_parton_pt"] > 0  # jets without a matched parton have no truth
    jet_pt = arrays.observers["jet_pt"][matched].astype(np.float64)
    parton_pt = arrays.observers["aux_parton_pt"][matched].astype(np.float64)
    low, median, high = outputs[matched, 0], outputs[matched, 1], outputs[matched, 2]
    before, after = jet_pt / parton_pt, jet_pt * median / parton_pt
    predicted = (high - low) / (2 * QUARTILE)  # σ̂ of the correction factor, per jet
    edges = np.quantile(jet_pt, np.linspace(0, 1, arguments.bins + 1))
    rows = []
    print("| jet pT [GeV] | jets | median R before | after | resolution before | after | predicted |")
    print("|---|---|---|---|---|---|---|")
    for lower, upper in itertools.pairwise(edges):
        chosen = (jet_pt >= lower) & (jet_pt <= upper)
        row = {
            "low": lower,
            "high": upper,
            "jets": int(chosen.sum()),
            "scale_before": float(np.median(before[chosen])),
            "scale_after": float(np.median(after[chosen])),
            "resolution_before": robust_width(before[chosen]) / float(np.median(before[chosen])),
            "resolution_after": robust_width(after[chosen]) / float(np.median(after[chosen])),
            "predicted": float(np.mean(predicted[chosen] / median[chosen])),
        }
        rows.append(row)
        print(
            f"| {lower:.0f}–{upper:.0f} | {row['jets']} | {row['scale_before']:.3f} | {row['scale_after']:.3f} | "
            f"{row['resolution_before']:.3f} | {row['resolution_after']:.3f} | {row['predicted']:.3f} |"
        )
    overall = {
        "resolution_before": robust_width(before) / float(np.median(before)),
        "resolution_after": robust_width(after) / float(np.median(after)),
        "scale_before": float(np.median(before)),
        "scale_after": float(np.median(after)),
        "coverage_q25": float(np.mean(parton_pt / jet_pt < low)),
        "coverage_q75": float(np.mean(parton_pt / jet_pt < high)),
    }
    centers = [0.5 * (row["low"] + row["high"]) for row in rows]
    with plots.plot_style():
        figure = plots._figure((8, 8.5))
        top, bottom = figure.subplots(2, 1, sharex=True)
        top.plot(centers, [row["scale_before"] for row in rows], "o-", label="before")
        top.plot(centers, [row["scale_after"] for row in rows], "s-", label="after regression")
        top.axhline(1.0, color="gray", linewidth=1)
        top.set_ylabel(r"Median response $p_\mathrm{T}^\mathrm{jet}/p_\mathrm{T}^\mathrm{parton}$")
        top.legend(fontsize="small")
        bottom.plot(centers, [row["resolution_before"] for row in rows], "o-", label="before")
        bottom.plot(centers, [row["resolution_after"] for row in rows], "s-", label="after regression")
        bottom.plot(centers, [row["predicted"] for row in rows], "^--", label="predicted (q75 − q25)/1.349")
        bottom.set_ylabel("Relative resolution")
        bottom.set_xlabel(r"Jet $p_\mathrm{T}$ [GeV]")
        bottom.legend(fontsize="small")
        plots.save_figure(figure, arguments.plot.parent, arguments.plot.stem, plots.PlotStyle(formats=("png",)))
    print(json.dumps({"overall": overall, "bins": rows}))


if __name__ == "__main__":
    main()
