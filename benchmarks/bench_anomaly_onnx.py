"""Latency of the AXOL1TL-size anomaly encoder and throughput of the full VAE scorer: ONNX vs PyTorch eager.

The model is heplearn's ``vae`` (paper preset, the AXOL1TL v1 encoder: 57 inputs = MET, 4 e/γ,
4 μ and 10 jets as (pT, η, φ) → 32 → 16 → 13 latent means), with its task's postprocessing in the
graph, exactly as ``heplearn export`` writes it (``serving.export.DeployableModel`` +
``export_network``):

- "encoder": score ``latent_norm`` (Σμ², AXOL1TL's trigger score); the exported graph holds the
  encoder alone. Timed at batch 1, one event per call: the trigger's latency question.
- "full scorer": score ``mse``; the graph holds encoder, decoder and the reconstruction error.
  Timed at batch 1 and at ``--batch`` events per call (offline scoring: events/s).

Ours: onnxruntime on the exported file (``serving.engines.open_session``, one intra-op thread);
reference: the same module in PyTorch eager under ``torch.inference_mode`` (one thread). Timings
interleave ours and the reference, best of ``--repeats`` rounds of at least ``--seconds`` each.
The export runs in a child process, so the timed process never ran the tracer.

    python benchmarks/bench_anomaly_onnx.py [--quick]

The last line is JSON: ONNX and eager events/s of the encoder at batch 1, and their ratio (goal ≥ 2).
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
    """Both graphs into ``folder`` (run in a child process)."""
    import heplearn.models.part  # noqa: F401  (registers the custom op the exporter's translation table names)

    for score in SCORES.values():
        export_network(
            build(score), [torch.randn(2, FEATURES)], ["jet"], "anomaly_score", folder / f"{score}.onnx", [{0: "batch"}]
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
    parser.add_argument("--quick", action="store_true", help="0.3 s rounds, 2 repeats")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1024, help="events per call of the throughput rows")
    parser.add_argument("--export-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_to:
        export_all(args.export_to)
        return
    print_machine()
    seconds, repeats = (0.3, 2) if args.quick else (args.seconds, args.repeats)
    torch.set_num_threads(1)
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, one thread each; "
        "timings on a shared, loaded machine",
        flush=True,
    )
    folder = Path(tempfile.mkdtemp(prefix="bench_anomaly_"))
    subprocess.run([sys.executable, __file__, "--export-to", str(folder)], check=True)
    rng = np.random.default_rng(0)
    rows = []
    for name, score in SCORES.items():
        module = build(score)
        session = open_session(folder / f"{score}.onnx", threads=1)
        for batch in (1,) if name == "encoder" else (1, args.batch):
            x = rng.normal(size=(batch, FEATURES)).astype(np.float32)
            tensor = torch.from_numpy(x)
            with torch.inference_mode():
                expected = module(tensor).numpy()
            got = session.run(None, {"jet": x})[0]
            difference = float(np.abs(got - expected).max())

            def eager(tensor: torch.Tensor = tensor, module: DeployableModel = module) -> object:
                with torch.inference_mode():
                    return module(tensor)

            onnx_rates, eager_rates = [], []
            for _ in range(repeats):
                onnx_rates.append(rate(lambda x=x, session=session: session.run(None, {"jet": x}), batch, seconds))
                eager_rates.append(rate(eager, batch, seconds))
            onnx_best, eager_best = max(onnx_rates), max(eager_rates)
            rows.append(
                {
                    "model": name,
                    "batch": batch,
                    "onnx_events_s": onnx_best,
                    "eager_events_s": eager_best,
                    "onnx_latency_us": 1e6 * batch / onnx_best,
                    "eager_latency_us": 1e6 * batch / eager_best,
                    "ratio": onnx_best / eager_best,
                    "max_difference": difference,
                }
            )
    print(
        f"{'model':<12} {'batch':>5} {'onnx ev/s':>12} {'eager ev/s':>12} {'onnx µs/call':>13} "
        f"{'eager µs/call':>14} {'ratio':>6} {'max |Δ|':>9}"
    )
    for row in rows:
        print(
            f"{row['model']:<12} {row['batch']:>5} {row['onnx_events_s']:>12.4g} {row['eager_events_s']:>12.4g} "
            f"{row['onnx_latency_us']:>13.4g} "
            f"{row['eager_latency_us']:>14.4g} {row['ratio']:>6.2f} {row['max_difference']:>9.2g}"
        )
    encoder = rows[0]
    print(
        json.dumps(
            {
                "ours": round(encoder["onnx_events_s"], 1),
                "reference": round(encoder["eager_events_s"], 1),
                "ratio": round(encoder["ratio"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
