"""Every malformed request is a 4xx with a message: the parser under hypothesis, the endpoints
under schemathesis (from the app's OpenAPI description), and the cases issue 15 found by hand.

Before the fixes, JSON nested 100,000 deep (RecursionError) and ``"shape": [true, 1, 7]``
(TypeError) answered 500, and a mask with its real particles at the end got a wrong score.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from heplearn.serving.engines import open_session
from heplearn.serving.export import ExportResult
from heplearn.serving.protocol import ProtocolError, RequestLimits, TensorSpec, check_inputs, parse_request
from heplearn.serving.server import BackgroundServer
from tests.serving.conftest import LENGTH

PFN_SPECS = [
    TensorSpec("particles", "FP32", (-1, -1, 3), ("batch", "particles", "")),
    TensorSpec("mask", "BOOL", (-1, -1), ("batch", "particles")),
]
LIMITS = RequestLimits(max_jets=64, max_particles=LENGTH, particle_inputs=frozenset({"particles", "mask"}))
FUZZ_COUNTS: dict[str, int] = {}


@pytest.fixture(scope="module")
def server(pfn_export: ExportResult, mlp_export: ExportResult) -> Iterator[BackgroundServer]:
    sources = [pfn_export.onnx_path.parent, mlp_export.onnx_path.parent]
    with BackgroundServer(sources, max_request_bytes=2_000_000, max_jets_per_request=64) as running:
        yield running


def _valid(particles: int = 4, jets: int = 1) -> dict[str, Any]:
    mask = np.arange(particles) < particles - 1
    values = np.where(mask[None, :, None], np.linspace(0.1, 2.0, jets * particles * 3).reshape(jets, particles, 3), 0)
    return {
        "inputs": [
            {"name": "particles", "shape": [jets, particles, 3], "datatype": "FP32", "data": values.ravel().tolist()},
            {"name": "mask", "shape": [jets, particles], "datatype": "BOOL", "data": np.tile(mask, jets).tolist()},
        ]
    }


# --------------------------------------------------------------------------- the parser, under hypothesis
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_FIELD_VALUES = st.one_of(
    _JSON,
    st.sampled_from(["FP32", "BOOL", "particles", "mask", "INT64"]),
    st.lists(st.integers(-3, 30), max_size=4),
    st.lists(st.booleans(), max_size=3),
)


@st.composite
def _mutated_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with some fields replaced by arbitrary JSON, dropped, or added."""
    request = _valid(draw(st.integers(1, 6)), draw(st.integers(1, 3)))
    inputs = request["inputs"]
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(["request", "input0", "input1"]))
        entry = request if target == "request" else inputs[int(target[-1])]
        key = draw(st.sampled_from(["inputs", "outputs", "parameters", "id", "name", "shape", "datatype", "data"]))
        if draw(st.booleans()):
            entry[key] = draw(_FIELD_VALUES)
        else:
            entry.pop(key, None)
    return request


def _parse_and_check(body: bytes, header_length: str | None = None) -> None:
    """Parse and check ``body``: it must succeed or raise a ``ProtocolError`` with a 4xx status."""
    try:
        request = parse_request(body, header_length, LIMITS)
        check_inputs(request.inputs, PFN_SPECS, "pfn")
    except ProtocolError as error:
        assert 400 <= error.status < 500 and str(error)  # noqa: PT017 - parsing may also succeed


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(_mutated_requests() | _JSON)
def test_parser_answers_any_json_with_a_request_or_a_4xx(request: Any) -> None:
    FUZZ_COUNTS["parser"] = FUZZ_COUNTS.get("parser", 0) + 1
    _parse_and_check(json.dumps(request).encode())


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=200), st.one_of(st.none(), st.integers(-5, 250).map(str), st.text(max_size=4)))
def test_parser_answers_any_bytes_with_a_request_or_a_4xx(body: bytes, header_length: str | None) -> None:
    FUZZ_COUNTS["parser"] = FUZZ_COUNTS.get("parser", 0) + 1
    _parse_and_check(body, header_length)


