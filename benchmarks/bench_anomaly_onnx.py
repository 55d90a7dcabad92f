"""Latency of the AXOL1TL-size anomaly encoder and throughput of the full VAE scorer: ONNX vs PyTorch eager.

The model is heplearn's ``vae`` (paper preset, the AXOL1TL v1 encoder: 57 inputs = MET, 4 e/γ,
4 μ and 10 jets as (pT, η, φ) → 32 → 16 → 13 latent means), with its task's postprocessing in the
graph, exactly as ``heplearn export`` writes it (``serving.export.DeployableModel`` +
``export_network``):

- "encoder": score ``latent_norm`` (Σμ², AXOL1TL's trigger score); the exported graph holds the
  encoder alone. Timed at batch 1, one event per call: the trigger's latency question.
- "full scorer": score ``mse``; the graph holds encoder, decoder and the reconstruction error.
  Timed at batch 1 and at ``--batch`` events per call (offline scoring: events/s), also with
  onnxruntime's I/O binding (input and output bound once to numpy buffers) and, as an A/B of
  ``heplearn.serving.graph_passes``, with the graph as the exporter wrote it (the task's slice of
  the ``[μ | log σ² | x̂]`` concatenation not folded).

Ours: onnxruntime on the exported file (``serving.engines.open_session``, one intra-op thread);
reference: the same module in PyTorch eager under ``torch.inference_mode`` (one thread). Timings
interleave ours and the reference (and every case) in ``--repeats`` rounds of at least ``--seconds``
each; the medians are the figures (the ratio of the bests is printed beside them).
The export runs in a child process, so the timed process never ran the tracer.

    python benchmarks/bench_anomaly_onnx.py [--quick]

The last line is JSON: ONNX and eager events/s of the encoder at batch 1, and their ratio (goal ≥ 2),
with the full scorer's ratio at ``--batch`` events per call.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import print_machine

from heplearn.models.vae import EventVAE
from heplearn.serving.engines import open_session
from heplearn.serving.export import DeployableModel, export_network
from heplearn.tasks import VariationalReconstruction

FEATURES = 57  # AXOL1TL v1: 19 objects × (pT, η, φ)
SCORES = {"encoder": "latent_norm", "full scorer": "mse"}


def build(score: str) -> DeployableModel:
    """The paper-preset VAE with its task's score in the graph (seed 0: same weights in every process)."""
    torch.manual_seed(0)
    network = EventVAE(FEATURES + 2 * 13, {"jet": FEATURES}, score=score).eval()
    task = VariationalReconstruction("jet", FEATURES, 13, score=score)
    return DeployableModel(network, ["jet"], None, task.postprocess).eval()


def export_all(folder: Path) -> None:
    """Both graphs into ``folder``, and the full scorer without the graph pass (run in a child process)."""
    import heplearn.models.part_export  # noqa: F401  (registers the custom op the exporter's translation table names)

    for score in SCORES.values():
        export_network(
            build(score), [torch.randn(2, FEATURES)], ["jet"], "anomaly_score", folder / f"{score}.onnx", [{0: "batch"}]
        )
    export_network(
        build("mse"),
        [torch.randn(2, FEATURES)],
        ["jet"],
        "anomaly_score",
        folder / "mse_unsimplified.onnx",
        [{0: "batch"}],
        simplify_graph=False,
    )


