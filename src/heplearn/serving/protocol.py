"""The tensors of the KServe v2 inference protocol (the one NVIDIA Triton speaks), as numpy arrays.

A request body is JSON, ``{"inputs": [{"name", "shape", "datatype", "data"}], "outputs": [...]}``,
optionally followed by raw tensor bytes (the *binary tensor data* extension): the JSON part is
then the first ``Inference-Header-Content-Length`` bytes, and each input whose ``parameters`` hold
``binary_data_size`` takes that many bytes of the rest, in order. Responses use the same layout;
outputs go out as binary when the request asks for it (``binary_data_output`` for all, or an
output's own ``binary_data``), as ``tritonclient`` does by default.

The gRPC transport (``grpc_service.py``) carries the same tensors in protobuf messages; both
decode inputs with ``decode_tensor``, check them with ``check_inputs`` and pick outputs with
``select_outputs``, so a request means the same and fails the same way over either.

Every problem with a request raises ``ProtocolError`` with the HTTP status to answer (gRPC maps
it to its own status code) and a message that says what was wrong: a malformed request is always
a 4xx, never a server error (the parser is fuzzed with hypothesis, the endpoints with schemathesis).

Limits (``RequestLimits``) are checked on the declared shapes, before any tensor is built or any
model runs: jets per request, particles per jet (by default the particle length the run was
trained with), and, at the transport, bytes per request. Inputs must be finite; axes that the
model's inputs share (batch, particles) must agree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heplearn.errors import HeplearnError

SERVER_NAME = "heplearn"  # what the server answers to a metadata request, over HTTP and gRPC alike
EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository"]
HEADER_LENGTH = "Inference-Header-Content-Length"
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_JETS_PER_REQUEST = 4096
DEFAULT_MAX_PARTICLES = 512  # per jet, for a model whose metadata gives no particle length
MAX_DIMENSIONS = 8  # heplearn's models take at most 4 (the CNN's images)
DEFAULT_BODY_TIMEOUT_S = 30.0  # a request body must arrive within this (else 408)
DEFAULT_KEEP_ALIVE_TIMEOUT_S = 5.0  # an idle keep-alive connection closes after this
DEFAULT_MAX_CONNECTIONS = 512  # concurrent connections; beyond them new requests get 503

#: KServe v2 datatype ↔ numpy dtype (BYTES, strings, is not used by heplearn models).
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
#: onnxruntime's type strings ("tensor(float)") → KServe v2 datatype.
ONNX_TYPES: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
}


class ProtocolError(HeplearnError):
    """A request the server cannot answer: ``status`` is the HTTP status code to send (gRPC maps it)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, KServe datatype and shape (-1 for a variable axis, batch first)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    axes: tuple[str, ...] = field(default=(), compare=False)  # symbolic names of the axes ("" when fixed)

    def to_json(self) -> dict[str, Any]:
        """The tensor's metadata as the KServe v2 protocol spells it."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @property
    def dtype(self) -> np.dtype[Any]:
        """The numpy dtype of the tensor's datatype."""
        return DATATYPES[self.datatype]


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The KServe v2 datatype name (``FP32``, ``BOOL``, ...) of a numpy dtype."""
    for name, candidate in DATATYPES.items():
        if candidate == dtype:
            return name
    raise ProtocolError(f"numpy dtype {dtype} has no KServe v2 datatype")


@dataclass(frozen=True)
class RequestLimits:
    """What one request may hold: ``max_jets`` (its batch axis) and ``max_particles`` per jet (the
    particle axis of the inputs named in ``particle_inputs``)."""

    max_jets: int = DEFAULT_MAX_JETS_PER_REQUEST
    max_particles: int = DEFAULT_MAX_PARTICLES
    particle_inputs: frozenset[str] = frozenset()

    def check_shape(self, name: str, shape: list[int]) -> None:
        """Refuse (400) a declared ``shape`` of input ``name`` beyond the limits, before it is read."""
        if shape and shape[0] > self.max_jets:
            raise ProtocolError(
                f"input {name!r}: {shape[0]} jets in one request; this server takes at most "
                f"{self.max_jets} (split the request)"
            )
        if name in self.particle_inputs and len(shape) >= 2 and shape[1] > self.max_particles:
            raise ProtocolError(
                f"input {name!r}: {shape[1]} particles per jet; this model takes at most "
                f"{self.max_particles} (the particle length it was trained with)"
            )


@dataclass
class InferRequest:
    """A parsed inference request: its input arrays by name, its id, and which outputs come back as binary data."""

    inputs: dict[str, np.ndarray]
    request_id: str | None
    binary_outputs: dict[str, bool]  # requested output name → binary; empty: all outputs
    binary_default: bool


def parse_request(body: bytes, header_length: str | None, limits: RequestLimits | None = None) -> InferRequest:
    """The inputs of a request body (JSON, optionally followed by binary tensors), within ``limits``."""
    if header_length is not None:
        try:
            split = int(header_length.strip())
        except ValueError:
            raise ProtocolError(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
        if not 0 < split <= len(body):
            raise ProtocolError(f"{HEADER_LENGTH} {split} does not fit a body of {len(body)} bytes")
        header_bytes, binary = body[:split], memoryview(body)[split:]
    else:
        header_bytes, binary = body, memoryview(b"")
    try:
        header = json.loads(header_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ProtocolError(f"the request is not valid JSON: {error}") from None
    except RecursionError:
        raise ProtocolError("the request's JSON is nested too deeply") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise ProtocolError('the request needs a non-empty "inputs" list')
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for position, tensor in enumerate(header["inputs"]):
        name, array, used = _decode_input(tensor, position, binary[offset:], limits)
        if name in inputs:
            raise ProtocolError(f"input {name!r} is given twice")
        inputs[name] = array
        offset += used
    if offset != len(binary):
        raise ProtocolError(f"{len(binary) - offset} bytes of binary data are not claimed by any input")
    binary_default = _flag(_parameters(header, "the request"), "binary_data_output", False)
    outputs = header.get("outputs") or []
    if not isinstance(outputs, list):
        raise ProtocolError('"outputs" must be a list')
    requested: dict[str, bool] = {}
    for output in outputs:
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise ProtocolError('every entry of "outputs" needs a string "name"')
        requested[output["name"]] = _flag(
            _parameters(output, f"output {output['name']!r}"), "binary_data", binary_default
        )
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str | int | float):
        raise ProtocolError('"id" must be a string')
    return InferRequest(inputs, str(request_id) if request_id is not None else None, requested, binary_default)


def _parameters(entry: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = entry.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f'{what}: "parameters" must be an object, got {_shown(parameters)}')
    return parameters


def _flag(parameters: dict[str, Any], key: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if not isinstance(value, bool):
        raise ProtocolError(f"parameter {key!r} must be true or false, got {_shown(value)}")
    return value


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _decode_input(
    tensor: Any, position: int, binary: memoryview, limits: RequestLimits | None
) -> tuple[str, np.ndarray, int]:
    """One JSON input tensor: its name, values, and how many binary bytes it used."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise ProtocolError(f'input {position}: needs a string "name"')
    name = tensor["name"]
    size = _parameters(tensor, f"input {name!r}").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(binary):
            raise ProtocolError(
                f"input {name!r}: binary_data_size {_shown(size)} does not fit the {len(binary)} "
                "bytes of binary data left"
            )
        return (
            name,
            decode_tensor(name, tensor.get("datatype"), tensor.get("shape"), raw=binary[:size], limits=limits),
            size,
        )
    if "data" not in tensor:
        raise ProtocolError(f'input {name!r}: needs "data" (or binary data)')
    return (
        name,
        decode_tensor(name, tensor.get("datatype"), tensor.get("shape"), values=tensor["data"], limits=limits),
        0,
    )


