"""Throughput and latency of the inference service against in-process onnxruntime on the same batches.

A ParticleNet (``--preset``, 7 features, 128 particle slots) is exported with
``heplearn.serving.export.export_network`` and served by ``heplearn.serving.server.serve`` in a
separate process on 127.0.0.1 (dynamic batching on). 1, 8 and 32 concurrent clients, each a thread
with its own ``tritonclient.http`` client using the default binary tensors, send requests of
``--jets`` jets. The reference ("the limit") is onnxruntime in this process running the same
requests one after the other, each run as the server runs a batch (jets sorted by multiplicity, in
calls of at most ``JETS_PER_CALL`` jets cut to their longest jet), measured just before each service
run. Every loop is bounded in requests and in time.

    python benchmarks/bench_serve.py [--quick]

The last line is JSON: ours (service jets/s at 32 clients), reference (in-process jets/s) and
their ratio (target: ≥ 0.7).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
import tritonclient.http as triton_http
from machine import print_machine

from heplearn.models import registry
from heplearn.serving.batching import DEFAULT_MAX_BATCH_SIZE
from heplearn.serving.engines import open_session, run_by_multiplicity
from heplearn.serving.export import DeployableModel, export_network
from heplearn.tasks import Classification

FEATURES = 7
PARTICLES = 128
CLIENTS = (1, 8, 32)
KEYS = ("particles", "points", "mask")


def requests(count: int, jets: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    made = []
    for _ in range(count):
        mask = np.arange(PARTICLES)[None, :] < np.clip(rng.normal(50, 20, (jets, 1)), 10, PARTICLES)
        particles = np.where(mask[..., None], rng.normal(size=(jets, PARTICLES, FEATURES)), 0).astype(np.float32)
        points = np.where(mask[..., None], rng.normal(0, 0.2, (jets, PARTICLES, 2)), 0).astype(np.float32)
        made.append({"particles": particles, "points": points, "mask": mask})
    return made


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(model: Path, port: int, delay_ms: float, max_batch_size: int) -> subprocess.Popen[bytes]:
    code = (
        "from heplearn.serving.server import serve; "
        f"serve([{str(model)!r}], port={port}, max_queue_delay_ms={delay_ms}, max_batch_size={max_batch_size})"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONWARNINGS": "ignore"})
    client = triton_http.InferenceServerClient(f"127.0.0.1:{port}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if client.is_server_ready():
                return process
        except Exception:  # not listening yet
            time.sleep(0.2)
        if process.poll() is not None:
            break
    process.terminate()
    raise RuntimeError("the inference server did not start")


def percentiles(latencies: list[float]) -> tuple[float, float]:
    values = np.asarray(latencies) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def in_process(
    session: onnxruntime.InferenceSession, batches: list[dict[str, np.ndarray]], total: int, seconds: float
) -> tuple[float, list[float]]:
    """Jets/s and per-call latencies of onnxruntime running the requests one by one, each as the
    server runs a batch (sorted by multiplicity, cut to its longest jet)."""
    latencies: list[float] = []
    jets = 0
    started = time.perf_counter()
    for index in range(total):
        if time.perf_counter() - started > seconds:
            break
        batch = batches[index % len(batches)]
        begin = time.perf_counter()
        run_by_multiplicity(lambda feed: session.run(None, feed), batch)
        latencies.append(time.perf_counter() - begin)
        jets += len(batch["mask"])
    return jets / (time.perf_counter() - started), latencies


def service(
    address: str, clients: int, batches: list[dict[str, np.ndarray]], per_client: int, seconds: float
) -> tuple[float, list[float]]:
    """Jets/s and per-request latencies of ``clients`` concurrent tritonclient clients."""
    latencies: list[float] = []
    counts = [0] * clients
    errors: list[BaseException] = []
    lock = threading.Lock()
    started = time.perf_counter()

    def loop(client_id: int) -> None:
        client = triton_http.InferenceServerClient(address, network_timeout=60)
        try:
            for index in range(per_client):
                if time.perf_counter() - started > seconds:
                    break
                batch = batches[(client_id * per_client + index) % len(batches)]
                inputs = []
                for name in KEYS:
                    tensor = triton_http.InferInput(name, list(batch[name].shape), "BOOL" if name == "mask" else "FP32")
                    tensor.set_data_from_numpy(batch[name])
                    inputs.append(tensor)
                begin = time.perf_counter()
                client.infer("particlenet", inputs).as_numpy("probabilities")
                elapsed = time.perf_counter() - begin
                with lock:
                    latencies.append(elapsed)
                counts[client_id] += len(batch["mask"])
        except BaseException as error:  # reported after the run
            errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=loop, args=(client,)) for client in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    if errors:
        raise errors[0]
    return sum(counts) / (time.perf_counter() - started), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="about a minute")
    parser.add_argument("--preset", default="lite", help="ParticleNet preset: lite, paper or small")
    parser.add_argument("--jets", type=int, default=16, help="jets per request")
    parser.add_argument("--requests", type=int, default=200, help="requests per level (bounded by --seconds)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time budget per level and side")
    parser.add_argument("--delay-ms", type=float, default=1.0, help="server max_queue_delay_ms")
    parser.add_argument("--max-batch-size", type=int, default=DEFAULT_MAX_BATCH_SIZE, help="server max_batch_size")
    arguments = parser.parse_args()
    print_machine()
    total, seconds = (96, 6.0) if arguments.quick else (arguments.requests, arguments.seconds)
    torch.manual_seed(0)
    network = (
        registry.model_class("particlenet")
        .from_preset(arguments.preset, 2, {"particles": FEATURES, "points": 2})
        .eval()
    )
    module = DeployableModel(network, KEYS, None, Classification(["signal", "background"]).postprocess)
    batches = requests(32, arguments.jets)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "particlenet.onnx"
        example = [torch.from_numpy(batches[0][key][:2]) for key in KEYS]
        export_network(module, example, KEYS, "probabilities", path, [{0: "batch", 1: "particles"}] * 3)
        session = open_session(path)
        port = free_port()
        server = start_server(path, port, arguments.delay_ms, arguments.max_batch_size)
        try:
            print(
                f"ParticleNet-{arguments.preset}, {arguments.jets} jets of {PARTICLES} slots per request, "
                f"server max_queue_delay {arguments.delay_ms} ms, max_batch_size {arguments.max_batch_size}"
            )
            print(
                f"{'clients':>8}{'service jets/s':>16}{'p50 ms':>9}{'p99 ms':>9}"
                f"{'in-process jets/s':>19}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}"
            )
            in_process(session, batches, 5, seconds)  # warm-up
            service(f"127.0.0.1:{port}", 1, batches, 3, seconds)
            result: dict[str, float] = {}
            for clients in CLIENTS:
                reference, reference_latencies = in_process(session, batches, total, seconds)
                ours, latencies = service(f"127.0.0.1:{port}", clients, batches, max(total // clients, 2), seconds)
                p50, p99 = percentiles(latencies)
                r50, r99 = percentiles(reference_latencies)
                print(
                    f"{clients:>8}{ours:>16.0f}{p50:>9.1f}{p99:>9.1f}{reference:>19.0f}{r50:>9.1f}{r99:>9.1f}"
                    f"{ours / reference:>8.2f}"
                )
                result = {"ours": round(ours, 1), "reference": round(reference, 1), "ratio": round(ours / reference, 3)}
        finally:
            server.terminate()
            server.wait(60)
    print(json.dumps({**result, "metric": "jets/s at 32 concurrent clients"}))


if __name__ == "__main__":
    main()
