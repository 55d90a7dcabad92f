"""Requests beyond the limits are refused with 400 before any compute, and the server's memory stays bounded.

Issue 15: one ParticleNet request of 1 jet × 10,000 particles (0.37 MB) raised the server's
resident memory from 0.66 to 2.98 GB, and it stayed there (ParticleNet's k-NN is quadratic in
the particle axis). Now a jet may hold at most the particle length the run was trained with.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from heplearn.run_config import load_run_config
from heplearn.serving.export import ExportResult, export_run
from heplearn.serving.server import BackgroundServer
from heplearn.training.from_config import train
from tests.serving.conftest import LENGTH, run_config

OVERSIZE_PARTICLES = 10_000
RSS_GROWTH_BOUND_MB = 60.0


@pytest.fixture(scope="module")
def particlenet_run(split_files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = run_config(split_files, {"name": "particlenet", "preset": "small"})
    config["data"]["inputs"]["points"] = {"length": LENGTH, "variables": ["part_deta", "part_dphi"]}
    run = train(
        load_run_config(config), name="particlenet", runs_dir=tmp_path_factory.mktemp("pn-runs"), progress=False
    ).run_dir
    export_run(run)
    return run


@pytest.fixture(scope="module")
def server(pfn_export: ExportResult, mlp_export: ExportResult) -> Iterator[BackgroundServer]:
    sources = [pfn_export.onnx_path.parent, mlp_export.onnx_path.parent]
    with BackgroundServer(sources, max_jets_per_request=64) as running:
        yield running


def _request(metadata: dict[str, object], jets: int, particles: int) -> dict[str, object]:
    """A JSON request for every input of the model (``metadata`` as the server reports it)."""
    inputs = []
    for spec in metadata["inputs"]:  # type: ignore[attr-defined]
        shape = [jets] + [particles if size == -1 else size for size in spec["shape"][1:]]
        count = int(np.prod(shape))
        data: list[object] = [True] * count if spec["datatype"] == "BOOL" else [0.5] * count
        inputs.append({"name": spec["name"], "shape": shape, "datatype": spec["datatype"], "data": data})
    return {"inputs": inputs}


def test_oversize_requests_get_400_before_any_compute(server: BackgroundServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        metadata = client.get("/v2/models/pfn").json()
        assert metadata["parameters"]["max_particles_per_jet"] == LENGTH  # the run's particle length
        assert metadata["parameters"]["max_jets_per_request"] == 64
        config = client.get("/v2/models/pfn/config").json()
        assert config["parameters"]["max_particles_per_jet"] == {"string_value": str(LENGTH)}
        before = server.statistics["pfn"].requests
        assert client.post("/v2/models/pfn/infer", json=_request(metadata, 2, LENGTH)).status_code == 200
        too_long = client.post("/v2/models/pfn/infer", json=_request(metadata, 1, LENGTH + 1))
        assert too_long.status_code == 400
        assert f"{LENGTH + 1} particles per jet; this model takes at most {LENGTH}" in too_long.json()["error"]
        too_many = client.post("/v2/models/pfn/infer", json=_request(metadata, 65, 3))
        assert too_many.status_code == 400 and "65 jets in one request" in too_many.json()["error"]
        assert server.statistics["pfn"].requests == before + 1  # the refused ones never reached the model


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's RSS from /proc")
def test_server_memory_stays_bounded_under_a_loop_of_oversize_requests(particlenet_run: Path, tmp_path: Path) -> None:
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "heplearn", "serve", str(particlenet_run), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
            metadata = client.get("/v2/models/particlenet").json()
            for _ in range(5):  # warm up on accepted requests at the limit
                assert (
                    client.post("/v2/models/particlenet/infer", json=_request(metadata, 32, LENGTH)).status_code == 200
                )
            baseline = _rss_mb(process.pid)
            oversize = _request(metadata, 1, OVERSIZE_PARTICLES)
            peak = baseline
            for _ in range(40):
                answer = client.post("/v2/models/particlenet/infer", json=oversize)
                assert answer.status_code == 400 and "particles per jet" in answer.json()["error"]
                peak = max(peak, _rss_mb(process.pid))
        print(
            f"server RSS: {baseline:.0f} MB after warm-up, {peak:.0f} MB at most during 40 requests of "
            f"1 jet x {OVERSIZE_PARTICLES} particles"
        )
        assert peak - baseline < RSS_GROWTH_BOUND_MB
    finally:
        process.terminate()
        process.wait(30)
        log.close()
