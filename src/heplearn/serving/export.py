"""ONNX export of a trained run: preprocessing, network and softmax in one graph.

``export_run(run_dir)`` writes ``run_dir/model.onnx``. The graph takes the RAW padded inputs, one
tensor per input group the network reads (named after the batch keys: ``particles``, ``points``,
``vectors``, ``jet``, ...) and ``mask`` (bool, True for real particles); it applies the run's
standardisation ``clip((x − centre) / scale, ±clip)``, sets padded slots to the pad value, runs the
network and, for classifiers, the softmax. The output is ``probabilities`` (classification) or
``outputs`` (regression). Batch and particle axes are dynamic. The class names, the resolved
config, the preprocessing and the heplearn version are stored as ONNX ``metadata_props``.

After writing, PyTorch and onnxruntime are compared on real jets (the run's test split, or given
files): the largest absolute difference of the probabilities must stay below ``tolerance``.

Export notes per model (torch.export / dynamo exporter, opset 20, so that GELU is one ONNX op):
- ParticleNet and ParT trace a graph of their own in eval mode (``torch.compiler.is_exporting``;
  same outputs as eager, tested): every batch norm folded into its dense layer
  (``heplearn.models.folding``), ParticleNet's edges as one 2-D matrix (one fused Gemm + ReLU per
  edge layer in onnxruntime), ParT's attention written out with one Transpose per tensor, and
  ParT's pairs and per-particle layers computed for the real pairs and particles only (lists
  whose lengths the graph computes with NonZero; the inputs keep their dynamic axes). In training
  mode they export the plain padded computation; attention is then traced with the math kernel
  of ``scaled_dot_product_attention`` so that the decomposed graph reshapes correctly with a
  symbolic particle count. Only standard ONNX ops are written; onnxruntime adds its own fused
  ops (FusedGemm, BiasGelu, ...) when it loads the graph (``engines.session_options``).
- EFN uses ``torch.hypot`` and the RNN a stable sort; onnxscript's torch library has no ONNX
  function for either, so both get small translations here (``√(x² + y²)``; ONNX ``TopK``, whose
  ties keep the lower index first, which is what a stable ascending sort does). The RNN's GRU then
  exports with a dynamic particle axis.
- The CNN's adaptive pooling is exported for one image size: its image axes are fixed (batch stays
  dynamic).
- The BDT goes through onnxmltools (``convert_xgboost``) when it is installed; cuts and the
  projective likelihood cannot be exported.

onnx, onnxscript (torch.onnx's exporter), onnxruntime and onnxmltools are the ``export`` extra
(``pip install 'heplearn[export]'``), imported on first use (``heplearn.optional``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from typing_extensions import override

from heplearn import __version__
from heplearn.data.files import atomic_path
from heplearn.data.in_memory import load_arrays
from heplearn.data.jets import JetArrays
from heplearn.data.preprocessing import Preprocessing, VariableScaling
from heplearn.errors import DataError, HeplearnError
from heplearn.optional import optional_import
from heplearn.runs import ONNX_FILE
from heplearn.serving.engine_choice import METADATA_KEY, TIMING_SECONDS, EngineChoice, measure_engines
from heplearn.serving.engines import MASK, EagerEngine, OnnxEngine, arrays_to_feed
from heplearn.serving.machine import describe_machine
from heplearn.serving.protocol import TensorSpec
from heplearn.tasks import Batch, Classification
from heplearn.trained_model import TrainedModel

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

OPSET = 20  # >= 17 asked; 20 has a native Gelu (onnxruntime >= 1.17, Triton >= 24.04)
CLASSICAL_CONVERTER_OPSET = 15  # the highest onnxmltools' XGBoost converter takes (its trees are ai.onnx.ml)
PROBABILITIES = Classification.output_tensor  # the output of every classifier's graph
TOLERANCE = 1e-5
CHECK_JETS = 2000
METADATA_PREFIX = "heplearn."
MICROSOFT_DOMAIN = "com.microsoft"  # onnxruntime's contrib ops (ParT's fused attention)
QUANTIZATIONS = ("int8",)
QUANTIZED_TOLERANCE = 0.1  # max |Δp| of the int8 graph against PyTorch: dynamic int8 rounds every dense layer


class ExportError(HeplearnError):
    """A model cannot be exported, or the exported model disagrees with PyTorch."""


@dataclass
class ExportResult:
    """What ``export_run`` wrote and how well onnxruntime agrees with PyTorch."""

    onnx_path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    max_difference: float | None = None  # largest |p_torch − p_onnx| on the checked jets
    checked_jets: int = 0
    check_files: list[Path] = field(default_factory=list)
    triton_model: Path | None = None
    seconds: float = 0.0
    engine_choice: EngineChoice | None = None  # the timings of both engines on this machine
    quantization: Quantization | None = None


@dataclass(frozen=True)
class Quantization:
    """What post-training quantisation did: its agreement with PyTorch and the AUC it cost.

    ``auc_float`` and ``auc_quantized``: the AUC of the first class against the others on the
    checked jets, from the float32 graph and the quantised one (None unless the task is a
    classification with both kinds of jets among them).
    """

    kind: str
    max_difference: float
    auc_float: float | None
    auc_quantized: float | None

    @property
    def auc_change(self) -> float | None:
        """AUC of the quantised graph minus that of the float one."""
        if self.auc_float is None or self.auc_quantized is None:
            return None
        return self.auc_quantized - self.auc_float


# --------------------------------------------------------------------------- the exported module
class Standardise(nn.Module):
    """``clip((x − centre) / scale, ±clip)`` per variable; padded slots set to the pad value."""

    def __init__(self, scalings: Sequence[VariableScaling], pad_value: float) -> None:
        super().__init__()
        # float32 constants, as Preprocessing.scale uses, so both give the same numbers
        self.register_buffer("centre", torch.tensor([s.centre for s in scalings], dtype=torch.float32))
        self.register_buffer("inverse_scale", torch.tensor([1 / s.scale for s in scalings], dtype=torch.float32))
        self.register_buffer(
            "bound", torch.tensor([s.clip if s.clip is not None else np.inf for s in scalings], dtype=torch.float32)
        )
        self.pad_value = float(pad_value)
        self.identity = all(s.centre == 0 and s.scale == 1 and s.clip is None for s in scalings)

    @override
    def forward(self, values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if not self.identity:
            scaled = (values - self.centre) * self.inverse_scale
            values = torch.minimum(torch.maximum(scaled, -self.bound), self.bound)
        if mask is not None:
            pad = torch.full((), self.pad_value, dtype=values.dtype)
            values = torch.where(mask.unsqueeze(-1), values, pad)
        return values


class DeployableModel(nn.Module):
    """Raw padded inputs (positional, in ``input_names`` order) → what the task makes of the outputs.

    ``postprocess(outputs, batch)`` is the task's (``Task.postprocess``: softmax probabilities,
    weights, an anomaly score); the graph ends with it. None leaves the raw outputs.
    """

    def __init__(
        self,
        network: nn.Module,
        input_names: Sequence[str],
        preprocessing: Preprocessing | None,
        postprocess: Callable[[torch.Tensor, Batch], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.input_names = list(input_names)
        self.postprocess = postprocess
        self.standardise = nn.ModuleDict()
        if preprocessing is not None:
            for name in self.input_names:
                if name in preprocessing.groups:
                    self.standardise[name] = Standardise(preprocessing.groups[name], preprocessing.pad_values[name])
        self.per_particle = {name: bool(preprocessing and preprocessing.lengths.get(name)) for name in input_names}

    @override
    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        batch = dict(zip(self.input_names, tensors, strict=True))
        mask = batch.get(MASK)
        for name, standardise in self.standardise.items():
            batch[name] = standardise(batch[name], mask if self.per_particle[name] else None)
        outputs = self.network(batch)
        return self.postprocess(outputs, batch) if self.postprocess is not None else outputs


# --------------------------------------------------------------------------- public functions
def export_run(
    run_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    triton_repository: str | os.PathLike[str] | None = None,
    check_files: Sequence[str | os.PathLike[str]] | None = None,
    *,
    triton_name: str | None = None,
    max_batch_size: int = 1024,
    tolerance: float = TOLERANCE,
    check_jets: int = CHECK_JETS,
    timing_seconds: float = TIMING_SECONDS,
    quantize: str | None = None,
    quantized_tolerance: float = QUANTIZED_TOLERANCE,
) -> ExportResult:
    """Export a run to ONNX (``run_dir/model.onnx`` by default), check it, optionally for Triton.

    The agreement check runs on ``check_files`` if given, else on the run's test split (then its
    validation split): at most ``check_jets`` jets. A difference above ``tolerance`` is an
    ``ExportError`` and nothing is written.

    Then both engines are timed on those jets on this machine (``engine_choice.measure_engines``,
    at least ``timing_seconds`` per engine, batch size and round; 0 skips it) and the faster one
    per batch-size range is recorded in the model's metadata (``heplearn.engine_choice``), for
    ``predict`` and ``serve`` to run it.

    ``quantize="int8"``: the checked float graph is quantised after the fact (onnxruntime's
    dynamic int8: int8 weights, activations quantised per call), checked against PyTorch with
    ``quantized_tolerance``, and written instead of the float one; the AUC change on the checked
    jets is reported in ``ExportResult.quantization``. Never done unless asked.
    """
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"quantize {quantize!r}: choose one of {', '.join(QUANTIZATIONS)}")
    # onnx writes the graph, onnxruntime checks it (onnxscript, for a network: export_network)
    optional_import("onnx", EXPORT_NEEDED_BY)
    optional_import("onnxruntime", EXPORT_NEEDED_BY)
    started = time.perf_counter()
    run_dir = Path(run_dir)
    model = TrainedModel.load(run_dir)
    destination = Path(output) if output is not None else run_dir / ONNX_FILE
    files = _check_files(model, check_files)
    arrays, _ = load_arrays(files, model.config.data, check_jets)
    quantization, choice = None, None
    with atomic_path(destination) as temporary:
        inputs, outputs = _write_onnx(model, temporary)
        expected = model.predict(arrays)
        got = OnnxEngine(temporary).predict(arrays)
        difference = _difference(expected, got)
        if not difference <= tolerance:  # also catches NaN
            raise ExportError(
                f"{run_dir}: onnxruntime and PyTorch differ by up to {difference:.3g} on "
                f"{len(arrays)} jets (tolerance {tolerance:g}); the model was not written"
            )
        if quantize is not None:
            quantization = _quantize(temporary, model, arrays, expected, got, quantized_tolerance, run_dir)
        if timing_seconds > 0 and model.network is not None and len(arrays):
            choice = time_engines(temporary, model, arrays, timing_seconds)
            _add_metadata(temporary, {METADATA_KEY: choice.to_json()})
    log.info(
        "%s: exported to %s; onnxruntime agrees with PyTorch to %.2g on %d jets",
        run_dir,
        destination,
        difference,
        len(arrays),
    )
    if choice is not None:
        log.info("%s: faster engine on this machine: %s", run_dir, choice.describe())
    result = ExportResult(
        destination, inputs, outputs, difference, len(arrays), files, engine_choice=choice, quantization=quantization
    )
    if triton_repository is not None:
        from heplearn.serving.triton import write_triton_model

        result.triton_model = write_triton_model(
            destination, triton_repository, triton_name or run_dir.name, inputs, outputs, max_batch_size=max_batch_size
        )
    result.seconds = time.perf_counter() - started
    return result


def time_engines(
    onnx_path: str | os.PathLike[str], model: TrainedModel, arrays: JetArrays, seconds: float = TIMING_SECONDS
) -> EngineChoice:
    """Both engines, as ``predict`` and ``serve`` run them, timed on ``arrays`` on this machine."""
    onnx_engine = OnnxEngine(onnx_path)
    torch_engine = EagerEngine(deployable_model(model))
    feed = arrays_to_feed(arrays, onnx_engine.input_names)
    machine = describe_machine({"torch intra-op": torch.get_num_threads(), "onnxruntime intra-op": "default"})
    return measure_engines(
        onnx_engine.run_batch, torch_engine.run_batch, feed, seconds=seconds, machine=machine.to_json()
    )


def deployable_model(model: TrainedModel) -> DeployableModel:
    """The trained network of ``model`` as exported: raw inputs in, the task's outputs out (eval mode)."""
    if model.network is None:
        raise ExportError(f"model {model.name}: a classical model has no PyTorch module to deploy")
    keys = list(getattr(model.network, "input_keys", ()))
    return DeployableModel(model.network, keys, model.preprocessing, model.task.postprocess).eval()


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The heplearn metadata of an exported model (JSON values decoded), keys without prefix."""
    model = _onnx().load(str(path), load_external_data=False)
    metadata: dict[str, Any] = {}
    for prop in model.metadata_props:
        if prop.key.startswith(METADATA_PREFIX):
            key = prop.key.removeprefix(METADATA_PREFIX)
            metadata[key] = prop.value if key == "version" else json.loads(prop.value)
    return metadata


def export_network(
    module: nn.Module,
    example: Sequence[torch.Tensor],
    input_names: Sequence[str],
    output_name: str,
    path: str | os.PathLike[str],
    dynamic_axes: Sequence[dict[int, str]],
    *,
    fused_attention: bool = False,
    simplify_graph: bool = True,
) -> None:
    """Export any module taking positional tensors to ONNX with named dynamic axes (opset ``OPSET``).

    ``simplify_graph``: slices of a concatenation read the concatenated tensor directly
    (``heplearn.serving.graph_passes``; off only to measure what that saves).

    ``fused_attention``: ParT's attention as onnxruntime's ``com.microsoft.MultiHeadAttention``
    (one node per attention; the file then runs in onnxruntime only); off by default, as it
    was not faster on the reference machine (``benchmarks/bench_infer.py --ab`` measures it).
    """
    from heplearn.models.part_export import fused_attention as fused_attention_switch
    from heplearn.serving.graph_passes import simplify

    onnx = _onnx()
    optional_import("onnxscript", EXPORT_NEEDED_BY)  # torch.onnx's exporter; checked before its errors are caught
    dims: dict[str, Any] = {}
    shapes = tuple(
        {axis: dims.setdefault(name, torch.export.Dim(name)) for axis, name in axes.items()} for axes in dynamic_axes
    )
    module.eval()
    try:
        with (
            quiet_exporter(),
            torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH),
            fused_attention_switch(fused_attention),
        ):
            program = torch.onnx.export(
                module,
                tuple(example),
                None,
                input_names=list(input_names),
                output_names=[output_name],
                dynamic_shapes=(shapes,),
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                custom_translation_table=_translations(),
                verbose=False,
            )
    except Exception as error:  # the exporter raises many kinds; say which model and why, in one line
        summary = str(error).split("## Exception summary", 1)[-1].strip().splitlines()
        reason = next((line for line in summary if line.strip()), type(error).__name__)
        raise ExportError(
            f"cannot export {type(getattr(module, 'network', module)).__name__} to ONNX: {reason[:500]}"
        ) from error
    assert program is not None
    # a task's postprocessing slices pieces of the network's concatenated output: read them directly
    proto = program.model_proto
    onnx.save_model(simplify(proto) if simplify_graph else proto, str(path))


# --------------------------------------------------------------------------- internals
EXPORT_NEEDED_BY = "ONNX export (heplearn export)"


def _onnx() -> ModuleType:
    """onnx (the ``export`` extra; ``serve`` has it too); a ``MissingExtraError`` naming it when absent."""
    return optional_import("onnx", "ONNX export and reading an exported model (onnx)")


def _write_onnx(model: TrainedModel, path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    if model.network is None:
        return _write_classical(model, path)
    network = model.network
    keys: list[str] = list(getattr(network, "input_keys", ()))
    data = model.config.data
    missing = [key for key in keys if key != MASK and key not in data.inputs]
    if missing:
        raise ExportError(
            f"model {model.name}: reads {', '.join(missing)}, which the run's data config does not "
            "provide as input groups; export it with export_network instead"
        )
    length = max(data.particle_length or 2, 2)  # sizes 0 and 1 would be specialised by torch.export
    example: list[torch.Tensor] = []
    axes: list[dict[int, str]] = []
    specs: list[TensorSpec] = []
    generator = torch.Generator().manual_seed(0)
    for key in keys:
        if key == MASK:
            example.append(torch.ones(2, length, dtype=torch.bool))
            axes.append({0: "batch", 1: "particles"})
            specs.append(TensorSpec(key, "BOOL", (-1, -1)))
        elif data.inputs[key].image is not None:  # (batch, 1, rows, columns): the image size is fixed
            rows, columns = data.inputs[key].image.shape  # type: ignore[union-attr]
            example.append(torch.rand(2, 1, rows, columns, generator=generator))
            axes.append({0: "batch"})
            specs.append(TensorSpec(key, "FP32", (-1, 1, rows, columns)))
        elif data.inputs[key].per_particle:
            width = len(data.inputs[key].variables)
            example.append(torch.rand(2, length, width, generator=generator) + 1)
            axes.append({0: "batch", 1: "particles"})
            specs.append(TensorSpec(key, "FP32", (-1, -1, width)))
        else:
            width = len(data.inputs[key].variables)
            example.append(torch.rand(2, width, generator=generator))
            axes.append({0: "batch"})
            specs.append(TensorSpec(key, "FP32", (-1, width)))
    output_name = model.task.output_tensor
    outputs = [TensorSpec(output_name, "FP32", (-1, len(model.output_names)))]
    export_network(deployable_model(model), example, keys, output_name, path, axes)
    onnx = _onnx()
    proto = onnx.load(str(path))
    _set_metadata(proto, model, specs, outputs)
    onnx.save_model(proto, str(path))
    return specs, outputs


def _write_classical(model: TrainedModel, path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    if model.name != "bdt":
        raise ExportError(
            f"model {model.name}: the {model.name} classifier is not exportable to ONNX "
            "(only neural networks and the BDT are); apply it with `heplearn predict --engine torch`"
        )
    onnxmltools = optional_import("onnxmltools", "exporting the BDT to ONNX (model bdt)")
    from onnxmltools.convert.common.data_types import FloatTensorType  # type: ignore[import-not-found]

    group = model.config.data.jet_group(model.name)
    width = len(model.config.data.inputs[group].variables)
    converted = onnxmltools.convert_xgboost(
        model.classical.booster_,
        initial_types=[(group, FloatTensorType([None, width]))],
        target_opset=CLASSICAL_CONVERTER_OPSET,
    )
    proto = _reorder_classical_output(converted, len(model.class_names))
    specs = [TensorSpec(group, "FP32", (-1, width))]
    outputs = [TensorSpec(PROBABILITIES, "FP32", (-1, len(model.class_names)))]
    _set_metadata(proto, model, specs, outputs)
    _onnx().save_model(proto, str(path))
    return specs, outputs


def _reorder_classical_output(proto: onnx.ModelProto, classes: int) -> onnx.ModelProto:
    """Keep only the probabilities, in heplearn's class order (binary columns swapped, see ``fit_classical``)."""
    onnx = _onnx()
    graph = proto.graph
    probability_output = next(
        output.name for output in graph.output if output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    )
    raw = "heplearn_raw_probabilities"
    for node in graph.node:
        node.output[:] = [raw if name == probability_output else name for name in node.output]
    order = [1, 0] if classes == 2 else list(range(classes))
    graph.initializer.append(onnx.numpy_helper.from_array(np.array(order, np.int64), "heplearn_class_order"))
    graph.node.append(onnx.helper.make_node("Gather", [raw, "heplearn_class_order"], [PROBABILITIES], axis=1))
    del graph.output[:]
    graph.output.append(onnx.helper.make_tensor_value_info(PROBABILITIES, onnx.TensorProto.FLOAT, [None, classes]))
    if not any(entry.domain in {"", "ai.onnx"} for entry in proto.opset_import):
        proto.opset_import.append(onnx.helper.make_opsetid("", OPSET))
    onnx.checker.check_model(proto)
    return proto