# --------------------------------------------------------------------------- by hand, over HTTP
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (
            json.dumps(
                {"inputs": [{"name": "particles", "shape": [True, 1, 7], "datatype": "FP32", "data": [0] * 7}]}
            ).encode(),
            '"shape" must be a list of at most 8 non-negative integers',
        ),
        (
            json.dumps({"inputs": [{"name": "particles", "shape": [1], "datatype": ["FP32"], "data": [1]}]}).encode(),
            "unsupported datatype",
        ),
        (
            json.dumps(
                {"inputs": [{"name": "mask", "shape": [1, 1], "datatype": "BOOL", "data": [True], "parameters": [1]}]}
            ).encode(),
            '"parameters" must be an object',
        ),
        (
            json.dumps(
                {"inputs": _valid()["inputs"], "outputs": [{"name": "probabilities", "parameters": "x"}]}
            ).encode(),
            '"parameters" must be an object',
        ),
        (
            json.dumps({"inputs": [_valid(4)["inputs"][0], _valid(5)["inputs"][1]]}).encode(),
            "disagree on the 'particles' axis",
        ),
        (
            json.dumps(
                {"inputs": [{**_valid()["inputs"][0], "data": [float("nan")] * 12}, _valid()["inputs"][1]]}
            ).encode(),
            "non-finite values (NaN or inf), the first at index [0, 0, 0]",
        ),
        (
            json.dumps(
                {
                    "inputs": [
                        {"name": "particles", "shape": [1, 0, 3], "datatype": "FP32", "data": []},
                        {"name": "mask", "shape": [1, 0], "datatype": "BOOL", "data": []},
                    ]
                }
            ).encode(),
            "empty 'particles' axis",
        ),
    ],
)
def test_hostile_bodies_get_400_with_a_message(server: BackgroundServer, body: bytes, message: str) -> None:
    answer = httpx.post(f"{server.url}/v2/models/pfn/infer", content=body, timeout=30)
    assert answer.status_code == 400
    assert message in answer.json()["error"]


def test_a_right_aligned_mask_over_http_gets_the_plain_sessions_score(
    server: BackgroundServer, pfn_export: ExportResult
) -> None:
    rng = np.random.default_rng(5)
    mask = np.zeros((3, LENGTH), bool)
    mask[:, -7:] = True  # the real particles at the end of the axis
    values = rng.normal(0, 0.3, (3, LENGTH, 3)) + np.array([0, 0, 2])
    particles = np.where(mask[..., None], values, 0).astype(np.float32)
    expected = open_session(pfn_export.onnx_path).run(None, {"particles": particles, "mask": mask})[0]
    answer = httpx.post(
        f"{server.url}/v2/models/pfn/infer",
        json={
            "inputs": [
                {
                    "name": "particles",
                    "shape": list(particles.shape),
                    "datatype": "FP32",
                    "data": particles.ravel().tolist(),
                },
                {"name": "mask", "shape": list(mask.shape), "datatype": "BOOL", "data": mask.ravel().tolist()},
            ]
        },
    )
    assert answer.status_code == 200
    got = np.array(answer.json()["outputs"][0]["data"]).reshape(3, 2)
    np.testing.assert_allclose(got, expected, atol=1e-6)


# --------------------------------------------------------------------------- the endpoints, under schemathesis
def _operation_strategies(server: BackgroundServer, mode: GenerationMode) -> st.SearchStrategy[Any]:
    """Requests to every operation of the app's OpenAPI description, for each served model and unknown ones."""
    schema = schemathesis.openapi.from_dict(server.app.openapi())
    schema.config.update(base_url=server.url)
    strategies = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for name, model in server.app.state.models.items():
            if "{name}" in operation.path:
                known = {"name": name, "version": model.version} if "{version}" in operation.path else {"name": name}
                strategies.append(operation.as_strategy(mode, path_parameters=known))
        strategies.append(operation.as_strategy(mode))
    return st.one_of(strategies)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_endpoint_answers_any_request_with_a_5xx(server: BackgroundServer, mode: GenerationMode) -> None:
    statuses: dict[int, int] = {}

    @settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(_operation_strategies(server, mode))
    def call(case: Any) -> None:
        response = case.call(timeout=30)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:300])

    call()
    FUZZ_COUNTS[f"schemathesis {mode}"] = sum(statuses.values())
    assert sum(statuses.values()) >= 100 and any(400 <= status < 500 for status in statuses)
    print(f"schemathesis {mode}: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
