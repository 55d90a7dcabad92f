"""An inference service speaking the KServe v2 protocol of NVIDIA Triton, over HTTP (FastAPI + uvicorn) and gRPC.

    serve(["runs/part-1", "runs/pfn-2"])                  # exported runs, a directory of them, or a Triton repository
    serve(["runs/part-1"], port=8000, grpc_port=8001)     # and Triton's gRPC service beside it

Endpoints (what ``tritonclient.http.InferenceServerClient`` calls): ``GET /v2/health/live``,
``/v2/health/ready``, ``/v2`` (server metadata), ``/v2/models/{name}[/versions/{v}]`` (inputs and
outputs with datatype and shape), ``.../ready``, ``.../config`` and ``POST .../infer`` with JSON
tensors or the binary tensor data extension (tritonclient's default), plus
``POST /v2/repository/index``. Each model runs behind a ``DynamicBatcher``, in onnxruntime or, for
the batch sizes at which ``heplearn export`` measured eager PyTorch to be faster on its machine
(``engine_choice``) and where the run's weights are beside the ONNX file, in PyTorch; ``engine``
(``--engine onnx|torch``) forces one. The choice per batch-size range is logged when a model loads.

Errors answer ``{"error": "..."}``: 400 for malformed JSON, a wrong input name, datatype or
shape, non-finite inputs, or more jets or particles than the limits, 404 for an unknown model or
version, 413 for a request above ``max_request_bytes``. Limits (``RequestLimits``: jets per
request, particles per jet, which default to the particle length the run was trained with) are
checked on the declared shapes before any tensor is built, and are reported in each model's
metadata (``parameters``) and config (``parameters``). No malformed request gets a 5xx: the
endpoints are fuzzed from ``app.openapi()`` with schemathesis in the tests.

The models come from the model repository (``repository.py``: ``load_models``). With
``grpc_port``, Triton's ``GRPCInferenceService`` (``grpc_service.py``, what ``tritonclient.grpc``
calls) runs in the same event loop on the same models: one ``find_model``, one
``ServedModel.infer`` (input checks, then the model's batcher) serve both transports, so HTTP
and gRPC requests batch together. grpcio is imported only then.

Slow and vanishing clients: a request body must arrive within ``body_timeout`` seconds (else 408),
an idle keep-alive connection closes after ``keep_alive_timeout``, and beyond ``max_connections``
concurrent connections new requests get 503 (uvicorn's ``limit_concurrency``). A client that
disconnects before sending its whole body costs one WARNING line, at most one per
``DISCONNECT_WARNING_INTERVAL`` seconds (the others are counted in the next one), never a traceback.

FastAPI, uvicorn, onnx and onnxruntime are the ``serve`` extra (``pip install 'heplearn[serve]'``):
without them, importing this module is a ``MissingExtraError`` that says so.

The server binds to 127.0.0.1 unless told otherwise; on SIGINT/SIGTERM (or ``stop()``) it stops
accepting connections, answers the requests in flight (HTTP, then gRPC), then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from heplearn import __version__
from heplearn.errors import HeplearnError
from heplearn.optional import optional_import
from heplearn.serving.batching import DEFAULT_MAX_BATCH_SIZE, DEFAULT_QUEUE_DELAY_MS
from heplearn.serving.engine_choice import AUTO
from heplearn.serving.protocol import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_KEEP_ALIVE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_JETS_PER_REQUEST,
    DEFAULT_MAX_REQUEST_BYTES,
    EXTENSIONS,
    HEADER_LENGTH,
    SERVER_NAME,
    ProtocolError,
    encode_response,
    parse_request,
)
from heplearn.serving.repository import find_model, load_models
from heplearn.serving.triton import model_config_json

SERVE_NEEDED_BY = "the inference server (heplearn serve)"
try:  # the `serve` extra; FastAPI reads the routes' annotations, so these names live in the module
    from fastapi import FastAPI, Request, Response
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect
except ImportError:
    optional_import("fastapi", SERVE_NEEDED_BY, extra="serve")  # raises the error naming the extra (or the cause)
    raise

log = logging.getLogger(__name__)

DISCONNECT_WARNING_INTERVAL = 10.0  # seconds between two warnings about clients that went away


class RateLimitedLog:
    """One log line per ``interval`` seconds at most; the next line counts those held back."""

    def __init__(self, interval: float = DISCONNECT_WARNING_INTERVAL) -> None:
        self.interval = interval
        self._last = -math.inf
        self._held = 0
        self._lock = threading.Lock()

    def warning(self, message: str) -> None:
        """Log ``message`` as a warning unless one was logged less than ``interval`` seconds ago."""
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.interval:
                self._held += 1
                return
            held, self._held, self._last = self._held, 0, now
        log.warning("%s%s", message, f" ({held} more since the last such warning)" if held else "")


# --------------------------------------------------------------------------- the application
def create_app(
    sources: Sequence[str | os.PathLike[str]],
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    max_queue_delay_ms: float = DEFAULT_QUEUE_DELAY_MS,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    threads: int | None = None,
    *,
    grpc_port: int | None = None,
    grpc_host: str = "127.0.0.1",
    graceful_timeout: float = 30.0,
    max_jets_per_request: int = DEFAULT_MAX_JETS_PER_REQUEST,
    max_particles: int | None = None,
    body_timeout: float = DEFAULT_BODY_TIMEOUT_S,
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    engine: str = AUTO,
) -> FastAPI:
    """The FastAPI application serving the models of ``sources`` (loaded now: errors surface here).

    With ``grpc_port`` (0: a free one), the app also serves Triton's gRPC protocol on
    ``grpc_host:grpc_port`` while it runs; the bound port is then ``app.state.grpc_port``.
    ``max_jets_per_request`` and ``max_particles`` (None: each run's particle length) bound what
    one request may hold; larger requests get 400 before any compute. ``body_timeout``,
    ``keep_alive_timeout`` and ``max_connections`` bound what slow clients hold (``app.state.uvicorn_options``
    carries the last two to uvicorn). ``engine``: ``auto`` (the faster engine recorded at export
    per batch size), ``onnx`` or ``torch`` (see ``ServedModel.load``).
    """
    start_grpc = _grpc_starter() if grpc_port is not None else None  # a missing grpcio fails here, not later
    if grpc_port:
        _check_port_free(grpc_host, grpc_port, "gRPC")
    models = load_models(
        sources, max_batch_size, max_queue_delay_ms, threads, max_jets_per_request, max_particles, engine
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        grpc_server = None
        if start_grpc is not None and grpc_port is not None:
            try:
                grpc_server, app.state.grpc_port = await start_grpc(models, grpc_host, grpc_port, max_request_bytes)
            except HeplearnError as error:
                app.state.startup_error = error  # for serve() to report once uvicorn gives up
                raise
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(graceful_timeout)  # refuses new calls, answers those in flight
            await asyncio.gather(*(model.batcher.close() for model in models.values()))
            log.info("all requests answered; server stopped")

    # no documentation routes; app.openapi() still describes the endpoints (the fuzz tests read it)
    app = FastAPI(
        title="heplearn inference service",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.models = models
    app.state.grpc_port = None
    app.state.startup_error = None
    app.state.uvicorn_options = {"timeout_keep_alive": keep_alive_timeout, "limit_concurrency": max_connections}
    disconnects = RateLimitedLog()

    @app.exception_handler(ProtocolError)
    async def protocol_error(request: Request, error: ProtocolError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": f"{error.detail}: {request.method} {request.url.path}"}, status_code=error.status_code
        )

    @app.get("/v2/health/live")
    async def live() -> Response:
        return Response(status_code=200)

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        return Response(status_code=200)

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    @app.post("/v2/repository/index")
    async def repository_index() -> list[dict[str, str]]:
        return [{"name": model.name, "version": model.version, "state": "READY"} for model in models.values()]

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        return find_model(models, name, version).metadata_json(max_request_bytes)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        find_model(models, name, version)
        return Response(status_code=200)

    @app.get("/v2/models/{name}/config")
    @app.get("/v2/models/{name}/versions/{version}/config")
    async def model_config(name: str, version: str | None = None) -> Response:
        model = find_model(models, name, version)
        return Response(
            model_config_json(
                model.name,
                model.inputs,
                model.outputs,
                model.max_batch_size,
                round(model.batcher.max_queue_delay * 1e6),
                model.limits_json(max_request_bytes),
            ),
            media_type="application/json",
        )

    @app.post("/v2/models/{name}/infer", openapi_extra=INFER_OPENAPI)
    @app.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=INFER_OPENAPI)
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        model = find_model(models, name, version)
        try:
            async with asyncio.timeout(body_timeout):
                body = await _read_body(request, max_request_bytes)
        except TimeoutError:
            raise ProtocolError(f"the request body did not arrive within {body_timeout:g} s", 408) from None
        except ClientDisconnect:
            disconnects.warning(f"a client of model {name!r} went away before sending its whole request")
            return Response(status_code=400)  # nobody reads it
        parsed = parse_request(body, request.headers.get(HEADER_LENGTH), model.limits)
        outputs = await model.infer(parsed.inputs)
        content, header_length = encode_response(name, model.version, parsed, outputs)
        if header_length is None:
            return Response(content, media_type="application/json")
        return Response(content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)})

    return app


_TENSOR_SCHEMA = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}
#: The request body of ``.../infer`` in the OpenAPI description (KServe v2's JSON request).
INFER_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": _TENSOR_SCHEMA},
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
                            },
                        },
                    },
                }
            }
        },
    },
}


def _grpc_starter() -> Any:
    """``grpc_service.start_grpc_server``; importing it imports grpcio (a clear error if it is missing)."""
    from heplearn.serving.grpc_service import start_grpc_server

    return start_grpc_server


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body (decompressed if gzip/deflate), at most ``limit`` bytes, else 413."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(f"the request has {int(declared)} bytes; this server takes at most {limit}", 413)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ProtocolError(f"the request exceeds {limit} bytes, the most this server takes", 413)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding in {"gzip", "deflate"}:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as error:
            raise ProtocolError(f"the {encoding} request body is corrupt: {error}") from None
        if len(body) > limit:
            raise ProtocolError(f"the decompressed request exceeds {limit} bytes, the most this server takes", 413)
    elif encoding not in {"", "identity"}:
        raise ProtocolError(f"unsupported Content-Encoding {encoding!r} (use gzip or deflate)", 415)
    return body


# --------------------------------------------------------------------------- running it
def serve(
    sources: Sequence[str | os.PathLike[str]],
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    max_queue_delay_ms: float = DEFAULT_QUEUE_DELAY_MS,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    *,
    grpc_port: int | None = None,
    threads: int | None = None,
    graceful_timeout: float = 30.0,
    max_jets_per_request: int = DEFAULT_MAX_JETS_PER_REQUEST,
    max_particles: int | None = None,
    **limits: Any,
) -> None:
    """Serve the models (over HTTP, and gRPC if ``grpc_port``) until SIGINT/SIGTERM; requests in flight are
    answered before exiting. ``limits``: ``body_timeout``, ``keep_alive_timeout``, ``max_connections``,
    ``engine`` (see ``create_app``)."""
    uvicorn = optional_import("uvicorn", SERVE_NEEDED_BY, extra="serve")
    app = create_app(
        sources,
        max_batch_size,
        max_queue_delay_ms,
        max_request_bytes,
        threads,
        grpc_port=grpc_port,
        grpc_host=host,
        graceful_timeout=graceful_timeout,
        max_jets_per_request=max_jets_per_request,
        max_particles=max_particles,
        **limits,
    )
    if port:
        _check_port_free(host, port, "HTTP")
    if host not in {"127.0.0.1", "localhost", "::1"}:
        log.warning("serving on %s: reachable from other machines, and the service has no authentication", host)
    log.info("serving %s on http://%s", ", ".join(app.state.models), _address(host, port))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=graceful_timeout,
        **app.state.uvicorn_options,
    )
    try:
        uvicorn.Server(config).run()
    except SystemExit:  # uvicorn's way out of a failed startup
        if app.state.startup_error is not None:
            raise app.state.startup_error from None
        raise


def _check_port_free(host: str, port: int, protocol: str) -> None:
    """Fail early, with one clear line, when another process listens on ``host:port``."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as error:
            raise HeplearnError(
                f"cannot serve {protocol} on {_address(host, port)}: {error.strerror} (choose another port)"
            ) from None


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class BackgroundServer:
    """The service in a background thread on a free local port (tests, notebooks, benchmarks).

        with BackgroundServer(["runs/pfn"], grpc_port=0) as server:
            client = tritonclient.http.InferenceServerClient(server.address)
            grpc_client = tritonclient.grpc.InferenceServerClient(server.grpc_address)

    ``grpc_port`` (0: a free port; None, the default: no gRPC) starts the gRPC service beside HTTP;
    the other ``options`` are those of ``create_app``.
    """

    def __init__(
        self,
        sources: Sequence[str | os.PathLike[str]],
        host: str = "127.0.0.1",
        port: int = 0,
        grpc_port: int | None = None,
        **options: Any,
    ) -> None:
        uvicorn = optional_import("uvicorn", SERVE_NEEDED_BY, extra="serve")
        self.app = create_app(sources, grpc_port=grpc_port, grpc_host=host, **options)
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = host, self._socket.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=30,
            **self.app.state.uvicorn_options,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="heplearn-serve", daemon=True)

    @property
    def address(self) -> str:
        """``host:port`` of the HTTP service, as tritonclient takes it."""
        return _address(self.host, self.port)

    @property
    def url(self) -> str:
        """The server's base URL, ``http://host:port``."""
        return f"http://{self.address}"

    @property
    def grpc_address(self) -> str:
        """``host:port`` of the gRPC service (once started), as ``tritonclient.grpc`` takes it."""
        if self.app.state.grpc_port is None:
            raise RuntimeError("the gRPC service is not running: pass grpc_port (0: a free port) and start()")
        return _address(self.host, self.app.state.grpc_port)

    def _run(self) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when the startup fails; start() raises why
            self._server.run(sockets=[self._socket])

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        """Start serving in a thread; returns once the server answers, or raises why it could not start."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self.app.state.startup_error is not None:
                self._thread.join(timeout)
                self._socket.close()
                raise self.app.state.startup_error
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the inference server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting requests, answer those in flight, and wait for the server thread."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def statistics(self) -> dict[str, Any]:
        """Per model, the dynamic batcher's counts: batches, requests and jets."""
        return {name: model.batcher.statistics for name, model in self.app.state.models.items()}