def _set_metadata(
    proto: onnx.ModelProto, model: TrainedModel, inputs: list[TensorSpec], outputs: list[TensorSpec]
) -> None:
    data = model.config.data
    groups = {
        name: {"variables": group.variables, "length": group.length, "pad_value": group.pad_value}
        for name, group in data.inputs.items()
        if name in {spec.name for spec in inputs}
    }
    values = {
        "version": __version__,
        "model": json.dumps(model.name),
        "task": json.dumps(model.task.kind),
        "task_settings": json.dumps(model.task.settings()),
        "output_names": json.dumps(model.output_names),
        "class_names": json.dumps(model.class_names),
        "inputs": json.dumps([spec.to_json() for spec in inputs]),
        "outputs": json.dumps([spec.to_json() for spec in outputs]),
        "groups": json.dumps(groups),
        "preprocessing": json.dumps(model.preprocessing.to_dict()),
        "config": json.dumps(model.config.model_dump(mode="json")),
    }
    del proto.metadata_props[:]
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, value
    proto.producer_name, proto.producer_version = "heplearn", __version__
    proto.doc_string = f"heplearn {model.name} ({model.task.kind}); outputs: {', '.join(model.output_names)}"


def _difference(expected: np.ndarray, got: np.ndarray) -> float:
    return float(np.max(np.abs(expected - got))) if len(expected) else 0.0