def rate(function: Callable[[], object], events_per_call: int, seconds: float) -> float:
    """Events per second of ``function`` over at least ``seconds`` (after one warm-up call)."""
    function()
    calls, started = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - started < seconds:
        function()
        calls += 1
    return calls * events_per_call / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="0.2 s rounds, 3 repeats")
    parser.add_argument("--seconds", type=float, default=0.5, help="seconds per timing")
    parser.add_argument("--repeats", type=int, default=11, help="interleaved rounds (medians reported)")
    parser.add_argument("--batch", type=int, default=1024, help="events per call of the throughput rows")
    parser.add_argument("--export-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_to:
        export_all(args.export_to)
        return
    print_machine()
    seconds, repeats = (0.2, 3) if args.quick else (args.seconds, args.repeats)
    torch.set_num_threads(1)
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, one thread each; "
        "timings on a shared, loaded machine",
        flush=True,
    )
    folder = Path(tempfile.mkdtemp(prefix="bench_anomaly_"))
    subprocess.run([sys.executable, __file__, "--export-to", str(folder)], check=True)
    rng = np.random.default_rng(0)
    # (row name, graph file, score, batch, I/O binding)
    cases = [
        ("encoder", "latent_norm", "latent_norm", 1, False),
        ("full scorer", "mse", "mse", 1, False),
        ("full scorer", "mse", "mse", args.batch, False),
        ("+ I/O bind", "mse", "mse", args.batch, True),
        ("no graph pass", "mse_unsimplified", "mse", args.batch, False),
    ]
    timed: list[tuple[str, int, Callable[[], object], Callable[[], object], float]] = []
    for name, graph, score, batch, bind in cases:
        module = build(score)
        session = open_session(folder / f"{graph}.onnx", threads=1)
        x = rng.normal(size=(batch, FEATURES)).astype(np.float32)
        tensor = torch.from_numpy(x)
        with torch.inference_mode():
            expected = module(tensor).numpy()
        if bind:  # inputs and outputs bound once to numpy buffers: no per-call allocation of the output
            got = np.empty_like(expected)
            binding = session.io_binding()
            binding.bind_cpu_input("jet", x)
            binding.bind_output(
                "anomaly_score", "cpu", element_type=np.float32, shape=got.shape, buffer_ptr=got.ctypes.data
            )

            def onnx_call(session: Any = session, binding: Any = binding, buffer: np.ndarray = got) -> object:
                session.run_with_iobinding(binding)  # writes into ``buffer``, which this closure keeps alive
                return buffer

            onnx_call()
        else:

            def onnx_call(session: Any = session, x: np.ndarray = x) -> object:
                return session.run(None, {"jet": x})

            got = session.run(None, {"jet": x})[0]
        difference = float(np.abs(got - expected).max())

        def eager(tensor: torch.Tensor = tensor, module: DeployableModel = module) -> object:
            with torch.inference_mode():
                return module(tensor)

        timed.append((name, batch, onnx_call, eager, difference))
    # rounds interleave every case's ONNX and eager timings, so that a slow spell of the shared
    # machine hits all of them alike; the medians are the figures, the bests beside them
    onnx_rates: list[list[float]] = [[] for _ in timed]
    eager_rates: list[list[float]] = [[] for _ in timed]
    for _ in range(repeats):
        for index, (_, batch, onnx_call, eager, _) in enumerate(timed):
            onnx_rates[index].append(rate(onnx_call, batch, seconds))
            eager_rates[index].append(rate(eager, batch, seconds))
    rows = []
    for index, (name, batch, _, _, difference) in enumerate(timed):
        onnx_median, eager_median = float(np.median(onnx_rates[index])), float(np.median(eager_rates[index]))
        rows.append(
            {
                "model": name,
                "batch": batch,
                "onnx_events_s": onnx_median,
                "eager_events_s": eager_median,
                "onnx_latency_us": 1e6 * batch / onnx_median,
                "eager_latency_us": 1e6 * batch / eager_median,
                "ratio": onnx_median / eager_median,
                "best_ratio": max(onnx_rates[index]) / max(eager_rates[index]),
                "max_difference": difference,
            }
        )
    print(
        f"{'model':<12} {'batch':>5} {'onnx ev/s':>12} {'eager ev/s':>12} {'onnx µs/call':>13} "
        f"{'eager µs/call':>14} {'ratio':>6} {'best':>6} {'max |Δ|':>9}"
    )
    for row in rows:
        print(
            f"{row['model']:<12} {row['batch']:>5} {row['onnx_events_s']:>12.4g} {row['eager_events_s']:>12.4g} "
            f"{row['onnx_latency_us']:>13.4g} {row['eager_latency_us']:>14.4g} "
            f"{row['ratio']:>6.2f} {row['best_ratio']:>6.2f} {row['max_difference']:>9.2g}"
        )
    encoder = rows[0]
    print(
        json.dumps(
            {
                "ours": round(encoder["onnx_events_s"], 1),
                "reference": round(encoder["eager_events_s"], 1),
                "ratio": round(encoder["ratio"], 2),
                "full_scorer_ratio": round(rows[2]["ratio"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
