"""Domain adaptation on generated jets: the top tagger with and without DANN across two detectors.

    heplearn generate top qcd --jets 4000 --detector nominal --seed 21 -o data/top_qcd_detector --workers 2
    heplearn generate top qcd --jets 4000 --detector alt --seed 22 -o data/top_qcd_alt --workers 2
    python benchmarks/dann_detector.py            # --quick: 6 epochs
    # the README's figure: "data" from a miscalibrated detector (configs/detector_miscalibrated.yaml)
    heplearn generate top qcd --jets 3000 --detector configs/detector_miscalibrated.yaml --seed 23 \
        -o data/top_qcd_miscalibrated --workers 2
    python benchmarks/dann_detector.py --target-train data/top_qcd_miscalibrated/train.parquet \
        --source-test data/top_qcd_detector/{test,val}.parquet \
        --target-test data/top_qcd_miscalibrated/{test,val}.parquet --target-name "miscalibrated detector"
    # across tunes: "data" from the FSR-up variation (configs/top_qcd_dann_fsr.yaml), the README's table
    heplearn generate top qcd --jets 30000 --seed 7 -o data/top_qcd --workers 2
    heplearn generate top qcd --jets 4000 -o data/top_qcd_fsr_up --variation fsr-up --seed 11 --split 0.5,0.25,0.25
    python benchmarks/dann_detector.py -c configs/top_qcd_dann_fsr.yaml --strength 3 10 \
        --source-test data/top_qcd/test.parquet --target-test data/top_qcd_fsr_up/{val,test}.parquet \
        --target-name "FSR up" --source-name "nominal tune" --plot docs/dann_fsr.png

The source domain is the nominal parametric detector (labelled), the target the ``alt`` profile
(worse tracking and calorimeter resolutions, an HCAL response of 0.92: ``generate/detector.py``),
whose labels the training never reads. Both taggers are the MLP of ``configs/top_qcd_dann.yaml`` on
the jet features, trained with the same seed: once as configured (``domain_adversarial``, Ganin &
Lempitsky, arXiv:1409.7495), once with ``training.step: {name: single}``. Each is evaluated as
``heplearn evaluate RUN --data <nominal test> --domain-data <alt test>`` does (the library call
behind it): AUC and rejection at ε_S = 50% on the nominal test jets, and the agreement of the
score between the domains (χ²/ndf, KS, the AUC with which the score alone tells the domains
apart: ½ when the tagger behaves the same on both). The alt jets' labels, which a real data
sample would not have, give the tagger's true AUC in the target domain as a check.

The last line is ``{"ours": the domain-classifier AUC of DANN's score, "reference": of the plain
tagger's, "ratio": (ours − ½)/(reference − ½)}`` (``domain_classifier_auc``: the cross-validated
likelihood ratio of the binned score, which also sees a change of shape that leaves the raw
score's AUC at ½).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from heplearn.evaluation import plots
from heplearn.evaluation.agreement import Agreement, agreement
from heplearn.evaluation.evaluate import evaluate_run
from heplearn.evaluation.figures import EvaluationSettings
from heplearn.run_config import load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train

PLAIN_STEP = "training.step={name: single}"


def rejection_at(metrics: dict[str, Any], efficiency: float = 0.5) -> tuple[float, float]:
    """1/ε_B at the signal efficiency ``efficiency`` and its binomial uncertainty, from ``metrics.json``."""
    for row in metrics["rejection"]:
        if abs(row["signal_efficiency"] - efficiency) < 1e-9:
            return float(row["rejection"]), float(row["rejection_uncertainty"])
    raise KeyError(f"no rejection at ε_S = {efficiency} in the evaluation")


def measure(run_dir: Path, source_test: list[str], target_test: list[str], output: Path) -> dict[str, Any]:
    """The evaluation of ``heplearn evaluate --domain-data`` and the target-domain truth AUC of one run."""
    settings = EvaluationSettings(importance=False, style=plots.PlotStyle(formats=("png",)))
    nominal = evaluate_run(
        run_dir, source_test, output / "nominal", domain_files=target_test, settings=settings, progress=False
    ).metrics
    alt = evaluate_run(run_dir, target_test, output / "target", settings=settings, progress=False).metrics
    domain = nominal["domain_agreement"]
    return {
        "auc": nominal["auc"],
        "auc_uncertainty": nominal["auc_uncertainty"],
        "rejection_50": rejection_at(nominal),
        "rejection_70": rejection_at(nominal, 0.7),
        "alt_auc": alt["auc"],
        "alt_rejection_50": rejection_at(alt),
        "chi2_ndf": domain["chi2_ndf"],
        "ks_statistic": domain["ks_statistic"],
        "ks_pvalue": domain["ks_pvalue"],
        "separation_auc": domain["separation_auc"],
    }


def score_agreement(run_dir: Path, source_test: list[str], target_test: list[str]) -> Agreement:
    """The signal score's agreement between the two test samples (the figure's content), with the
    cross-validated domain-classifier AUC of the score (``agreement.domain_classifier_auc``)."""
    model = TrainedModel.load(run_dir)
    source, _ = model.predict_files(source_test)
    target, _ = model.predict_files(target_test)
    return agreement(source[:, 0], target[:, 0], edges=np.linspace(0.0, 1.0, 21))


def draw(
    agreements: dict[str, Agreement],
    path: Path,
    target_name: str = "alt detector",
    source_name: str = "nominal detector",
) -> None:
    """The score in simulation (filled) and in "data" (points) for each tagger, one column each,
    with the ratio data/simulation below: what the domain separation sees."""
    from matplotlib import pyplot

    with plots.plot_style():
        figure, axes = pyplot.subplots(
            2,
            len(agreements),
            figsize=(9 * len(agreements), 10),
            sharex=True,
            sharey="row",
            layout="constrained",
            gridspec_kw={"height_ratios": (3, 1)},
            squeeze=False,
        )
        for column, (name, result) in enumerate(agreements.items()):
            axis, lower = axes[0, column], axes[1, column]
            widths = np.diff(result.edges)
            centres = 0.5 * (result.edges[1:] + result.edges[:-1])
            (reference, reference_squares), (other, other_squares) = result.reference, result.other
            reference_density = reference / (reference.sum() * widths)
            other_density = other / (other.sum() * widths)
            other_error = np.sqrt(other_squares) / (other.sum() * widths)
            axis.stairs(reference_density, result.edges, fill=True, alpha=0.35, label=f"{source_name} (simulation)")
            axis.errorbar(
                centres,
                other_density,
                yerr=other_error,
                fmt="o",
                markersize=4,
                color="black",
                label=f"{target_name} ('data'): χ²/ndf {result.chi2_ndf:.1f}, KS p {result.ks.pvalue:.1g}",
            )
            axis.plot([], [], " ", label=f"domain AUC of the score {max(result.classifier_auc, 0.5):.3f} (½: alike)")
            axis.set_yscale("log")
            axis.set_ylim(1e-2, 1e3)  # room for the legend
            axis.set_title(name, fontsize="small")
            axis.legend(loc="upper center", fontsize="xx-small")
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = other_density / reference_density
                error = ratio * np.sqrt(other_squares / other**2 + reference_squares / reference**2)
            lower.errorbar(centres, ratio, yerr=error, fmt="o", markersize=4, color="black")
            lower.axhline(1.0, color="gray", linewidth=1)
            lower.set_ylim(0, 3)
            lower.set_xlabel("top-tagger score p(top)")
        axes[0, 0].set_ylabel("density (unit area)")
        axes[1, 0].set_ylabel("data / simulation", fontsize="small")
        plots.save_figure(figure, path.parent, path.stem, plots.PlotStyle(formats=("png",)))


def main() -> None:
    """Train the plain and the adapted tagger, evaluate both, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", default="configs/top_qcd_dann.yaml")
    parser.add_argument("--source-test", nargs="+", default=["data/top_qcd_detector/test.parquet"])
    parser.add_argument("--target-test", nargs="+", default=["data/top_qcd_alt/test.parquet"])
    parser.add_argument(
        "--target-train", default=None, help="the unlabelled target files of the training (default: the config's)"
    )
    parser.add_argument(
        "--strength", type=float, nargs="+", default=None, help="DANN strengths to train (default: the config's)"
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/dann_detector"))
    parser.add_argument("--target-name", default="alt detector", help="the target domain in the figure")
    parser.add_argument("--source-name", default="nominal detector", help="the source domain in the figure")
    parser.add_argument("--plot", type=Path, default=Path("docs/dann_detector.png"))
    parser.add_argument("--reuse", action="store_true", help="take a variant's finished run from --runs-dir")
    parser.add_argument("--quick", action="store_true", help="6 epochs")
    arguments = parser.parse_args()
    epochs = arguments.epochs or (6 if arguments.quick else None)
    common = [f"training.epochs={epochs}"] if epochs else []
    if arguments.target_train:
        common.append(f"training.step.target=[{arguments.target_train}]")
    variants = {"plain": [PLAIN_STEP]}  # the step (and its target) replaced: a plain training
    for strength in arguments.strength or [None]:
        variants["DANN" if strength is None else f"DANN λ={strength:g}"] = (
            [] if strength is None else [f"training.step.strength={strength}"]
        )
    rows: dict[str, dict[str, Any]] = {}
    agreements: dict[str, Agreement] = {}
    for name, overrides in variants.items():
        run_dir = arguments.runs_dir / name.replace(" ", "_").replace("=", "")
        started = time.perf_counter()
        seconds = "reused"
        if not (arguments.reuse and (run_dir / "model.safetensors").is_file()):
            config = load_run_config(arguments.config, common + overrides)
            run_dir = train(config, name=run_dir.name, runs_dir=arguments.runs_dir, progress=False).run_dir
            seconds = f"{time.perf_counter() - started:.0f}"
        rows[name] = measure(run_dir, arguments.source_test, arguments.target_test, run_dir / "eval")
        rows[name]["train_seconds"] = seconds
        agreements[name] = score_agreement(run_dir, arguments.source_test, arguments.target_test)
        rows[name]["domain_classifier_auc"] = agreements[name].classifier_auc
    print(
        "| tagger | AUC (nominal) | 1/ε_B at ε_S = 50% (nominal) | at ε_S = 70% | AUC (target, truth) | "
        "1/ε_B at 50% (target) | score χ²/ndf nominal vs target | KS D | KS p | raw-score AUC of the domains | "
        "domain-classifier AUC of the score | training [s] |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['auc']:.4f} ± {row['auc_uncertainty']:.4f} | "
            f"{row['rejection_50'][0]:.0f} ± {row['rejection_50'][1]:.0f} | "
            f"{row['rejection_70'][0]:.1f} ± {row['rejection_70'][1]:.1f} | "
            f"{row['alt_auc']:.4f} | {row['alt_rejection_50'][0]:.0f} | {row['chi2_ndf']:.2f} | "
            f"{row['ks_statistic']:.3f} | {row['ks_pvalue']:.2g} | {row['separation_auc']:.3f} | "
            f"{row['domain_classifier_auc']:.3f} | {row['train_seconds']} |"
        )
    draw(agreements, arguments.plot, arguments.target_name, arguments.source_name)
    adapted = rows[next(name for name in rows if name != "plain")]

    def separation(row: dict[str, Any]) -> float:
        return max(float(row["domain_classifier_auc"]), 0.5)

    print(
        json.dumps(
            {
                "ours": separation(adapted),
                "reference": separation(rows["plain"]),
                "ratio": (separation(adapted) - 0.5) / max(separation(rows["plain"]) - 0.5, 1e-12),
            }
        )
    )


if __name__ == "__main__":
    main()
