"""The KServe v2 / Triton HTTP service, exercised with the real ``tritonclient.http`` client."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from heplearn.errors import DataError
from heplearn.serving.engines import OnnxEngine
from heplearn.serving.export import ExportResult
from heplearn.serving.server import BackgroundServer
from heplearn.serving.triton import find_models

LOAD_CLIENTS = 32
REQUESTS_PER_CLIENT = 6


@pytest.fixture(scope="module")
def server(pfn_export: ExportResult, mlp_export: ExportResult) -> Iterator[BackgroundServer]:
    """A Triton repository (pfn) and a run directory (mlp) behind one server on a free port."""
    assert pfn_export.triton_model is not None
    sources = [pfn_export.triton_model.parent, mlp_export.onnx_path.parent]
    with BackgroundServer(sources, max_request_bytes=200_000, max_queue_delay_ms=2.0) as running:
        yield running


def _jets(count: int, particles: int = 24, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.arange(particles)[None, :] < rng.integers(3, particles + 1, (count, 1))
    values = (rng.normal(0, 0.3, (count, particles, 3)) + np.array([0, 0, 2])).astype(np.float32)
    return {"particles": np.where(mask[..., None], values, 0).astype(np.float32), "mask": mask}


def _inputs(arrays: dict[str, np.ndarray], binary: bool = True) -> list[triton_http.InferInput]:
    inputs = []
    for name, values in arrays.items():
        tensor = triton_http.InferInput(name, list(values.shape), "BOOL" if values.dtype == bool else "FP32")
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_health_and_metadata(server: BackgroundServer) -> None:
    client = triton_http.InferenceServerClient(server.address)
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["extensions"]
    assert client.is_model_ready("pfn") and client.is_model_ready("mlp")
    metadata = client.get_model_metadata("pfn")
    assert metadata["inputs"] == [
        {"name": "particles", "datatype": "FP32", "shape": [-1, -1, 3]},
        {"name": "mask", "datatype": "BOOL", "shape": [-1, -1]},
    ]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
    assert metadata["parameters"]["class_names"] == ["top", "qcd"]
    assert client.get_model_config("mlp")["input"][0]["dims"] == [2]
    assert client.get_model_config("mlp")["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
    assert {model["name"] for model in client.get_model_repository_index()} == {"pfn", "mlp"}
    client.close()


def test_infer_with_default_client_settings_and_with_json(server: BackgroundServer, pfn_export: ExportResult) -> None:
    arrays = _jets(5)
    expected = OnnxEngine(pfn_export.onnx_path).run(arrays)
    client = triton_http.InferenceServerClient(server.address)
    result = client.infer("pfn", _inputs(arrays))  # binary inputs and outputs, tritonclient's default
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-6)
    as_json = client.infer(
        "pfn",
        _inputs(arrays, binary=False),
        model_version="1",
        outputs=[triton_http.InferRequestedOutput("probabilities", binary_data=False)],
    )
    assert "data" in as_json.get_response()["outputs"][0]
    np.testing.assert_allclose(as_json.as_numpy("probabilities"), expected, atol=1e-6)
    compressed = client.infer("pfn", _inputs(arrays), request_compression_algorithm="gzip")
    np.testing.assert_allclose(compressed.as_numpy("probabilities"), expected, atol=1e-6)
    jet = triton_http.InferInput("jet", [2, 2], "FP32")
    jet.set_data_from_numpy(np.array([[80, 20], [170, 50]], np.float32))
    assert client.infer("mlp", [jet]).as_numpy("probabilities").shape == (2, 2)
    client.close()


@pytest.mark.parametrize(
    ("model", "arrays", "status", "message"),
    [
        ("nope", None, 404, "unknown model 'nope'"),
        (
            "pfn",
            {"particles": np.zeros((2, 4, 3), np.float32), "mask_typo": np.ones((2, 4), bool)},
            400,
            "unknown input 'mask_typo'",
        ),
        (
            "pfn",
            {"particles": np.zeros((2, 4, 5), np.float32), "mask": np.ones((2, 4), bool)},
            400,
            r"has shape \[2, 4, 5\], expected \[-1, -1, 3\]",
        ),
        (
            "pfn",
            {"particles": np.zeros((2, 4, 3), np.float32), "mask": np.ones((2, 4), np.float32)},
            400,
            "'mask' must be BOOL, got FP32",
        ),
        (
            "pfn",
            {"particles": np.zeros((2, 4, 3), np.float32), "mask": np.ones((3, 4), bool)},
            400,
            "disagree on the batch size",
        ),
        (
            "pfn",
            {"particles": np.zeros((500, 40, 3), np.float32), "mask": np.ones((500, 40), bool)},
            413,
            "at most 200000",
        ),
    ],
)
def test_bad_requests_get_clear_4xx_answers(
    server: BackgroundServer, model: str, arrays: dict[str, np.ndarray] | None, status: int, message: str
) -> None:
    client = triton_http.InferenceServerClient(server.address)
    with pytest.raises(InferenceServerException, match=message) as caught:
        client.infer(model, _inputs(arrays if arrays is not None else _jets(2)))
    assert caught.value.status() == str(status)
    client.close()


def test_malformed_bodies_and_unknown_routes(server: BackgroundServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        bad_json = client.post("/v2/models/pfn/infer", content=b"{not json")
        assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]
        no_inputs = client.post("/v2/models/pfn/infer", json={"outputs": []})
        assert no_inputs.status_code == 400 and "inputs" in no_inputs.json()["error"]
        short = client.post(
            "/v2/models/pfn/infer",
            json={
                "inputs": [
                    {"name": "particles", "shape": [1, 2, 3], "datatype": "FP32", "data": [1, 2]},
                    {"name": "mask", "shape": [1, 2], "datatype": "BOOL", "data": [True, False]},
                ]
            },
        )
        assert short.status_code == 400 and "2 values for shape [1, 2, 3]" in short.json()["error"]
        strings = client.post(
            "/v2/models/pfn/infer",
            json={"inputs": [{"name": "particles", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
        )
        assert strings.status_code == 400 and "unsupported datatype 'BYTES'" in strings.json()["error"]
        bomb = gzip.compress(b" " * 300_000)  # small on the wire, too large once inflated
        inflated = client.post("/v2/models/pfn/infer", content=bomb, headers={"Content-Encoding": "gzip"})
        assert inflated.status_code == 413
        assert client.get("/v2/nothing/here").status_code == 404
        assert client.get("/v2/models/pfn/versions/7").status_code == 404
        plain = client.post(
            "/v2/models/mlp/infer",
            content=json.dumps(
                {"id": "r1", "inputs": [{"name": "jet", "shape": [1, 2], "datatype": "FP32", "data": [[90.0, 30.0]]}]}
            ),
        )
        assert plain.status_code == 200 and plain.json()["id"] == "r1"
        assert plain.json()["outputs"][0]["shape"] == [1, 2]


def test_32_concurrent_clients_get_the_in_process_answers(server: BackgroundServer, pfn_export: ExportResult) -> None:
    engine = OnnxEngine(pfn_export.onnx_path)
    requests = {
        (client, index): _jets(1 + (client + index) % 4, seed=client * 100 + index)
        for client in range(LOAD_CLIENTS)
        for index in range(REQUESTS_PER_CLIENT)
    }
    expected = {key: engine.run(arrays) for key, arrays in requests.items()}
    answers: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []
    batches_before = server.statistics["pfn"].batches
    deadline = time.monotonic() + 60

    def client_loop(client_id: int) -> None:
        client = triton_http.InferenceServerClient(server.address, network_timeout=30)
        try:
            for index in range(REQUESTS_PER_CLIENT):
                if time.monotonic() > deadline:
                    raise TimeoutError("load test over its time budget")
                result = client.infer("pfn", _inputs(requests[client_id, index]))
                answers[client_id, index] = result.as_numpy("probabilities")
        except BaseException as error:  # collected and re-raised in the test thread
            errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop, args=(client,)) for client in range(LOAD_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not errors, errors[:3]
    assert len(answers) == LOAD_CLIENTS * REQUESTS_PER_CLIENT
    for key, answer in answers.items():
        np.testing.assert_allclose(answer, expected[key], atol=1e-6, err_msg=str(key))
    statistics = server.statistics["pfn"]
    batches = statistics.batches - batches_before
    assert batches < LOAD_CLIENTS * REQUESTS_PER_CLIENT  # concurrent requests were batched together


def test_graceful_shutdown_answers_requests_in_flight(pfn_export: ExportResult) -> None:
    assert pfn_export.triton_model is not None
    slow = BackgroundServer([pfn_export.triton_model.parent], max_queue_delay_ms=500).start()
    outcome: dict[str, object] = {}

    def request() -> None:
        client = triton_http.InferenceServerClient(slow.address, network_timeout=30)
        try:
            outcome["result"] = client.infer("pfn", _inputs(_jets(3))).as_numpy("probabilities")
        except BaseException as error:
            outcome["error"] = error
        finally:
            client.close()

    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(0.2)  # the request now waits in the batcher's queue (500 ms)
    slow.stop()
    thread.join(30)
    assert "error" not in outcome, outcome
    assert np.asarray(outcome["result"]).shape == (3, 2)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{slow.url}/v2/health/live", timeout=2)


def test_sources_are_found_or_refused(pfn_export: ExportResult, cuts_run: Path, tmp_path: Path) -> None:
    runs = pfn_export.onnx_path.parent.parent  # a directory of exported runs
    assert {model.name for model in find_models(runs)} >= {"pfn", "mlp"}
    assert find_models(pfn_export.onnx_path)[0].name == "pfn"
    with pytest.raises(DataError, match="export it first"):
        find_models(cuts_run)
    with pytest.raises(DataError, match="no model found"):
        find_models(tmp_path)
