"""Benchmark: jets per CPU-second of trained fastsim generators against Pythia 8 + FastJet, side by side.

- reference: ``heplearn.generate.generate`` (the project's generator: Pythia 8, anti-kT R = 0.8,
  FastJet-contrib soft drop and τ1..4, the file written), one worker, top and QCD jets in the
  550-650 GeV window; its CPU time is the chunks' own;
- ours: each ``--run`` (a ``heplearn fastsim train`` run directory), one torch thread: jets of
  both classes sampled (``sample_jets``: pT and multiplicity draws, the network, for flow matching
  the ODE with ``--steps`` steps of ``--solver``, a one-step student of ``fastsim distil`` its one
  Euler step), then turned into the JetClass file
  (``write_jets``: four-vectors, Parquet) without and with the FastJet soft drop and τ_N of the
  generated constituents (``jet_sdmass``, ``jet_tau1..4``), which cost a fixed ≈ 0.35 ms a jet
  whatever made the constituents. ``--backend onnx|onnx-int8`` samples through onnxruntime
  (``heplearn.methods.fastsim_onnx``; the export is part of the untimed warm-up).

Both are timed in CPU seconds of this process (``time.process_time``), so the figure is per
core and little affected by other load on the machine; each model first makes 16 jets per class
untimed (the first calls of the network and the writer); runs are interleaved (reference top, each
model, reference QCD, each model). Prints a table and, last, the JSON line ``{"ours": ..,
"reference": .., "ratio": .., "ratio_with_substructure": ..}``: the first run's rate with the
particle-level JetClass file written (the generator's product) against Pythia's averaged over top
and QCD, and the same with FastJet substructure added to the file. Run by hand:

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


def run_sampler(run: Path, steps: int, solver: str) -> tuple[int, str]:
    """The sampler of ``run``: one Euler step for a one-step student (``fastsim distil``), else ``steps``
    steps of ``solver``."""
    hyperparameters = json.loads((run / "fastsim.json").read_text())["hyperparameters"]
    return (1, "euler") if hyperparameters.get("time_sampling") == "start" else (steps, solver)


def model_rates(
    run: Path, jets: int, steps: int, solver: str, seed: int, backend: str = "torch"
) -> tuple[float, float, float]:
    """Jets per CPU-second of one trained generator, jets of both classes: the network alone, with the
    particle-level JetClass file, and with FastJet substructure in the file too."""
    model = load_fastsim(run)
    counts = {name: jets // len(model.scaling.class_names) for name in model.scaling.class_names}
    with tempfile.TemporaryDirectory(prefix="bench_fastsim_") as directory:  # warm-up, untimed: first calls
        warm = sample_jets(model, dict.fromkeys(counts, 16), steps=steps, seed=seed, solver=solver, backend=backend)
        write_jets(warm, Path(directory) / "warm.parquet")
    start = time.process_time()
    sampled = sample_jets(model, counts, steps=steps, seed=seed, solver=solver, backend=backend)
    network = time.process_time() - start
    with tempfile.TemporaryDirectory(prefix="bench_fastsim_") as directory:
        start = time.process_time()
        write_jets(sampled, Path(directory) / "jets.parquet", substructure=False)
        particles = time.process_time() - start
        start = time.process_time()
        write_jets(sampled, Path(directory) / "full.parquet")
        full = time.process_time() - start
    made = len(sampled.clouds)
    return made / network, made / (network + particles), made / (network + full)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", type=Path, required=True, help="fastsim run directory (repeatable)")
    parser.add_argument("--quick", action="store_true", help="small samples (about a minute)")
    parser.add_argument("--steps", type=int, default=25, help="ODE steps of flow-matching sampling")
    parser.add_argument("--solver", default="midpoint", help="ODE solver: euler, midpoint or heun")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="torch", help="flow matching's network: torch, onnx or onnx-int8")
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    print_machine({"torch": 1})
    pythia_jets, model_jets = (100, 2000) if arguments.quick else (400, 10_000)
    reference: list[float] = []
    ours: dict[Path, list[tuple[float, float, float]]] = {run: [] for run in arguments.run}
    for process in ("top", "qcd"):
        reference.append(pythia_rate(process, pythia_jets, arguments.seed))
        print(f"Pythia 8 + FastJet, {process}: {reference[-1]:.1f} jets/CPU-s", flush=True)
        for run in arguments.run:
            steps, solver = run_sampler(run, arguments.steps, arguments.solver)
            ours[run].append(model_rates(run, model_jets, steps, solver, arguments.seed, arguments.backend))
            network, particles, full = ours[run][-1]
            print(
                f"{run}: {network:.0f} jets/CPU-s network, {particles:.0f} with the file, {full:.0f} with substructure",
                flush=True,
            )
    pythia = statistics.mean(reference)
    print(
        "\n| generator | jets/CPU-s (network) | jets/CPU-s (JetClass file) | × Pythia + FastJet "
        "| jets/CPU-s (file + FastJet substructure) | × Pythia + FastJet |"
    )
    print("|---|---|---|---|---|---|")
    print(f"| Pythia 8 + FastJet (heplearn generate, {pythia_jets} jets per class) | | | | {pythia:.1f} | 1 |")
    for run, rates in ours.items():
        kind = json.loads((run / "fastsim.json").read_text())["kind"]
        network, particles, full = (statistics.mean(rate[i] for rate in rates) for i in range(3))
        steps, solver = run_sampler(run, arguments.steps, arguments.solver)
        sampler = f", {steps} {solver} step{'s' if steps > 1 else ''}" if kind == "flow_matching" else ""
        label = f"{kind} ({run.name}{sampler}, {arguments.backend}, {model_jets} jets)"
        ratios = f"{particles / pythia:.0f} | {full:.0f} | {full / pythia:.0f}"
        print(f"| {label} | {network:.0f} | {particles:.0f} | {ratios} |")
    first = [statistics.mean(rate[i] for rate in ours[arguments.run[0]]) for i in range(3)]
    print(
        json.dumps(
            {
                "ours": round(first[1], 1),
                "reference": round(pythia, 2),
                "ratio": round(first[1] / pythia, 1),
                "ratio_with_substructure": round(first[2] / pythia, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
