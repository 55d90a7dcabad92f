"""Jets per second of the exported ONNX model in onnxruntime versus PyTorch eager, same weights, same jets.

ParticleNet and ParT with their paper presets, 7 particle features, 128 particle slots (about 50
real particles per jet, as in JetClass), at batch sizes 1, 64 and 1024. Ours: the graph written by
``heplearn.serving.export.export_network`` (softmax included) in onnxruntime; reference: the same
module in PyTorch eager under ``torch.inference_mode``. The session is the one heplearn's engines
and server open (``heplearn.serving.engines.open_session``). Both use every core (or ``--threads``);
timings interleave ours and the reference, best of ``--repeats`` rounds of at least ``--seconds``
each. Both get each batch cut to its longest jet, as heplearn's engines feed them (``OnnxEngine``
and ``TrainedModel.predict``): real particles come first, so only padding goes. The export runs in
a child process, so that the timed process never ran the tracer (whose global state could slow
eager PyTorch); both sides get the same weights from the same seed. ParT
at batch 1024 needs more than 10 GB (its 128 × 128 pair features), so it runs at 256 unless
``--part-1024`` is given; ``--quick`` uses 256 instead of 1024 for both models.

    python benchmarks/bench_infer.py [--quick]

The last line is JSON: ours and reference in jets/s at batch size 1 for the model where ONNX gains
least, and their ratio (target: ≥ 2).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from heplearn.models import registry
from heplearn.serving.engines import open_session, run_by_multiplicity
from heplearn.serving.export import DeployableModel, export_network
from heplearn.tasks import Classification

FEATURES = 7
PARTICLES = 128
MODELS = ("particlenet", "part")
BATCH_SIZES = (1, 64, 1024)


def jets(count: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    real = torch.clamp(torch.normal(50.0, 20.0, (count, 1), generator=generator), 10, PARTICLES).long()
    mask = torch.arange(PARTICLES)[None, :] < real
    pt = torch.rand(count, PARTICLES, generator=generator) * 30 + 0.5
    eta, phi = torch.randn(count, PARTICLES, 2, generator=generator).unbind(-1)
    eta, phi = eta * 0.2, phi * 0.2
    vectors = torch.stack([pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)], -1)
    particles = torch.randn(count, PARTICLES, FEATURES, generator=generator)
    zero = torch.zeros(())
    return {"particles": torch.where(mask[..., None], particles, zero),
            "points": torch.where(mask[..., None], torch.stack([eta, phi], -1), zero),
            "vectors": torch.where(mask[..., None], vectors, zero), "mask": mask}


def cut_to_longest(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch cut to its longest jet, as both of heplearn's engines feed their models."""
    longest = int(batch["mask"].sum(dim=1).max())
    return {key: value[:, :longest] for key, value in batch.items()}


def rate(function: Callable[[], object], jets_per_call: int, seconds: float, min_calls: int = 2,
         warm_up: bool = True) -> float:
    """Jets per second of ``function``, timed over at least ``seconds`` and ``min_calls`` calls."""
    time.sleep(0.3)  # let the other side's idle threads stop spinning: they would steal these cores
    if warm_up:
        function()
    calls, started = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - started < seconds:
        function()
        calls += 1
    return calls * jets_per_call / (time.perf_counter() - started)


def build(name: str) -> DeployableModel:
    """The paper-preset network with softmax, with the same weights in every process (seed 0)."""
    torch.manual_seed(0)
    network = registry.model_class(name).from_preset("paper", 2, {"particles": FEATURES, "points": 2, "vectors": 4})
    task = Classification(["signal", "background"])
    return DeployableModel(network.eval(), list(network.input_keys), None, task.postprocess).eval()


def export_all(folder: Path) -> None:
    """Export every model to ``folder`` (in a child process: the timed one never runs the tracer)."""
    for name in MODELS:
        module = build(name)
        example = jets(2)
        started = time.perf_counter()
        export_network(module, [example[key] for key in module.input_names], module.input_names, "probabilities",
                       folder / f"{name}.onnx", [{0: "batch", 1: "particles"} for _ in module.input_names])
        print(f"{name}: exported in {time.perf_counter() - started:.1f} s", flush=True)


