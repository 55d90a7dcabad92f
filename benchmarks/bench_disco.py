"""What the DisCo penalty costs: time per training step with and without it, batch 1024.

One step is the trainer's own ``SingleNetworkStep`` (forward, the task's loss terms, backward,
AdamW): cross entropy alone (the reference) against cross entropy + λ·dCor²(score, mass) on the
background half of the batch (``heplearn.methods.decorrelation``, arXiv:2001.05310). Timed rounds of
the two alternate on the same batches. Also prints the agreement of heplearn's dCor² with the
``dcor`` package (PyPI ``dcor``, the reference implementation of Székely–Rizzo) on the batch.

    python benchmarks/bench_disco.py [--quick] [--models mlp,particlenet] [--threads 2]

The last line is JSON: step time with DisCo ("ours") and without ("reference") for the model where
the penalty costs most, and their ratio (goal: <= 1.2).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from machine import print_machine

from heplearn.data.jets import observer_key
from heplearn.methods.decorrelation import distance_correlation
from heplearn.models import registry
from heplearn.run_config import LossTermConfig, TrainingConfig
from heplearn.tasks import Classification
from heplearn.training.losses import TermContext, build_terms
from heplearn.training.steps import SingleNetworkStep, StepContext

BATCH = 1024
PARTICLES = 64
FEATURES = 7


def batch_for(model_name: str, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 2, (BATCH,), generator=generator)
    batch = {
        "label": label,
        "weight": torch.ones(BATCH),
        observer_key("jet_sdmass"): 80 + 90 * label.float() + 15 * torch.randn(BATCH, generator=generator),
    }
    keys = registry.model_class(model_name).input_keys
    if "jet" in keys:
        batch["jet"] = torch.randn(BATCH, 6, generator=generator)
    if "mask" in keys:
        counts = torch.randint(10, PARTICLES, (BATCH,), generator=generator)
        batch["mask"] = torch.arange(PARTICLES)[None, :] < counts[:, None]
        batch["particles"] = torch.randn(BATCH, PARTICLES, FEATURES, generator=generator)
        batch["points"] = torch.randn(BATCH, PARTICLES, 2, generator=generator)
        batch["vectors"] = torch.rand(BATCH, PARTICLES, 4, generator=generator) + 1
    return batch


def step_for(model_name: str, terms: list[dict[str, object]]) -> SingleNetworkStep:
    torch.manual_seed(0)
    dims = {"jet": 6, "particles": FEATURES, "points": 2, "vectors": 4}
    model = registry.model_class(model_name).from_preset("small", 2, dims)
    training = TrainingConfig(batch_size=BATCH)
    task = Classification(["signal", "background"])
    task.terms = build_terms([LossTermConfig(**term) for term in terms], task, TermContext(training))
    return SingleNetworkStep(StepContext(model, task, training, 10**6, lambda module: module))


def time_steps(step: SingleNetworkStep, batches: list[dict[str, torch.Tensor]], steps: int) -> float:
    started = time.perf_counter()
    for index in range(steps):
        step.step(batches[index % len(batches)], index)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default="mlp,pfn,particlenet")
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    print_machine()
    steps, rounds = (5, 3) if arguments.quick else (20, 5)

    import dcor

    sample = batch_for("mlp", 99)
    background = sample["label"] == 1
    score = torch.rand(BATCH, generator=torch.Generator().manual_seed(5))[background].double()
    mass = sample[observer_key("jet_sdmass")][background].double()
    ours = float(distance_correlation(score + 0.01 * mass, mass))
    theirs = float(dcor.distance_correlation_sqr((score + 0.01 * mass).numpy(), mass.numpy()))
    print(
        f"dCor² on {int(background.sum())} background jets: heplearn {ours:.12f}, dcor {theirs:.12f}, "
        f"difference {abs(ours - theirs):.2e}"
    )

    print(f"{'model':12s} {'CE only [ms]':>14s} {'CE + DisCo [ms]':>16s} {'ratio':>7s}")
    worst: dict[str, float] = {}
    for name in arguments.models.split(","):
        batches = [batch_for(name, seed) for seed in range(3)]
        plain = step_for(name, [{"name": "cross_entropy"}])
        disco = step_for(name, [{"name": "cross_entropy"}, {"name": "disco", "weight": 10, "on": "jet_sdmass"}])
        time_steps(plain, batches, 2)
        time_steps(disco, batches, 2)  # warm-up
        plain_times, disco_times = [], []
        for _ in range(rounds):  # interleaved rounds
            plain_times.append(time_steps(plain, batches, steps))
            disco_times.append(time_steps(disco, batches, steps))
        reference, with_disco = statistics.median(plain_times), statistics.median(disco_times)
        ratio = with_disco / reference
        print(f"{name:12s} {1e3 * reference:14.1f} {1e3 * with_disco:16.1f} {ratio:7.2f}")
        if not worst or ratio > worst["ratio"]:
            worst = {"model": name, "ours": with_disco, "reference": reference, "ratio": ratio}  # type: ignore[dict-item]
    print(json.dumps(worst))


if __name__ == "__main__":
    main()
