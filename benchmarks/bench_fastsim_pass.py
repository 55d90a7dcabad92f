"""Benchmark: the CPU time of one network pass per jet of trained fastsim flows, side by side.

A flow's sampling rate is its passes per jet times the cost of a pass; this times the pass alone
(``FlowMatchingJets.velocity_at`` on a batch of standard-normal clouds, all jets with ``--real``
real particles of ``--particles`` slots, one torch thread, ``time.process_time``), best of five
rounds of five passes after three warm-up passes. Runs are timed in turn, so the first ``--run``
is measured against the others on the same machine in the same process (e.g. a network with the
pair bias against one without). Prints one line per run and, last, the JSON line
``{"runs": {name: microseconds per jet}, "ratio": first / second}``. Run by hand:

    .venv/bin/python benchmarks/bench_fastsim_pass.py --run runs/fm50k_ot_a3pb_e40 --run runs/fm50k_ot_a3_e40
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from machine import print_machine

from heplearn.methods.fastsim import load_fastsim


def microseconds_per_jet(run: Path, batch: int, particles: int, real: int) -> float:
    """The best CPU time of one pass of ``run``'s flow, per jet."""
    model = load_fastsim(run)
    network = model.network
    if not hasattr(network, "velocity_at"):
        raise SystemExit(f"{run}: not a flow-matching run")
    clouds = torch.randn(batch, particles, network.features)
    mask = torch.zeros(batch, particles, dtype=torch.bool)
    mask[:, :real] = True
    condition = torch.zeros(batch, model.scaling.condition_size)
    times = torch.zeros(batch)
    best = float("inf")
    with torch.no_grad():
        for _ in range(3):
            network.velocity_at(clouds, times, condition, mask)
        for _ in range(5):
            started = time.process_time()
            for _ in range(5):
                network.velocity_at(clouds, times, condition, mask)
            best = min(best, (time.process_time() - started) / 5 / batch * 1e6)
    return best


def main() -> None:
    """Time each ``--run`` and print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, type=Path, help="fastsim run directory (repeatable)")
    parser.add_argument("--batch", type=int, default=256, help="jets per pass (sampling's batch)")
    parser.add_argument("--particles", type=int, default=30, help="particle slots per jet")
    parser.add_argument("--real", type=int, default=25, help="real particles per jet (the rest is padding)")
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    print_machine()
    results = {}
    for run in arguments.run:
        results[run.name] = microseconds_per_jet(run, arguments.batch, arguments.particles, arguments.real)
        print(f"{run.name}: {results[run.name]:.0f} µs of CPU a jet a pass")
    values = list(results.values())
    ratio = values[0] / values[1] if len(values) > 1 else None
    print(json.dumps({"runs": {name: round(value, 1) for name, value in results.items()}, "ratio": ratio}))


if __name__ == "__main__":
    main()
