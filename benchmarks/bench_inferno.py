"""INFERNO on the paper's synthetic 3-D problem: σ(s) of a cross-entropy classifier (10 uniform
bins of its signal probability) against heplearn's INFERNO-trained summary statistic (10 bins),
on benchmarks B0–B4, beside the paper's numbers (de Castro & Dorigo, arXiv:1806.04743, Table 2)
and the Fisher bound integrated here.

Each initialisation (seed) trains one cross-entropy network, evaluated on every benchmark, and
one INFERNO network per benchmark (trained with that benchmark's nuisances, the paper's "matched"
entries). σ(s) is the Asimov Hessian's profiled σ on a held-out sample with hard bins, the
nuisances' up/down templates at r ± 0.2, λ ± 0.5. The table gives the median over seeds and the
16–84% range.

    python benchmarks/bench_inferno.py            # 10 seeds, B0–B4
    python benchmarks/bench_inferno.py --quick    # 2 seeds, B2, small samples (about a minute)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import print_machine
from tqdm.auto import tqdm

from heplearn.methods.inferno import (
    BENCHMARKS,
    benchmark_settings,
    binned_uncertainty,
    fisher_bound,
    network_bins,
    synthetic_3d,
    train_cross_entropy,
    train_inferno,
    with_variations,
)

#: arXiv:1806.04743 Table 2 (paper/table.tex): medians over 100 initialisations
PAPER = {
    "bound": {"B0": 14.71, "B1": 15.52, "B2": 15.65, "B3": 15.62, "B4": 16.89},
    "cross_entropy": {"B0": 14.99, "B1": 18.94, "B2": 23.94, "B3": 21.54, "B4": 26.71},
    "inferno": {"B0": 15.51, "B1": 16.79, "B2": 16.95, "B3": 16.89, "B4": 18.68},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, B2 only, small samples")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS), choices=list(BENCHMARKS))
    parser.add_argument("--train-events", type=int, default=20_000, help="per class")
    parser.add_argument("--test-events", type=int, default=100_000, help="per class")
    parser.add_argument("--epochs", type=int, default=20, help="INFERNO epochs")
    parser.add_argument("--ce-epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed … first-seed + seeds − 1")
    parser.add_argument("--output", help="write every σ(s) as JSON here")
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="print the table of earlier --output files (seeds run in several processes) instead of training",
    )
    args = parser.parse_args()
    print_machine()
    if args.quick:
        args.seeds, args.benchmarks, args.train_events, args.test_events, args.epochs, args.ce_epochs = (
            2,
            ["B2"],
            5_000,
            20_000,
            6,
            4,
        )
    if args.merge:
        runs = [json.loads(Path(path).read_text()) for path in args.merge]
        merged: dict[str, dict[str, list[float]]] = {}
        for run in runs:
            for name, values in run["results"].items():
                for kind, sigmas in values.items():
                    merged.setdefault(name, {}).setdefault(kind, []).extend(sigmas)
        print(
            f"merged {len(runs)} runs: "
            + "; ".join(
                f"seeds {run['args'].get('first_seed', 0)}–"
                f"{run['args'].get('first_seed', 0) + run['args']['seeds'] - 1} "
                f"{' '.join(run['args']['benchmarks'])}, INFERNO {run['args']['epochs']} epochs, "
                f"in {run['seconds']:.0f} s"
                for run in runs
            )
        )
        report(merged, runs[0]["args"])
        return
    torch.set_num_threads(args.threads)

    test_events, test_label = synthetic_3d(args.test_events, args.test_events, np.random.default_rng(12345))
    test_rows = {
        name: with_variations(test_events, test_label, benchmark_settings(name).nuisances) for name in args.benchmarks
    }
    results: dict[str, dict[str, list[float]]] = {
        name: {"cross_entropy": [], "inferno": []} for name in args.benchmarks
    }
    started = time.perf_counter()
    bar = tqdm(total=args.seeds * (1 + len(args.benchmarks)), desc="trainings", unit="net")
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        events, label = synthetic_3d(args.train_events, args.train_events, np.random.default_rng(seed))
        classifier = train_cross_entropy(events, label, epochs=args.ce_epochs, seed=seed)
        bar.update()
        for name in args.benchmarks:
            settings, rows = benchmark_settings(name), test_rows[name]
            results[name]["cross_entropy"].append(
                binned_uncertainty(
                    network_bins(classifier, rows["features"]), rows["label"], rows["variation"], 10, settings
                )
            )
            train_rows = with_variations(events, label, settings.nuisances)
            model = train_inferno(train_rows, settings, epochs=args.epochs, seed=seed)
            results[name]["inferno"].append(
                binned_uncertainty(
                    network_bins(model, rows["features"]), rows["label"], rows["variation"], 10, settings
                )
            )
            bar.update()
            bar.set_postfix(seed=seed, benchmark=name, inferno=f"{results[name]['inferno'][-1]:.2f}")
            if args.output:  # after every training: an interrupted run keeps what it measured
                Path(args.output).write_text(
                    json.dumps(
                        {"args": vars(args), "seconds": time.perf_counter() - started, "results": results}, indent=1
                    )
                )
    bar.close()
    print(f"\n{time.perf_counter() - started:.0f} s")
    report(results, vars(args))


def report(results: dict[str, dict[str, list[float]]], settings: dict[str, Any]) -> None:
    """The table (median [16%, 84%] over seeds, beside the paper) and the last JSON line."""

    def summary(values: list[float]) -> str:
        low, median, high = np.percentile(values, [16, 50, 84])
        return f"{median:6.2f} [{low:.2f}, {high:.2f}] n={len(values)}"

    print(
        f"n seeds per entry, {settings['train_events']} training and {settings['test_events']} test events "
        "per class, "
        f"INFERNO {settings['epochs']} epochs, cross entropy {settings['ce_epochs']}"
    )
    print(
        f"{'':4} {'bound':>6} {'(paper)':>7} | {'CE ours (median [16%, 84%])':>33} {'(paper)':>7} | "
        f"{'INFERNO ours':>33} {'(paper)':>7}"
    )
    for name in sorted(results):
        print(
            f"{name:4} {fisher_bound(name):6.2f} {PAPER['bound'][name]:7.2f} | "
            f"{summary(results[name]['cross_entropy']):>33} {PAPER['cross_entropy'][name]:7.2f} | "
            f"{summary(results[name]['inferno']):>33} {PAPER['inferno'][name]:7.2f}"
        )
    headline = "B2" if "B2" in results else next(iter(results))
    ours = float(np.median(results[headline]["inferno"]))
    print(
        json.dumps(
            {
                "benchmark": headline,
                "ours": round(ours, 3),
                "reference": PAPER["inferno"][headline],
                "ratio": round(ours / PAPER["inferno"][headline], 4),
            }
        )
    )


if __name__ == "__main__":
    main()