def _add_metadata(path: Path, values: dict[str, Any]) -> None:
    """Add (or replace) heplearn metadata entries of the ONNX file ``path`` (JSON values)."""
    onnx = _onnx()
    proto = onnx.load(str(path))
    keys = {METADATA_PREFIX + key for key in values}
    kept = [(prop.key, prop.value) for prop in proto.metadata_props if prop.key not in keys]
    del proto.metadata_props[:]
    for key, value in [*kept, *((METADATA_PREFIX + key, json.dumps(value)) for key, value in values.items())]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(proto, str(path))


def _quantize(
    path: Path,
    model: TrainedModel,
    arrays: JetArrays,
    expected: np.ndarray,
    float_scores: np.ndarray,
    tolerance: float,
    run_dir: Path,
) -> Quantization:
    """Replace the float graph at ``path`` by onnxruntime's dynamic int8 one, checked against PyTorch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_path = path.with_name(path.name + ".float.onnx")
    path.replace(float_path)
    try:
        # int8 weights (signed, per output channel) for the dense layers; the rest stays float
        quantize_dynamic(
            float_path, path, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul", "Gemm"]
        )
    finally:
        float_path.unlink(missing_ok=True)
    _add_metadata(path, {"quantization": "int8"})
    quantized = OnnxEngine(path).predict(arrays)
    difference = _difference(expected, quantized)
    if not difference <= tolerance:
        raise ExportError(
            f"{run_dir}: the int8 model differs from PyTorch by up to {difference:.3g} on "
            f"{len(arrays)} jets (tolerance {tolerance:g}); the model was not written"
        )
    auc_float, auc_quantized = None, None
    labels = np.asarray(arrays.label)
    if model.task.kind == "classification" and labels.ndim == 1 and 0 < np.sum(labels == 0) < len(labels):
        from heplearn.evaluation.metrics import fast_auc

        auc_float = fast_auc(labels == 0, float_scores[:, 0], arrays.weight)
        auc_quantized = fast_auc(labels == 0, quantized[:, 0], arrays.weight)
    result = Quantization("int8", difference, auc_float, auc_quantized)
    log.info(
        "%s: int8 model agrees with PyTorch to %.2g; AUC %s",
        run_dir,
        difference,
        "not computed" if result.auc_change is None else f"{auc_float:.5f} -> {auc_quantized:.5f}",
    )
    return result


def _check_files(model: TrainedModel, given: Sequence[str | os.PathLike[str]] | None) -> list[Path]:
    if given:
        return [Path(file) for file in given]
    data = model.config.data
    for split in ("test", "val"):
        if getattr(data, split):
            return data.files(split)
    raise DataError("the run has no test or val split to check the export on; give files (--check-files)")


def _translations() -> dict[Any, Any]:
    """ONNX translations for the aten/prims ops that onnxscript's torch library lacks, and for
    heplearn's own ``biased_attention`` (ParT's fused attention)."""
    from onnxscript import opset20 as op

    import heplearn.models.part_export  # noqa: F401  (registers torch.ops.heplearn.biased_attention)

    def hypot(self: Any, other: Any) -> Any:
        return op.Sqrt(op.Add(op.Mul(self, self), op.Mul(other, other)))

    def stable_sort(self: Any, *, stable: bool | None = None, dim: int = -1, descending: bool = False) -> Any:
        # ONNX TopK breaks ties by the lower index: a stable sort.
        size = op.Reshape(op.Gather(op.Shape(self), dim, axis=0), op.Constant(value_ints=[1]))
        return op.TopK(self, size, axis=dim, largest=descending, sorted=True)

    def biased_attention(query: Any, key: Any, value: Any, bias: Any, num_heads: int) -> Any:
        # inputs: query, key, value, (QKV bias), (key padding mask), attention_bias
        return _multi_head_attention()(query, key, value, None, None, bias, num_heads=num_heads, scale=1.0)

    return {
        torch.ops.prims.hypot.default: hypot,
        torch.ops.aten.hypot.default: hypot,
        torch.ops.aten.sort.stable: stable_sort,
        torch.ops.heplearn.biased_attention.default: biased_attention,
    }


def _multi_head_attention() -> Any:
    """onnxruntime's contrib op ``com.microsoft.MultiHeadAttention`` (float32, 3-D query/key/value),
    declared for onnxscript, which knows only the standard ops' schemas."""
    from onnx.defs import OpSchema
    from onnxscript import values

    parameter, optional = OpSchema.FormalParameter, OpSchema.FormalParameterOption.Optional
    inputs = [parameter("query", "T")] + [
        parameter(name, "M" if name == "key_padding_mask" else "T", param_option=optional)
        for name in ("key", "value", "bias", "key_padding_mask", "attention_bias")
    ]
    schema = OpSchema(
        "MultiHeadAttention",
        MICROSOFT_DOMAIN,
        1,
        inputs=inputs,
        outputs=[parameter("output", "T")],
        type_constraints=[("T", ["tensor(float)"], ""), ("M", ["tensor(int32)"], "")],
        attributes=[
            OpSchema.Attribute("num_heads", OpSchema.AttrType.INT, ""),
            OpSchema.Attribute("scale", OpSchema.AttrType.FLOAT, ""),
        ],
    )
    return values.Op(values.Opset(MICROSOFT_DOMAIN, 1), "MultiHeadAttention", schema)


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporter's chatter about its own internals (nothing the user can act on)."""
    loggers = [
        logging.getLogger(name)
        for name in ("torch.onnx._internal.exporter._registration", "torch.onnx._internal.exporter._core", "onnxscript")
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*_check_is_size will be removed", category=FutureWarning)
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            warnings.filterwarnings("ignore", message=r".*The axis name: .* will not be used", category=UserWarning)
            warnings.filterwarnings("ignore", message=r".*were assigned during export", category=UserWarning)
            warnings.filterwarnings(
                "ignore", message=r".*\.grad attribute of a Tensor that is not a leaf", category=UserWarning
            )
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
