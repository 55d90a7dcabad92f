"""ABCD background estimate of top jets in QCD: Double DisCo against the plain pair and Single DisCo.

    heplearn generate top qcd --jets 30000 --seed 7 -o data/top_qcd --workers 2
    python benchmarks/abcdisco_top.py --strengths 10,30,100       # --quick: 5 epochs

Three ABCD planes, all from ``configs/top_qcd_double_disco.yaml`` (MLPs on the jet features):

- the plain pair: two taggers f, g trained side by side with λ = 0 (independent initialisations,
  same inputs: strongly correlated on QCD);
- Double DisCo (ABCDisCo, Kasieczka, Nachman, Schwartz & Shih, arXiv:2007.14400): f and g with
  λ·dCor²(f, g) on the QCD jets of each batch;
- Single DisCo (the same paper's baseline): one tagger with λ·dCor²(f, m_SD) on QCD (Kasieczka &
  Shih, arXiv:2001.05310) against the mass window's closeness to the top mass, −|m_SD − 172.5 GeV|.

For each, on the QCD test jets: cuts on the two variables that each keep a fraction ε_QCD of QCD
(the working points), the regions A (both pass: the signal region), B, C, D, the ABCD prediction
N_A = N_B·N_C/N_D with its statistical uncertainty (``heplearn.stats.abcd``), the closure
N_A^pred/N_A and its pull. On the top test jets: the signal efficiency of A and the signal
contamination of each control region relative to A, (S_i/B_i)/(S_A/B_A) for i = B, C, D (how
much a signal would bias the estimate; independent of the sample's top fraction).

The last line is ``{"ours": |closure − 1| of Double DisCo, "reference": of the plain pair, "ratio": ..}``
at the middle working point (the first λ).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from heplearn.methods.decorrelation import distance_correlation, pair_scores
from heplearn.run_config import load_run_config
from heplearn.stats.abcd import AbcdEstimate, abcd_estimate, region_counts
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train

TOP_MASS = 172.5  # GeV: the centre of the mass window of Single DisCo's second variable
MASS_OBSERVER = "jet_sdmass"


@dataclass(frozen=True)
class Plane:
    """The two ABCD variables of every test jet, with its label (0 top, 1 QCD)."""

    name: str
    first: np.ndarray
    second: np.ndarray
    label: np.ndarray


@dataclass(frozen=True)
class WorkingPoint:
    """The ABCD figures of one pair of cuts."""

    qcd_efficiency: float  # of each cut alone, on QCD
    signal_efficiency: float  # of region A, on top
    estimate: AbcdEstimate
    contamination: dict[str, float]  # (S_i/B_i)/(S_A/B_A), i = B, C, D


def working_point(plane: Plane, qcd_efficiency: float) -> WorkingPoint:
    """Cut each variable where it keeps ``qcd_efficiency`` of QCD; the ABCD closure and contamination."""
    qcd, top = plane.label == 1, plane.label == 0
    cut_first = float(np.quantile(plane.first[qcd], 1 - qcd_efficiency))
    cut_second = float(np.quantile(plane.second[qcd], 1 - qcd_efficiency))
    background = region_counts(plane.first[qcd], plane.second[qcd], cut_first, cut_second)
    signal = region_counts(plane.first[top], plane.second[top], cut_first, cut_second)
    ratio = {
        region: signal.sums[region] / background.sums[region] if background.sums[region] > 0 else float("inf")
        for region in "ABCD"
    }
    contamination = {region: ratio[region] / ratio["A"] if ratio["A"] > 0 else float("nan") for region in "BCD"}
    return WorkingPoint(qcd_efficiency, signal.sums["A"] / int(top.sum()), abcd_estimate(background), contamination)


def double_disco_plane(name: str, run_dir: Path, files: list[str]) -> Plane:
    """(f, g) of a Double DisCo run on ``files``."""
    first, second, arrays = pair_scores(run_dir, files)
    return Plane(name, first, second, arrays.label)


def single_disco_plane(name: str, run_dir: Path, files: list[str]) -> Plane:
    """(f, −|m_SD − m_top|) of a single tagger on ``files``."""
    scores, arrays = TrainedModel.load(run_dir).predict_files(files)
    mass = arrays.observers[MASS_OBSERVER]
    return Plane(name, scores[:, 0], -np.abs(mass - TOP_MASS), arrays.label)


def qcd_distance_correlation(plane: Plane, limit: int = 4000) -> float:
    """dCor²(first, second) on (at most ``limit``) QCD test jets."""
    qcd = plane.label == 1
    first = torch.from_numpy(plane.first[qcd][:limit].astype(np.float64))
    second = torch.from_numpy(plane.second[qcd][:limit].astype(np.float64))
    return float(distance_correlation(first, second))


def main() -> None:
    """Train the three variants, print the closure table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="configs/top_qcd_double_disco.yaml")
    parser.add_argument("--data", nargs="+", default=["data/top_qcd/test.parquet"], help="the test jets")
    parser.add_argument("--strengths", default=None, help="Double DisCo's λ, comma-separated (default: the config's)")
    parser.add_argument("--single-strength", type=float, default=10.0, help="Single DisCo's λ")
    parser.add_argument("--working-points", default="0.5,0.3,0.2", help="QCD efficiency of each cut")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/abcdisco_top"))
    parser.add_argument("--reuse", action="store_true", help="take a variant's finished run from --runs-dir")
    parser.add_argument("--quick", action="store_true", help="5 epochs")
    arguments = parser.parse_args()
    epochs = arguments.epochs or (5 if arguments.quick else None)
    common = [f"training.epochs={epochs}"] if epochs else []
    strengths = (
        [float(value) for value in arguments.strengths.split(",")]
        if arguments.strengths
        else [load_run_config(arguments.config).training.step.settings["strength"]]
    )
    single = [
        "training.step={name: single}",
        "training.loss=[{name: cross_entropy}, {name: disco, weight: "
        f"{arguments.single_strength}, on: {MASS_OBSERVER}}}]",
    ]
    variants: dict[str, tuple[str, list[str], Any]] = {
        "plain pair (λ = 0)": ("plain", ["training.step.strength=0"], double_disco_plane)
    }
    for strength in strengths:
        variants[f"Double DisCo (λ = {strength:g})"] = (
            f"double{strength:g}",
            [f"training.step.strength={strength}"],
            double_disco_plane,
        )
    variants[f"Single DisCo (f, m_SD; λ = {arguments.single_strength:g})"] = (
        f"single{arguments.single_strength:g}",
        single,
        single_disco_plane,
    )
    planes, seconds = [], {}  # seconds: "reused" for a run taken from --runs-dir
    for name, (slug, overrides, plane_of) in variants.items():
        run_dir = arguments.runs_dir / slug
        started = time.perf_counter()
        seconds[name] = "reused"
        if not (arguments.reuse and (run_dir / "model.safetensors").is_file()):
            config = load_run_config(arguments.config, common + overrides)
            run_dir = train(config, name=slug, runs_dir=arguments.runs_dir, progress=False).run_dir
            seconds[name] = f"{time.perf_counter() - started:.0f}"
        planes.append(plane_of(name, run_dir, arguments.data))
    efficiencies = [float(value) for value in arguments.working_points.split(",")]
    print(
        "| ABCD plane | AUC of f | AUC of g | dCor²(f, g) on QCD | ε_QCD per cut | ε_top in A | N_A (QCD) | "
        "N_A predicted | closure | pull | contamination B / C / D | training [s] |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for plane in planes:
        is_top = plane.label == 0
        aucs = roc_auc_score(is_top, plane.first), roc_auc_score(is_top, plane.second)
        correlation = qcd_distance_correlation(plane)
        for efficiency in efficiencies:
            point = working_point(plane, efficiency)
            estimate = point.estimate
            contamination = " / ".join(f"{point.contamination[region]:.3f}" for region in "BCD")
            print(
                f"| {plane.name} | {aucs[0]:.4f} | {aucs[1]:.4f} | {correlation:.3f} | {efficiency:.2f} | "
                f"{point.signal_efficiency:.3f} | {estimate.observed:.0f} | {estimate.predicted:.1f} ± "
                f"{estimate.uncertainty:.1f} | {estimate.closure:.3f} ± {estimate.closure_uncertainty:.3f} | "
                f"{estimate.closure_pull:+.1f} | {contamination} | {seconds[plane.name]} |"
            )
        summary[plane.name] = working_point(plane, efficiencies[len(efficiencies) // 2]).estimate.closure
    names = list(summary)
    ours, reference = abs(summary[names[1]] - 1), abs(summary[names[0]] - 1)
    print(json.dumps({"ours": ours, "reference": reference, "ratio": ours / max(reference, 1e-12)}))


if __name__ == "__main__":
    main()
