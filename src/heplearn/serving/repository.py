"""The model repository that the HTTP server and the gRPC service share.

``load_models`` finds the models of exported runs, directories of them or a Triton repository
(``heplearn.serving.triton``) and loads each into onnxruntime as a ``ServedModel``: its tensor
specs, its request limits, the engine for each batch size (onnxruntime, or PyTorch where the
export measured it faster: ``choose_engines``) and its dynamic batcher. ``find_model`` looks a
model up by name and version for either transport, and ``ServedModel.infer`` checks a request's
inputs and runs them through the batcher, so HTTP and gRPC requests mean the same, fail the same
way and batch together. Nothing here needs FastAPI or grpcio.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heplearn.errors import DataError, HeplearnError
from heplearn.runs import RunDirectory
from heplearn.serving.batching import DEFAULT_MAX_BATCH_SIZE, DEFAULT_QUEUE_DELAY_MS, DynamicBatcher, Tensors
from heplearn.serving.engine_choice import AUTO, METADATA_KEY, ONNX, TORCH, EngineChoice, resolve_engine
from heplearn.serving.engines import EagerEngine, open_session, run_by_multiplicity
from heplearn.serving.export import read_metadata
from heplearn.serving.protocol import (
    DEFAULT_MAX_JETS_PER_REQUEST,
    DEFAULT_MAX_PARTICLES,
    DEFAULT_MAX_REQUEST_BYTES,
    ONNX_TYPES,
    ProtocolError,
    RequestLimits,
    TensorSpec,
    check_inputs,
)
from heplearn.serving.triton import ModelSource, find_models

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    """One ONNX model in onnxruntime, its tensor specs and its batcher."""

    name: str
    version: str
    path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    metadata: dict[str, Any]
    session: Any
    batcher: DynamicBatcher
    max_batch_size: int
    limits: RequestLimits
    engines: dict[int, str] | None = None  # engine per batch-size range (keyed by its largest size), as chosen

    @classmethod
    def load(
        cls,
        source: ModelSource,
        max_batch_size: int,
        max_queue_delay: float,
        threads: int | None = None,
        max_jets_per_request: int = DEFAULT_MAX_JETS_PER_REQUEST,
        max_particles: int | None = None,
        engine: str = AUTO,
    ) -> ServedModel:
        """The model of ``source``; ``max_particles`` (None: the run's particle length, else
        ``DEFAULT_MAX_PARTICLES``) caps the particles per jet a request may hold. ``engine``:
        ``auto`` runs each batch on the engine recorded as the faster for its size (see
        ``choose_engines``), ``onnx`` or ``torch`` on that one."""
        try:
            # no spinning: idle onnxruntime threads would hold the cores the event loop parses requests on
            session = open_session(source.onnx_path, threads, spinning=False)
        except Exception as error:  # onnxruntime raises its own exception types
            raise DataError(f"{source.onnx_path}: onnxruntime cannot load it: {error}") from error
        inputs = [_spec(item) for item in session.get_inputs()]
        outputs = [_spec(item) for item in session.get_outputs()]
        batch_limit = min(max_batch_size, source.max_batch_size or max_batch_size)
        output_names = [spec.name for spec in outputs]
        metadata = read_metadata(source.onnx_path)
        engines, eager = choose_engines(source, metadata, engine, max(batch_limit, 1))

        def run(feed: Tensors) -> Tensors:
            size = len(next(iter(feed.values())))
            if (
                eager is not None
                and engines[min((limit for limit in engines if limit >= size), default=max(engines))] == TORCH
            ):
                return {output_names[0]: eager.run_batch(feed)}
            outputs = run_by_multiplicity(lambda batch: session.run(output_names, batch), feed)
            return dict(zip(output_names, outputs, strict=True))

        batcher = DynamicBatcher(run, max(batch_limit, 1), max_queue_delay, source.name)
        limits = RequestLimits(
            max_jets_per_request,
            _particle_limit(metadata, max_particles),
            frozenset(spec.name for spec in inputs if len(spec.shape) >= 2 and spec.shape[1] == -1),
        )
        return cls(
            source.name,
            source.version,
            source.onnx_path,
            inputs,
            outputs,
            metadata,
            session,
            batcher,
            batch_limit,
            limits,
            engines,
        )

    def limits_json(self, max_request_bytes: int) -> dict[str, int]:
        """The limits a request to this model must keep (model metadata and config report them)."""
        return {
            "max_jets_per_request": self.limits.max_jets,
            "max_particles_per_jet": self.limits.max_particles,
            "max_request_bytes": max_request_bytes,
        }

    async def infer(self, inputs: Tensors) -> Tensors:
        """The outputs for ``inputs``, checked against the model's inputs, from the dynamic batcher."""
        check_inputs(inputs, self.inputs, self.name)
        try:
            return await self.batcher.submit(inputs)
        except RuntimeError as error:  # shutting down
            raise ProtocolError(str(error), 503) from None
        except Exception as error:  # onnxruntime rejected the batch: a server-side failure
            raise ProtocolError(f"model {self.name!r} failed: {error}", 500) from None

    def metadata_json(self, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> dict[str, Any]:
        """The model's metadata as the KServe v2 protocol answers ``GET /v2/models/<name>``."""
        content: dict[str, Any] = {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": [spec.to_json() for spec in self.outputs],
        }
        content["parameters"] = {
            key: self.metadata[key] for key in ("model", "task", "class_names", "version") if key in self.metadata
        } | self.limits_json(max_request_bytes)
        return content


def choose_engines(
    source: ModelSource, metadata: dict[str, Any], requested: str, max_batch_size: int
) -> tuple[dict[int, str], EagerEngine | None]:
    """The engine for each batch-size range of the model of ``source`` (keyed by the range's
    largest batch size; the last range takes every larger batch), and its PyTorch engine if one
    is needed. Each range's choice and its reason are logged.

    ``auto``: the faster engine recorded at export per measured batch size (``engine_choice``);
    PyTorch needs the run's weights beside the ONNX file (a run directory, not a Triton
    repository): without them, onnxruntime runs and the log says that PyTorch was faster.
    """
    recorded = metadata.get(METADATA_KEY)
    choice = None if recorded is None else EngineChoice.from_json(recorded, str(source.onnx_path))
    run = RunDirectory(source.onnx_path.parent)
    has_weights = run.is_finished() and run.weights_file.is_file()
    sizes = (
        [timing.batch_size for timing in choice.timings]
        if choice is not None and requested == AUTO
        else [max_batch_size]
    )
    engines: dict[int, str] = {}
    for size in sizes:
        engines[size], reason = resolve_engine(
            requested, choice, size, torch_available=has_weights, what=f"model {source.name} ({source.onnx_path})"
        )
        log.info(
            "model %s, batches of up to %s jets: %s",
            source.name,
            size if size != sizes[-1] else "any number of",
            reason,
        )
    eager = None
    if TORCH in engines.values():
        try:
            eager = EagerEngine.from_run(run.path, batch_size=max_batch_size)
        except HeplearnError as error:
            if requested == TORCH:
                raise
            log.warning(
                "model %s: PyTorch was faster for some batch sizes but cannot run here (%s); "
                "onnxruntime runs every batch",
                source.name,
                error,
            )
            engines = dict.fromkeys(engines, ONNX)
    return engines, eager


def _particle_limit(metadata: dict[str, Any], configured: int | None) -> int:
    """The most particles per jet: the run's particle length (from the export metadata), capped by ``configured``."""
    groups = metadata.get("groups")
    lengths = (
        [group.get("length") for group in groups.values() if isinstance(group, dict)]
        if isinstance(groups, dict)
        else []
    )
    trained = max((length for length in lengths if isinstance(length, int) and length > 0), default=None)
    limits = [limit for limit in (trained, configured) if limit]
    return min(limits) if limits else DEFAULT_MAX_PARTICLES


def _spec(item: Any) -> TensorSpec:
    if item.type not in ONNX_TYPES:
        raise DataError(f"model tensor {item.name!r} has type {item.type}, which the server does not handle")
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in item.shape)
    axes = tuple(dim if isinstance(dim, str) else "" for dim in item.shape)
    return TensorSpec(item.name, ONNX_TYPES[item.type], shape, axes)


