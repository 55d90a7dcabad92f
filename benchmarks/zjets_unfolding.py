"""The Z+jets OmniFold demonstration (issue 19): six jet substructure observables unfolded at once.

"Simulation" is Pythia 8 with its default Monash tune through the nominal detector; "data" is
Pythia with the ATLAS A14 tune (``Tune:pp = 21``) through the ``alt`` detector profile (worse
resolutions, lower tracking efficiency, calorimeter response 0.98/0.92). Both are Z → μμ + jet
events (``zmumu_jets``: pT-hat > 200 GeV) with the leading R = 0.4 jet's mass, multiplicity, width,
τ21, z_g and ln ρ at both levels (``heplearn.generate.paired``), as in the OmniFold PRL
(arXiv:1911.09107, Fig. 3). ``heplearn unfold`` unfolds the data's detector level with the
simulation; the data's own generator level is the truth it must close to.

A third sample, ``tune`` (A14 through the *nominal* detector), separates the two differences: OmniFold
assumes the simulation models the detector, so unfolding ``tune`` tests the method (only the
physics differs and closure must hold), while unfolding ``data`` adds the detector mismodelling,
whose non-closure is the size of a detector systematic (``--data tune`` or ``--data data``).

    python benchmarks/zjets_unfolding.py --events 10000 --parts 2 --bootstraps 8   # generate, then unfold
    python benchmarks/zjets_unfolding.py --reuse --bootstraps 8                     # unfold data/zjets again
    python benchmarks/zjets_unfolding.py --reuse --data tune --ensemble 3 --bootstraps 8 --name zjets-tune

Prints a table (per observable: triangular discriminator ×10³ and χ²/ndf to the truth of the
generator, IBU and OmniFold) and a last JSON line. The figure is in ``runs/<name>/figures/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SAMPLES = {
    # name: (seed, detector, extra Pythia settings)
    "simulation": (1, "nominal", ()),
    "data": (2, "alt", ("Tune:pp = 21",)),
    "tune": (3, "nominal", ("Tune:pp = 21",)),  # the data's physics through the simulation's detector
}
OBSERVABLES = ("mass", "mult", "width", "tau21", "zg", "lnrho")
LABELS = {
    "mass": "Leading-jet mass $m$ [GeV]",
    "mult": "Constituent multiplicity $M$",
    "width": r"Jet width $w = \sum p_{T,i} \Delta R_i / \sum p_{T,i}$",
    "tau21": r"N-subjettiness ratio $\tau_{21}$ ($\beta = 1$)",
    "zg": r"Groomed momentum fraction $z_g$",
    "lnrho": r"$\ln \rho = \ln(m_{SD}^2 / p_T^2)$",
}


def _generate(name: str, n_events: int, output: str, part: int = 0) -> tuple[str, float]:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from heplearn.generate.detector import load_detector
    from heplearn.generate.paired import generate_paired, write_paired

    seed, detector, pythia = SAMPLES[name]
    seed += 10 * part  # each part of a sample has its own events
    start = time.process_time()
    columns = generate_paired(n_events, seed=seed, detector=load_detector(detector), pythia=pythia)
    write_paired(
        output,
        columns,
        {"sample": name, "seed": str(seed), "detector": detector, "pythia": "; ".join(pythia) or "Monash (default)"},
    )
    return name, time.process_time() - start


def unfold_config(
    directory: Path, iterations: int, epochs: int, bootstraps: int, data: str = "data", ensemble: int = 1
) -> dict:
    """The ``heplearn unfold`` config of the demonstration (also written to the run directory)."""
    return {
        "simulation": [str(directory / "simulation-*.parquet")],
        "data": [str(directory / f"{data}-*.parquet")],
        "truth": [str(directory / f"{data}-*.parquet")],
        "gen": {"inputs": {"jet": {"variables": [f"gen_{name}" for name in OBSERVABLES]}}},
        "reco": {"inputs": {"jet": {"variables": [f"reco_{name}" for name in OBSERVABLES]}}},
        "reco_pass": "reco_pass > 0.5",
        "gen_pass": "gen_pass > 0.5",
        "weights": {"data": "reco_pass", "truth": "gen_pass"},
        "model": {"name": "mlp", "hidden": [64, 128, 64], "dropout": 0.0},
        "training": {
            "epochs": epochs,
            "batch_size": 500,
            "learning_rate": 1.0e-3,
            "weight_decay": 0.0,
            "early_stopping_patience": 3,
        },
        "unfolding": {"iterations": iterations, "ensemble": ensemble, "bootstraps": bootstraps, "no_reco": "one"},
        "comparison": {"bins": 20, "bootstraps": 10, "labels": {f"gen_{k}": v for k, v in LABELS.items()}},
    }


def main(argv: list[str] | None = None) -> int:
    """Generate (unless ``--reuse``), unfold, print the closure table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000, help="events per sample and part")
    parser.add_argument("--parts", type=int, default=1, help="parts per sample (generated one after the other)")
    parser.add_argument("--directory", type=Path, default=Path("data/zjets"))
    parser.add_argument("--reuse", action="store_true", help="use the files already in --directory")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--bootstraps", type=int, default=0, help="OmniFold bootstrap replicas of the data")
    parser.add_argument("--name", default="zjets-omnifold")
    parser.add_argument(
        "--data",
        choices=["data", "tune"],
        default="data",
        help="the sample to unfold: A14 through the alt detector (data) or through the nominal one (tune)",
    )
    parser.add_argument("--ensemble", type=int, default=1, help="classifiers averaged per OmniFold step")
    parser.add_argument(
        "--samples", default=",".join(SAMPLES), help="samples to generate (without --reuse), comma-separated"
    )
    parser.add_argument("--quick", action="store_true", help="2,000 events, 2 iterations, 3 epochs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.quick:
        args.events, args.iterations, args.epochs = 2000, 2, 3
        args.directory = args.directory.with_name(args.directory.name + "-quick")
        args.name += "-quick"

    unknown = sorted(set(args.samples.split(",")) - set(SAMPLES))
    if unknown:
        parser.error(f"--samples: unknown {', '.join(unknown)}; choose from {', '.join(SAMPLES)}")
    generation: dict[str, float] = {}
    if not args.reuse:
        with ProcessPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(_generate, name, args.events, str(args.directory / f"{name}-{part}.parquet"), part)
                for part in range(args.parts)
                for name in args.samples.split(",")
            ]
            for future in futures:
                name, seconds = future.result()
                generation[name] = generation.get(name, 0.0) + seconds
                print(f"generated {name}: {args.events} events, {seconds:.0f} CPU s", file=sys.stderr)

    from heplearn.methods.unfold_run import load_unfold_config, unfold

    config = load_unfold_config(
        unfold_config(args.directory, args.iterations, args.epochs, args.bootstraps, args.data, args.ensemble)
    )
    start = time.perf_counter()
    run = unfold(config, name=args.name)
    seconds = time.perf_counter() - start
    summary = json.loads((run.run_dir / "unfolding.json").read_text())
    closure = summary.get("closure_chi2", {})
    print(f"\n{summary['events']} events per sample, {args.iterations} iterations; unfolding {seconds:.0f} s wall")
    print(f"{'observable':12s} | {'Δ×10³ gen / IBU / OmniFold':>30s} | {'χ²/ndf gen / IBU / OmniFold':>30s}")
    for name in OBSERVABLES:
        key = f"gen_{name}"
        delta = run.discriminators.get(key, {})
        chi2 = closure.get(key, {})
        print(
            f"{name:12s} | "
            + " / ".join(f"{delta.get(m, float('nan')):8.2f}" for m in ("generator", "IBU", "OmniFold"))
            + " | "
            + " / ".join(
                f"{chi2.get(m, {}).get('chi2_ndf', float('nan')):8.2f}" for m in ("generator", "IBU", "OmniFold")
            )
        )
    result = {
        "events": summary["events"],
        "iterations": args.iterations,
        "data": args.data,
        "ensemble": args.ensemble,
        "unfold_seconds": round(seconds, 1),
        "generation_cpu_seconds": generation,
        "omnifold_chi2_ndf": {k: closure.get(f"gen_{k}", {}).get("OmniFold", {}).get("chi2_ndf") for k in OBSERVABLES},
        "generator_chi2_ndf": {
            k: closure.get(f"gen_{k}", {}).get("generator", {}).get("chi2_ndf") for k in OBSERVABLES
        },
        "run": str(run.run_dir),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