def batch_sizes(name: str, part_1024: bool, quick: bool) -> tuple[int, ...]:
    # ParT's 128 x 128 pair features at 1024 jets need well over 10 GB: opt in with --part-1024
    return BATCH_SIZES if not quick and (name != "part" or part_1024) else (1, 64, 256)


CALL_SIZES = (32, 128, 512)


def print_call_sizes(name: str, session: onnxruntime.InferenceSession, keys: list[str], seconds: float) -> None:
    """Jets/s of heplearn's engines on 512 jets (padded to 128 slots, in random order) when they
    sort them by multiplicity and call the model on ``CALL_SIZES`` jets at a time, each call cut
    to its longest jet: what ``JETS_PER_CALL`` is chosen from."""
    feed = {key: values.numpy() for key, values in jets(max(CALL_SIZES), seed=7).items() if key in keys}
    rates = [rate(lambda size=size: run_by_multiplicity(lambda batch: session.run(None, batch), feed, size),
                  len(feed["mask"]), seconds) for size in CALL_SIZES]
    print(f"{name:<12}engine calls of {', '.join(map(str, CALL_SIZES))} jets: "
          + ", ".join(f"{value:.0f}" for value in rates) + " jets/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="about a minute: shorter timings, one round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=0, help="threads for both sides (0: the defaults)")
    parser.add_argument("--part-1024", action="store_true", help="also run ParT at batch 1024 (> 10 GB)")
    parser.add_argument("--export-to", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.export_to is not None:
        export_all(arguments.export_to)
        return
    repeats, seconds, min_calls = (1, 1.0, 1) if arguments.quick else (arguments.repeats, arguments.seconds, 2)
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    summary: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, __file__, "--export-to", folder], check=True, timeout=1800)
        print(f"threads: torch {torch.get_num_threads()}, onnxruntime {arguments.threads or 'default'}; "
              f"{PARTICLES} particle slots, "
              f"{FEATURES} features")
        print(f"{'model':<12}{'batch':>6}{'onnx jets/s':>14}{'eager jets/s':>14}{'ratio':>8}")
        for name in MODELS:
            module = build(name)
            keys = module.input_names
            # the session heplearn's engines and server open (same options), on the same threads
            session = open_session(Path(folder) / f"{name}.onnx", arguments.threads or None)
            for batch_size in batch_sizes(name, arguments.part_1024, arguments.quick):
                batch = cut_to_longest(jets(batch_size, seed=batch_size))
                feed = {key: batch[key].numpy() for key in keys}
                tensors = [batch[key] for key in keys]

                def eager(tensors: list[torch.Tensor] = tensors, module: torch.nn.Module = module) -> object:
                    with torch.inference_mode():
                        return module(*tensors)

                def onnx(feed: dict[str, np.ndarray] = feed, session: onnxruntime.InferenceSession = session
                         ) -> object:
                    return session.run(None, feed)

                if batch_size == 1:  # same weights in both: the answers agree
                    np.testing.assert_allclose(onnx()[0], eager().numpy(), atol=1e-4)  # type: ignore[index,attr-defined]
                ours, reference = 0.0, 0.0
                for _ in range(repeats):  # interleaved
                    warm_up = not arguments.quick or batch_size <= 64
                    ours = max(ours, rate(onnx, batch_size, seconds, min_calls, warm_up))
                    reference = max(reference, rate(eager, batch_size, seconds, min_calls, warm_up))
                print(f"{name:<12}{batch_size:>6}{ours:>14.0f}{reference:>14.0f}{ours / reference:>8.2f}", flush=True)
                if batch_size == 1:
                    summary[name] = (ours, reference)
            if not arguments.quick:
                print_call_sizes(name, session, keys, seconds)
    worst = min(summary, key=lambda key: summary[key][0] / summary[key][1])
    ours, reference = summary[worst]
    print(json.dumps({"ours": round(ours, 1), "reference": round(reference, 1), "ratio": round(ours / reference, 3),
                      "metric": f"jets/s at batch size 1, {worst} (the model where ONNX gains least)"}))


if __name__ == "__main__":
    main()