def load_models(
    sources: Sequence[str | os.PathLike[str]],
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    max_queue_delay_ms: float = DEFAULT_QUEUE_DELAY_MS,
    threads: int | None = None,
    max_jets_per_request: int = DEFAULT_MAX_JETS_PER_REQUEST,
    max_particles: int | None = None,
    engine: str = AUTO,
) -> dict[str, ServedModel]:
    """Every model of ``sources`` by name; two models of one name are an error. ``engine``: see
    ``ServedModel.load``."""
    if not sources:
        raise DataError("no model given: pass exported runs, a directory of them or a Triton repository")
    models: dict[str, ServedModel] = {}
    for source in sources:
        for found in find_models(source):
            if found.name in models:
                raise DataError(
                    f"two models are named {found.name!r} ({models[found.name].path} and {found.onnx_path}); rename one"
                )
            models[found.name] = ServedModel.load(
                found, max_batch_size, max_queue_delay_ms / 1000, threads, max_jets_per_request, max_particles, engine
            )
            log.info("model %s (version %s) from %s", found.name, found.version, found.onnx_path)
    return models


def find_model(models: Mapping[str, ServedModel], name: str, version: str | None = None) -> ServedModel:
    """The model called ``name`` (at ``version``, if given), else a 404 ``ProtocolError``."""
    if name not in models:
        raise ProtocolError(f"unknown model {name!r} (served: {', '.join(sorted(models))})", 404)
    model = models[name]
    if version not in (None, "", model.version):
        raise ProtocolError(f"model {name!r} has no version {version!r} (served: {model.version})", 404)
    return model
