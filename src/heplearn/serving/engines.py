"""The two ways to run a model on raw jets: the exported ONNX graph in onnxruntime, or PyTorch.

Both take the raw (unstandardised) ``JetArrays`` that the data layer reads and return class
probabilities (or regression outputs). The ONNX graph standardises its inputs itself (see
``export.py``); PyTorch goes through ``TrainedModel.predict``, which does the same in numpy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from typing_extensions import override

from heplearn.data.jets import JetArrays
from heplearn.errors import DataError
from heplearn.optional import optional_import

if TYPE_CHECKING:
    import onnxruntime

MASK = "mask"
DEFAULT_BATCH_SIZE = 4096  # jets per call of a model without particles, and per TorchEngine batch
# Jets per onnxruntime call of a particle model, sorted by multiplicity and each call cut to its
# longest jet: past a few dozen jets the cost per jet grows with the batch (memory traffic). On
# 512 jets (`python benchmarks/bench_infer.py`, paper presets), calls of 32 / 128 / 512 jets ran
# ParticleNet at 894 / 616 / 358 jets/s and ParT at 636 / 604 / 267.
JETS_PER_CALL = 32


def session_options(threads: int | None = None, *, spinning: bool = True) -> onnxruntime.SessionOptions:
    """The onnxruntime settings of every session heplearn opens (engines, server, benchmarks).

    All graph optimisations (onnxruntime's default, stated so that it stays so): at load time it
    fuses, in heplearn's exported graphs, ParticleNet's Gemm + ReLU (FusedGemm) and ParT's
    bias + GELU (BiasGelu), among others; the exported files keep standard ONNX ops only. The
    optimised graph is not saved: it would hold machine-specific kernels, and loading takes
    well under a second. ``threads``: intra-op threads (None or 0: every core, onnxruntime's
    default, unless the process may use fewer: a CPU affinity or a container's CPU quota, which
    onnxruntime does not see, then those); operators run one at a time. On the 2-core reference
    machine these defaults were the fastest at batch sizes 1 and 64: one thread was 1.5-1.7×
    slower at batch 1, no spinning of idle threads 1.4×, the parallel executor 2.5× (ParT,
    ``benchmarks/bench_infer.py`` setup; ``--ab`` measures them again).
    """
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    threads = threads or _capped_threads()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _onnxruntime() -> ModuleType:
    """onnxruntime (the ``export`` and ``serve`` extras); a ``MissingExtraError`` naming it when absent."""
    return optional_import("onnxruntime", "running an exported model (the onnx engine: onnxruntime)")


DEVICES = ("auto", "cpu", "cuda", "tensorrt")
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"


def execution_providers(device: str = "auto", available: Sequence[str] | None = None) -> list[str]:
    """The onnxruntime execution providers for ``device``, best first, CPU last as the fallback.

    ``available`` (default: ``onnxruntime.get_available_providers()``; the onnxruntime-gpu wheel
    lists CUDA and TensorRT). ``auto``: CUDA when the build has it, else the CPU. ``cuda``: CUDA
    (a ``DataError`` if this onnxruntime has none). ``tensorrt``: TensorRT,
    then CUDA for the nodes TensorRT does not take (NonZero and the data-dependent shapes of the
    real-pair path). TensorRT builds an engine for each new input shape, which the dynamic
    particle axis makes frequent, so ``auto`` does not pick it: ask for it. Nodes a provider
    cannot run fall back to the next one, in this order.
    """
    if device not in DEVICES:
        raise DataError(f"device {device!r}: choose one of {', '.join(DEVICES)}")
    if available is None:
        available = _onnxruntime().get_available_providers()
    wanted = {
        "auto": [CUDA_PROVIDER],
        "cpu": [],
        "cuda": [CUDA_PROVIDER],
        "tensorrt": [TENSORRT_PROVIDER, CUDA_PROVIDER],
    }[device]
    missing = [name for name in wanted if name not in available]
    if device in {"cuda", "tensorrt"} and missing:
        raise DataError(
            f"device {device}: this onnxruntime has no {', '.join(missing)} (it has "
            f"{', '.join(available)}); install onnxruntime-gpu, or use device cpu"
        )
    return [name for name in wanted if name in available] + [CPU_PROVIDER]


def _provider_options(provider: str) -> dict[str, str]:
    # exact float32 on the GPU, so that the export's 1e-5 agreement check holds there too
    # (onnxruntime's CUDA provider may use TF32 for MatMul/Gemm otherwise)
    return {"use_tf32": "0"} if provider == CUDA_PROVIDER else {}


def _capped_threads() -> int | None:
    """The usable cores where a CPU quota or affinity leaves fewer than the machine has (else None:
    onnxruntime's own default, one thread per physical core)."""
    from heplearn.serving.machine import usable_cores

    cores = usable_cores()
    return cores if cores < (os.cpu_count() or cores) else None


def open_session(
    path: str | os.PathLike[str], threads: int | None = None, *, spinning: bool = True, device: str = "auto"
) -> onnxruntime.InferenceSession:
    """An onnxruntime session on the ONNX file ``path`` with ``session_options``, on the
    providers ``execution_providers(device)`` picks (the CPU where there is no GPU build)."""
    providers = execution_providers(device)
    return _onnxruntime().InferenceSession(
        str(path),
        session_options(threads, spinning=spinning),
        providers=[(name, _provider_options(name)) for name in providers],
    )


class Engine(Protocol):
    """Something that scores jets: the ONNX session or the PyTorch model of a run."""

    def predict(self, arrays: JetArrays) -> np.ndarray:
        """The model's outputs for ``arrays`` (jets, outputs)."""


class OnnxEngine:
    """An exported model in onnxruntime, fed raw arrays (the graph standardises them itself)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        threads: int | None = None,
        batch_size: int | None = None,
        *,
        device: str = "auto",
    ) -> None:
        self.session = open_session(path, threads, device=device)
        self.input_names = [item.name for item in self.session.get_inputs()]
        self.output_names = [self.session.get_outputs()[0].name]
        self.batch_size = batch_size

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The output of one onnxruntime call on ``feed`` as it is."""
        return self.session.run(self.output_names, feed)[0]

    def run_batch(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The outputs of a batch of raw inputs, in calls of ``batch_size`` jets (``run_by_multiplicity``)."""
        return run_by_multiplicity(lambda batch: [self.run(batch)], feed, self.batch_size)[0]

    def predict(self, arrays: JetArrays) -> np.ndarray:
        """The scores of ``arrays`` in the input order (see ``run_by_multiplicity``)."""
        feed = arrays_to_feed(arrays, self.input_names)
        if len(arrays) == 0:
            return np.empty((0, 0), np.float32)
        return self.run_batch(feed)


class EagerEngine:
    """The exported module (``export.DeployableModel``: raw inputs, standardisation, network and
    the task's outputs) in eager PyTorch, fed exactly what the ONNX graph is fed: the PyTorch
    side that ``serve`` runs and ``export`` times (``engine_choice``). A batch goes in one call
    of at most ``batch_size`` jets, sorted by multiplicity and cut to its longest jet."""

    def __init__(self, module: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.module = module.eval()
        self.input_names: list[str] = list(module.input_names)
        self.batch_size = batch_size

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], batch_size: int = DEFAULT_BATCH_SIZE) -> EagerEngine:
        """The network of the run ``run_dir`` (a neural network: classical models have no module)."""
        from heplearn.serving.export import deployable_model
        from heplearn.trained_model import TrainedModel

        return cls(deployable_model(TrainedModel.load(run_dir)), batch_size)

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The output of one eager call on ``feed`` as it is."""
        import torch

        with torch.inference_mode():
            tensors = [torch.from_numpy(np.require(feed[name], requirements=["C", "W"])) for name in self.input_names]
            return self.module(*tensors).numpy()

    def run_batch(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The outputs of a batch of raw inputs (``run_by_multiplicity`` with ``batch_size``)."""
        return run_by_multiplicity(lambda batch: [self.run(batch)], feed, self.batch_size)[0]

    def predict(self, arrays: JetArrays) -> np.ndarray:
        """The scores of ``arrays`` in the input order."""
        if len(arrays) == 0:
            return np.empty((0, 0), np.float32)
        return self.run_batch(arrays_to_feed(arrays, self.input_names))


def run_by_multiplicity(
    run: Callable[[dict[str, np.ndarray]], list[np.ndarray]], feed: dict[str, np.ndarray], batch_size: int | None = None
) -> list[np.ndarray]:
    """The outputs of ``run`` over ``feed``, computed on batches of at most ``batch_size`` jets of
    similar multiplicity, each cut to its longest jet; returned in the input order. ``batch_size``
    None: ``JETS_PER_CALL`` for particle models, ``DEFAULT_BATCH_SIZE`` for the others.

    The graphs have a dynamic particle axis; the cut drops padding only because real particles
    come first, which ``left_aligned`` makes so for any mask (heplearn's data always are; a client
    may send real particles anywhere). ParT's attention and pair features cost the square of that
    axis, and every network's per-jet cost grows with its padded length. Without a ``mask`` the
    jets go as they are.
    """
    feed = left_aligned(feed)
    mask = feed.get(MASK)
    batch_size = batch_size or (DEFAULT_BATCH_SIZE if mask is None else JETS_PER_CALL)
    if mask is None:
        order = np.arange(len(next(iter(feed.values()))))
    else:
        counts = mask.sum(axis=1)
        order = np.argsort(counts, kind="stable")
        particle_axis = _particle_axis_names(feed, mask)
    parts = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = {name: values[rows] for name, values in feed.items()}
        if mask is not None:
            longest = max(int(counts[rows].max()), 1)
            batch = {name: values[:, :longest] if name in particle_axis else values for name, values in batch.items()}
        parts.append(run(batch))
    inverse = np.argsort(order, kind="stable")
    return [np.concatenate(outputs)[inverse] for outputs in zip(*parts, strict=True)]


def left_aligned(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``feed`` with each jet's real particles moved to the front of the particle axis, in their order.

    A jet's real particles are those its ``mask`` marks, wherever they are; the padding (whatever
    values it holds) follows them. Feeds that are already left-aligned, or have no mask, come back
    as they are (the check is one comparison of the mask).
    """
    mask = feed.get(MASK)
    if mask is None or mask.ndim != 2:
        return feed
    counts = mask.sum(axis=1)
    if np.array_equal(mask, np.arange(mask.shape[1]) < counts[:, None]):
        return feed
    order = np.argsort(~mask, axis=1, kind="stable")  # real particles first, each group in its order
    names = _particle_axis_names(feed, mask)
    return {
        name: np.take_along_axis(values, order.reshape(order.shape + (1,) * (values.ndim - 2)), axis=1)
        if name in names
        else values
        for name, values in feed.items()
    }


def _particle_axis_names(feed: dict[str, np.ndarray], mask: np.ndarray) -> set[str]:
    return {name for name, values in feed.items() if values.shape[:2] == mask.shape}


class TorchEngine:
    """The run's own model (any model, neural or classical) through ``TrainedModel.predict``."""

    def __init__(self, run_dir: str | os.PathLike[str], batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        from heplearn.trained_model import TrainedModel

        self.model = TrainedModel.load(run_dir)
        self.batch_size = batch_size

    @override
    def predict(self, arrays: JetArrays) -> np.ndarray:
        return self.model.predict(arrays, self.batch_size)


def arrays_to_feed(arrays: JetArrays, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The ONNX inputs ``names`` from raw arrays: input groups by name, and ``mask``."""
    feed: dict[str, np.ndarray] = {}
    for name in names:
        if name == MASK:
            if arrays.mask is None:
                raise DataError("the model needs a particle mask, but the data have no per-particle group")
            feed[name] = arrays.mask
        elif name in arrays.inputs:
            feed[name] = arrays.inputs[name]
        else:
            raise DataError(
                f"the model reads input {name!r}, which the data config does not provide "
                f"(it has {', '.join(arrays.inputs)})"
            )
    return feed
