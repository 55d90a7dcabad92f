"""Triton's gRPC inference service, exercised with the real ``tritonclient.grpc`` client."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from heplearn.cli import main
from heplearn.errors import HeplearnError
from heplearn.serving.engines import OnnxEngine
from heplearn.serving.export import ExportResult
from heplearn.serving.grpc_service import start_grpc_server
from heplearn.serving.server import BackgroundServer, create_app, serve

pytestmark = pytest.mark.heavy  # a gRPC server and the Triton client: `make test` (CI) runs it, plain pytest not

LOAD_CLIENTS = 16
REQUESTS_PER_CLIENT = 4


@pytest.fixture(scope="module")
def server(pfn_export: ExportResult, mlp_export: ExportResult) -> Iterator[BackgroundServer]:
    """A Triton repository (pfn) and a run directory (mlp) behind HTTP and gRPC on free ports."""
    assert pfn_export.triton_model is not None
    sources = [pfn_export.triton_model.parent, mlp_export.onnx_path.parent]
    with BackgroundServer(sources, grpc_port=0, max_request_bytes=200_000, max_queue_delay_ms=2.0) as running:
        yield running


@pytest.fixture
def client(server: BackgroundServer) -> Iterator[triton_grpc.InferenceServerClient]:
    with triton_grpc.InferenceServerClient(server.grpc_address) as connected:
        yield connected


def _jets(count: int, particles: int = 24, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.arange(particles)[None, :] < rng.integers(3, particles + 1, (count, 1))
    values = (rng.normal(0, 0.3, (count, particles, 3)) + np.array([0, 0, 2])).astype(np.float32)
    return {"particles": np.where(mask[..., None], values, 0).astype(np.float32), "mask": mask}


def _inputs(arrays: dict[str, np.ndarray], module: Any = triton_grpc) -> list[Any]:
    """tritonclient inputs (``module``: ``tritonclient.grpc`` or ``.http``) holding ``arrays``."""
    inputs = []
    for name, values in arrays.items():
        tensor = module.InferInput(name, list(values.shape), "BOOL" if values.dtype == bool else "FP32")
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    return inputs


def test_health_metadata_and_config(client: triton_grpc.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata().name == "heplearn"
    assert client.is_model_ready("pfn") and client.is_model_ready("mlp", "1")
    assert not client.is_model_ready("nope") and not client.is_model_ready("pfn", "7")
    metadata = client.get_model_metadata("pfn", as_json=True)
    assert metadata["platform"] == "onnxruntime_onnx" and metadata["versions"] == ["1"]
    assert metadata["inputs"] == [
        {"name": "particles", "datatype": "FP32", "shape": ["-1", "-1", "3"]},
        {"name": "mask", "datatype": "BOOL", "shape": ["-1", "-1"]},
    ]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": ["-1", "2"]}]
    config = client.get_model_config("mlp").config
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert config.max_batch_size > 0 and list(config.input[0].dims) == [2]
    assert {model.name for model in client.get_model_repository_index().models} == {"pfn", "mlp"}
    with pytest.raises(InferenceServerException, match="unknown model 'nope'") as caught:
        client.get_model_metadata("nope")
    assert caught.value.status() == "StatusCode.NOT_FOUND"


def test_infer_equals_the_in_process_result(
    client: triton_grpc.InferenceServerClient, pfn_export: ExportResult
) -> None:
    arrays = _jets(5)
    expected = OnnxEngine(pfn_export.onnx_path).run(arrays)
    result = client.infer("pfn", _inputs(arrays), request_id="r7")  # raw_input_contents: tritonclient's default
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-6)
    assert result.get_response().id == "r7" and result.get_response().model_version == "1"
    requested = client.infer(
        "pfn", _inputs(arrays), model_version="1", outputs=[triton_grpc.InferRequestedOutput("probabilities")]
    )
    np.testing.assert_allclose(requested.as_numpy("probabilities"), expected, atol=1e-6)
    jet = triton_grpc.InferInput("jet", [2, 2], "FP32")
    jet.set_data_from_numpy(np.array([[80, 20], [170, 50]], np.float32))
    assert client.infer("mlp", [jet]).as_numpy("probabilities").shape == (2, 2)


def test_typed_contents_are_read_like_raw_ones(server: BackgroundServer, pfn_export: ExportResult) -> None:
    arrays = _jets(3, particles=6, seed=4)
    request = service_pb2.ModelInferRequest(model_name="pfn")
    particles = request.inputs.add(name="particles", datatype="FP32", shape=arrays["particles"].shape)
    particles.contents.fp32_contents.extend(arrays["particles"].ravel().tolist())
    mask = request.inputs.add(name="mask", datatype="BOOL", shape=arrays["mask"].shape)
    mask.contents.bool_contents.extend(arrays["mask"].ravel().tolist())
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(request, timeout=30)
        assert [output.name for output in response.outputs] == ["probabilities"]
        scores = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(response.outputs[0].shape)
        np.testing.assert_allclose(scores, OnnxEngine(pfn_export.onnx_path).run(arrays), atol=1e-6)
        del mask.contents.bool_contents[-1]
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "17 values for shape [3, 6] (18 expected)" in caught.value.details()


@pytest.mark.parametrize(
    ("model", "arrays", "status", "message"),
    [
        ("nope", None, "NOT_FOUND", "unknown model 'nope'"),
        (
            "pfn",
            {"particles": np.zeros((2, 4, 3), np.float32), "mask_typo": np.ones((2, 4), bool)},
            "INVALID_ARGUMENT",
            "unknown input 'mask_typo'",
        ),
        (
            "pfn",
            {"particles": np.zeros((2, 4, 5), np.float32), "mask": np.ones((2, 4), bool)},
            "INVALID_ARGUMENT",
            r"has shape \[2, 4, 5\], expected \[-1, -1, 3\]",
        ),
        (
            "pfn",
            {"particles": np.zeros((2, 4, 3), np.float32), "mask": np.ones((2, 4), np.float32)},
            "INVALID_ARGUMENT",
            "'mask' must be BOOL, got FP32",
        ),
        (
            "pfn",
            {"particles": np.zeros((2, 4, 3), np.float32), "mask": np.ones((3, 4), bool)},
            "INVALID_ARGUMENT",
            "disagree on the batch size",
        ),
        (
            "pfn",
            {"particles": np.zeros((500, 40, 3), np.float32), "mask": np.ones((500, 40), bool)},
            "RESOURCE_EXHAUSTED",
            r"larger than max \(\d+ vs. 200000\)",
        ),
        (
            "pfn",
            {"particles": np.zeros((1, 25, 3), np.float32), "mask": np.ones((1, 25), bool)},
            "INVALID_ARGUMENT",
            "25 particles per jet; this model takes at most 24",
        ),
        (
            "pfn",
            {"particles": np.full((1, 4, 3), np.nan, np.float32), "mask": np.ones((1, 4), bool)},
            "INVALID_ARGUMENT",
            r"12 non-finite values \(NaN or inf\), the first at index \[0, 0, 0\]",
        ),
    ],
)
def test_bad_requests_get_triton_status_codes(
    client: triton_grpc.InferenceServerClient,
    model: str,
    arrays: dict[str, np.ndarray] | None,
    status: str,
    message: str,
) -> None:
    with pytest.raises(InferenceServerException, match=message) as caught:
        client.infer(model, _inputs(arrays if arrays is not None else _jets(2)))
    assert caught.value.status() == f"StatusCode.{status}"


def test_unknown_version_and_output_are_refused(client: triton_grpc.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="has no version '7'") as caught:
        client.infer("pfn", _inputs(_jets(2)), model_version="7")
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException, match="no output 'logits'") as caught:
        client.infer("pfn", _inputs(_jets(2)), outputs=[triton_grpc.InferRequestedOutput("logits")])
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_concurrent_grpc_and_http_clients_get_the_in_process_answers(
    server: BackgroundServer, pfn_export: ExportResult
) -> None:
    engine = OnnxEngine(pfn_export.onnx_path)
    requests = {
        (client, index): _jets(1 + (client + index) % 4, seed=client * 100 + index)
        for client in range(LOAD_CLIENTS)
        for index in range(REQUESTS_PER_CLIENT)
    }
    answers: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []
    batches_before = server.statistics["pfn"].batches

    def client_loop(client_id: int) -> None:
        try:
            if client_id % 4 == 0:  # a quarter of the clients speak HTTP to the same server meanwhile
                http = triton_http.InferenceServerClient(server.address, network_timeout=30)
                for index in range(REQUESTS_PER_CLIENT):
                    result = http.infer("pfn", _inputs(requests[client_id, index], triton_http))
                    answers[client_id, index] = result.as_numpy("probabilities")
                http.close()
                return
            with triton_grpc.InferenceServerClient(server.grpc_address) as client:
                for index in range(REQUESTS_PER_CLIENT):
                    result = client.infer("pfn", _inputs(requests[client_id, index]), client_timeout=30)
                    answers[client_id, index] = result.as_numpy("probabilities")
        except BaseException as error:  # collected and re-raised in the test thread
            errors.append(error)

    threads = [threading.Thread(target=client_loop, args=(client,)) for client in range(LOAD_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:3]
    assert len(answers) == LOAD_CLIENTS * REQUESTS_PER_CLIENT
    for key, answer in answers.items():
        np.testing.assert_allclose(answer, engine.run(requests[key]), atol=1e-6, err_msg=str(key))
    assert server.statistics["pfn"].batches - batches_before < LOAD_CLIENTS * REQUESTS_PER_CLIENT


def test_http_and_grpc_requests_share_a_batch_and_shutdown_answers_them(pfn_export: ExportResult) -> None:
    assert pfn_export.triton_model is not None
    slow = BackgroundServer([pfn_export.triton_model.parent], grpc_port=0, max_queue_delay_ms=1000).start()
    grpc_address = slow.grpc_address
    outcome: dict[str, object] = {}

    def over_grpc() -> None:
        with triton_grpc.InferenceServerClient(grpc_address) as client:
            outcome["grpc"] = client.infer("pfn", _inputs(_jets(3)), client_timeout=30).as_numpy("probabilities")

    def over_http() -> None:
        client = triton_http.InferenceServerClient(slow.address, network_timeout=30)
        outcome["http"] = client.infer("pfn", _inputs(_jets(2, seed=1), triton_http)).as_numpy("probabilities")
        client.close()

    threads = [threading.Thread(target=over_grpc), threading.Thread(target=over_http)]
    for thread in threads:
        thread.start()
    time.sleep(0.4)  # both now wait in the batcher's queue (1 s)
    slow.stop()  # answers them before it exits
    for thread in threads:
        thread.join(30)
    assert np.asarray(outcome["grpc"]).shape == (3, 2) and np.asarray(outcome["http"]).shape == (2, 2)
    statistics = slow.statistics["pfn"]
    assert (statistics.batches, statistics.requests) == (1, 2)  # one onnxruntime call for both transports
    with triton_grpc.InferenceServerClient(grpc_address) as client, pytest.raises(InferenceServerException):
        client.is_server_live(client_timeout=2)


def test_shutdown_answers_grpc_calls_in_flight(pfn_export: ExportResult) -> None:
    assert pfn_export.triton_model is not None
    slow = BackgroundServer([pfn_export.triton_model.parent], grpc_port=0, max_queue_delay_ms=500).start()
    outcome: dict[str, object] = {}

    def request() -> None:
        with triton_grpc.InferenceServerClient(slow.grpc_address) as client:
            outcome["result"] = client.infer("pfn", _inputs(_jets(3)), client_timeout=30).as_numpy("probabilities")

    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(0.2)  # no HTTP request in flight: the gRPC service is told to stop while this one waits
    slow.stop()
    thread.join(30)
    assert np.asarray(outcome["result"]).shape == (3, 2)


def test_a_busy_grpc_port_is_a_clear_error(server: BackgroundServer, pfn_export: ExportResult) -> None:
    busy = int(server.grpc_address.rsplit(":", 1)[1])
    with pytest.raises(HeplearnError, match=f"cannot serve gRPC on 127.0.0.1:{busy}"):
        serve([pfn_export.onnx_path], port=0, grpc_port=busy)
    with pytest.raises(HeplearnError, match=f"cannot serve gRPC on 127.0.0.1:{busy}"):
        BackgroundServer([pfn_export.onnx_path], grpc_port=busy)
    with pytest.raises(HeplearnError, match=f"cannot listen for gRPC on 127.0.0.1:{busy}"):  # lost a race
        asyncio.run(start_grpc_server({}, "127.0.0.1", busy, 1000))


def test_grpc_off_by_default_and_a_missing_grpcio_is_named(
    pfn_export: ExportResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    with BackgroundServer([pfn_export.onnx_path]) as http_only, pytest.raises(RuntimeError, match="not running"):
        _ = http_only.grpc_address
    monkeypatch.delitem(sys.modules, "heplearn.serving.grpc_service", raising=False)
    monkeypatch.setitem(sys.modules, "grpc", None)  # import grpc now raises ImportError
    with pytest.raises(HeplearnError, match=r"needs grpc, which is not installed: pip install 'heplearn\[grpc\]'"):
        create_app([pfn_export.onnx_path], grpc_port=0)


def test_the_cli_flag_and_its_one_line_error(
    server: BackgroundServer, pfn_export: ExportResult, capsys: pytest.CaptureFixture[str]
) -> None:
    busy = server.grpc_address.rsplit(":", 1)[1]
    with pytest.raises(SystemExit) as exited:
        main(["serve", str(pfn_export.onnx_path), "--port", "0", "--grpc-port", busy])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"heplearn: error: cannot serve gRPC on 127.0.0.1:{busy}: Address already in use (choose another port)"
    )