def decode_tensor(
    name: str,
    datatype: Any,
    shape: Any,
    *,
    raw: bytes | memoryview | None = None,
    values: Any = None,
    limits: RequestLimits | None = None,
) -> np.ndarray:
    """An input tensor from its raw bytes (little-endian, row-major) or else from its ``values``.

    Both transports decode through here: HTTP's JSON ``data`` and binary tensors, gRPC's typed
    ``contents`` and ``raw_input_contents``. The declared shape is checked against ``limits``
    before anything is read.
    """
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise ProtocolError(
            f"input {name!r}: unsupported datatype {_shown(datatype)} (supported: {', '.join(DATATYPES)})"
        )
    if (
        not isinstance(shape, list | tuple)
        or len(shape) > MAX_DIMENSIONS
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise ProtocolError(
            f'input {name!r}: "shape" must be a list of at most {MAX_DIMENSIONS} non-negative '
            f"integers, got {_shown(shape)}"
        )
    dtype = DATATYPES[datatype]
    shape = [int(s) for s in shape]
    if limits is not None:
        limits.check_shape(name, shape)
    count = math.prod(shape)
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise ProtocolError(
                f"input {name!r}: {len(raw)} bytes of data do not match shape {shape} of "
                f"{datatype} ({count * dtype.itemsize} bytes)"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    if not isinstance(values, list | tuple | int | float | bool):
        raise ProtocolError(f'input {name!r}: "data" must be a list of numbers, got {_shown(values)}')
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError, OverflowError, RecursionError) as error:
        raise ProtocolError(f'input {name!r}: "data" cannot be read as {datatype}: {_shown(str(error), 200)}') from None
    if array.size != count:
        raise ProtocolError(f"input {name!r}: {array.size} values for shape {shape} ({count} expected)")
    return array.reshape(shape)


def check_inputs(inputs: dict[str, np.ndarray], specs: list[TensorSpec], model: str) -> int:
    """Check names, datatypes and shapes against the model's inputs; returns the batch size.

    Axes that the model's inputs share by name (``batch``, ``particles``) must have one size, at
    least 1, and floating-point inputs must be finite.
    """
    expected = {spec.name for spec in specs}
    unknown = sorted(set(inputs) - expected)
    missing = sorted(expected - set(inputs))
    if unknown or missing:
        parts = ([f"unknown input {', '.join(map(repr, unknown))}"] if unknown else []) + (
            [f"missing input {', '.join(map(repr, missing))}"] if missing else []
        )
        raise ProtocolError(
            f"model {model!r}: {'; '.join(parts)} (the model takes {', '.join(spec.name for spec in specs)})"
        )
    batch: int | None = None
    for spec in specs:
        array = inputs[spec.name]
        if array.dtype != spec.dtype:
            raise ProtocolError(
                f"model {model!r}: input {spec.name!r} must be {spec.datatype}, got {datatype_of(array.dtype)}"
            )
        if array.ndim != len(spec.shape) or any(
            want not in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)
        ):
            raise ProtocolError(
                f"model {model!r}: input {spec.name!r} has shape {list(array.shape)}, "
                f"expected {list(spec.shape)} (-1: any size)"
            )
        if batch is not None and array.shape[0] != batch:
            raise ProtocolError(
                f"model {model!r}: the inputs disagree on the batch size "
                f"({batch} and {array.shape[0]} for {spec.name!r})"
            )
        batch = array.shape[0]
    if not batch:
        raise ProtocolError(f"model {model!r}: the batch is empty")
    _check_shared_axes(inputs, specs, model)
    for spec in specs:
        _check_finite(inputs[spec.name], spec.name, model)
    return batch


