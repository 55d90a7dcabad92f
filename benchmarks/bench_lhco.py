"""The LHC Olympics R&D-like resonant anomaly benchmark on heplearn's own generated events.

A thin driver of ``heplearn.methods.lhco_benchmark.run_benchmark`` (the module notes say what it
does; ``heplearn anomaly benchmark`` is the same as a command): supervised, idealised, CATHODE,
CWoLa and VAE scores of the SR test events, SIC = ε_S/√ε_B against ε_S, the max SIC beside the LHCO
R&D values of the CATHODE paper (supervised 17.6, idealised 15.1, CATHODE 14.0, CWoLa 10.8).

    heplearn generate events dijet_qcd --events 16000 -o lhco_qcd --split 1,0,0 --workers 2 \\
        --pythia "PhaseSpace:mHatMin = 2800" --pythia "PhaseSpace:mHatMax = 4400"
    heplearn generate events wprime --events 3000 -o lhco_wprime --split 1,0,0
    python benchmarks/bench_lhco.py --background lhco_qcd --signal lhco_wprime -o lhco_benchmark \\
        --mass-range 3.0,4.2 [--quick]

Reads the split files of each folder, or its finished generator chunks while it still runs.
``OUTPUT/report.html`` holds the SIC figure and the table. The last line is JSON: our CATHODE max
SIC, the literature's, and their ratio.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from machine import print_machine

from heplearn.methods.lhco_benchmark import MASS_RANGE, run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--background", type=Path, required=True, help="folder of dijet_qcd event files")
    parser.add_argument("--signal", type=Path, required=True, help="folder of wprime event files")
    parser.add_argument("--output", "-o", type=Path, default=Path("lhco_benchmark"))
    parser.add_argument("--injection", type=float, default=0.006, help="S/B in the signal region of the data")
    parser.add_argument(
        "--mass-range", default=",".join(map(str, MASS_RANGE)), help="LOW,HIGH of m_jj (TeV) used; SR 3.3-3.7"
    )
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
    low, high = (float(value) for value in args.mass_range.split(","))
    result = run_benchmark(
        args.background,
        args.signal,
        args.output,
        injection=args.injection,
        mass_range=(low, high),
        epochs=args.epochs,
        flow_epochs=args.flow_epochs,
        folds=args.folds,
        min_background=args.min_background,
        seed=args.seed,
        log=lambda line: print(line, flush=True),
    )
    print(f"{'method':<11} {'max SIC':>8} {'AUC':>6} {'LHCO R&D':>9} {'ratio':>6}")
    for row in result.table():
        print(
            f"{row['method']:<11} {row['max_sic']:>8.2f} {row['auc']:>6.3f} {row['literature'] or '–':>9} "
            f"{row['ratio'] if row['ratio'] else float('nan'):>6.2f}"
        )
    print(
        f"(max SIC ceiling from the test background's size: {result.ceiling:.1f}; {result.seconds:.0f} s; "
        "on a shared, loaded 2-core machine)"
    )
    print(f"report: {result.report}")
    ours = result.curves["CATHODE"].max_sic
    print(json.dumps({"ours": round(ours, 2), "reference": 14.0, "ratio": round(ours / 14.0, 3)}))


if __name__ == "__main__":
    main()
