"""Benchmark: jets per CPU-second of trained fastsim generators against Pythia 8 + FastJet, side by side.

- reference: ``heplearn.generate.generate`` (the project's generator: Pythia 8, anti-kT R = 0.8,
  FastJet-contrib soft drop and τ1..4, the file written), one worker, top and QCD jets in the
  550-650 GeV window; its CPU time is the chunks' own;
- ours: each ``--run`` (a ``heplearn fastsim train`` run directory), one torch thread: jets of
  both classes sampled (``sample_jets``: pT and multiplicity draws, the network, for flow matching
  the ODE with ``--steps`` midpoint steps), then turned into the JetClass file (``write_jets``:
  four-vectors, FastJet soft drop and τ_N of the generated constituents, Parquet).

Both are timed in CPU seconds of this process (``time.process_time``), so the figure is per
core and little affected by other load on the machine; runs are interleaved (reference top, each
model, reference QCD, each model). Prints a table and, last, the JSON line ``{"ours": ..,
"reference": .., "ratio": ..}`` with the first run's full rate (file included) against Pythia's
averaged over top and QCD. Run by hand:

    .venv/bin/python benchmarks/bench_fastsim.py --run runs/fm --run runs/vae --run runs/gan --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from machine import print_machine

from heplearn.generate.driver import generate
from heplearn.generate.processes import GeneratorOptions
from heplearn.methods.fastsim import load_fastsim, sample_jets, write_jets


def pythia_rate(process: str, jets: int, seed: int) -> float:
    """Jets per CPU-second of the project's generator (one worker, one chunk)."""
    with tempfile.TemporaryDirectory(prefix="bench_fastsim_") as directory:
        summary = generate(
            [process],
            jets,
            directory,
            seed=seed,
            workers=1,
            chunk_size=jets,
            options=GeneratorOptions(),
            progress=False,
        )
    return summary.jets_generated / summary.cpu_seconds


def model_rates(run: Path, jets: int, steps: int, seed: int) -> tuple[float, float]:
    """(network-only, file-included) jets per CPU-second of one trained generator, jets of both classes."""
    model = load_fastsim(run)
    counts = {name: jets // len(model.scaling.class_names) for name in model.scaling.class_names}
    start = time.process_time()
    sampled = sample_jets(model, counts, steps=steps, seed=seed)
    network = time.process_time() - start
    with tempfile.TemporaryDirectory(prefix="bench_fastsim_") as directory:
        write_jets(sampled, Path(directory) / "jets.parquet")
    total = time.process_time() - start
    made = len(sampled.clouds)
    return made / network, made / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", type=Path, required=True, help="fastsim run directory (repeatable)")
    parser.add_argument("--quick", action="store_true", help="small samples (about a minute)")
    parser.add_argument("--steps", type=int, default=25, help="ODE steps of flow-matching sampling")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    print_machine({"torch": 1})
    pythia_jets, model_jets = (100, 2000) if arguments.quick else (400, 10_000)
    reference: list[float] = []
    ours: dict[Path, list[tuple[float, float]]] = {run: [] for run in arguments.run}
    for process in ("top", "qcd"):
        reference.append(pythia_rate(process, pythia_jets, arguments.seed))
        print(f"Pythia 8 + FastJet, {process}: {reference[-1]:.1f} jets/CPU-s", flush=True)
        for run in arguments.run:
            ours[run].append(model_rates(run, model_jets, arguments.steps, arguments.seed))
            print(f"{run}: {ours[run][-1][0]:.0f} jets/CPU-s network, {ours[run][-1][1]:.0f} with the file", flush=True)
    pythia = statistics.mean(reference)
    print("\n| generator | jets/CPU-s (network) | jets/CPU-s (JetClass file) | × Pythia + FastJet |")
    print("|---|---|---|---|")
    print(f"| Pythia 8 + FastJet (heplearn generate, {pythia_jets} jets per class) | | {pythia:.1f} | 1 |")
    for run, rates in ours.items():
        kind = json.loads((run / "fastsim.json").read_text())["kind"]
        network = statistics.mean(rate[0] for rate in rates)
        full = statistics.mean(rate[1] for rate in rates)
        print(f"| {kind} ({run.name}, {model_jets} jets) | {network:.0f} | {full:.0f} | {full / pythia:.0f} |")
    first = statistics.mean(rate[1] for rate in ours[arguments.run[0]])
    print(json.dumps({"ours": round(first, 1), "reference": round(pythia, 2), "ratio": round(first / pythia, 1)}))


if __name__ == "__main__":
    main()