def _check_shared_axes(inputs: dict[str, np.ndarray], specs: list[TensorSpec], model: str) -> None:
    sizes: dict[str, tuple[int, str]] = {}
    for spec in specs:
        for axis, name in enumerate(spec.axes):
            if not name:
                continue
            size = inputs[spec.name].shape[axis]
            if size == 0:
                raise ProtocolError(f"model {model!r}: input {spec.name!r} has an empty {name!r} axis")
            first = sizes.setdefault(name, (size, spec.name))
            if first[0] != size:
                raise ProtocolError(
                    f"model {model!r}: the inputs disagree on the {name!r} axis "
                    f"({first[0]} for {first[1]!r}, {size} for {spec.name!r})"
                )


def _check_finite(array: np.ndarray, name: str, model: str) -> None:
    if array.dtype.kind != "f":
        return
    finite = np.isfinite(array)
    if not finite.all():
        where = tuple(int(index) for index in np.argwhere(~finite)[0])
        raise ProtocolError(
            f"model {model!r}: input {name!r} holds {int((~finite).sum())} non-finite values "
            f"(NaN or inf), the first at index {list(where)}"
        )


def _json_values(array: np.ndarray) -> list[Any]:
    """The values of ``array`` as a flat list, non-finite floats as null (JSON has no NaN or inf)."""
    values = array.ravel()
    if values.dtype.kind != "f" or np.isfinite(values).all():
        return values.tolist()
    return [value if math.isfinite(value) else None for value in values.tolist()]


def select_outputs(model: str, requested: list[str], outputs: dict[str, np.ndarray]) -> list[str]:
    """The names of the outputs to send: those ``requested`` (all when none is), each one the model has."""
    unknown = [name for name in requested if name not in outputs]
    if unknown:
        raise ProtocolError(f"model {model!r}: no output {', '.join(map(repr, unknown))} (it has {', '.join(outputs)})")
    return requested or list(outputs)


def encode_response(
    model: str, version: str, request: InferRequest, outputs: dict[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """The response body and, when it carries binary outputs, the length of its JSON part."""
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name in select_outputs(model, list(request.binary_outputs), outputs):
        array = np.ascontiguousarray(outputs[name])
        tensor: dict[str, Any] = {"name": name, "datatype": datatype_of(array.dtype), "shape": list(array.shape)}
        if request.binary_outputs.get(name, request.binary_default):
            blob = array.tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = _json_values(array)
        tensors.append(tensor)
    response: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": tensors}
    if request.request_id is not None:
        response["id"] = request.request_id
    header = json.dumps(response, allow_nan=False).encode()  # valid JSON: no NaN or Infinity
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
