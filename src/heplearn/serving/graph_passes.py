"""Graph clean-ups of an exported ONNX model that onnxruntime's optimiser does not make.

A task's postprocessing reads pieces of the network's raw output: the VAE writes
``[μ | log σ² | x̂]`` as one ``Concat`` and its MSE score slices ``x̂`` back out, the latent
scores slice ``μ``. onnxruntime keeps both the ``Concat`` (a copy of every output row) and the
``Slice`` (a second copy). ``fold_concat_slices`` replaces a ``Slice`` that takes exactly one
input of a ``Concat`` along the concatenated axis by that input, and ``prune`` then drops the
nodes nothing reads any more. The result computes the same numbers with fewer copies
(``benchmarks/bench_anomaly_onnx.py`` measures the effect on the anomaly scorers).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["fold_concat_slices", "prune", "simplify"]

# Slice's "to the end" is any end at or past the axis size; exporters write INT64_MAX
_TO_THE_END = np.iinfo(np.int64).max // 2


def simplify(model: Any) -> Any:
    """``fold_concat_slices`` then ``prune`` on an ``onnx.ModelProto`` (changed in place and returned)."""
    fold_concat_slices(model)
    prune(model)
    return model


def fold_concat_slices(model: Any) -> int:
    """Replace each ``Slice`` that selects exactly one input of a ``Concat`` by an ``Identity`` of it.

    The slice must have constant starts/ends (and axes, steps = 1), one axis equal to the
    concatenation axis, and the extents of the concatenated inputs along it up to the chosen one
    must be known from the graph's shapes. Returns how many slices were folded.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    shapes = _static_shapes(model)
    producers = {output: node for node in graph.node for output in node.output}
    folded = 0
    for index, node in enumerate(graph.node):
        if node.op_type != "Slice" or node.input[0] not in producers:
            continue
        concat = producers[node.input[0]]
        if concat.op_type != "Concat":
            continue
        source = _sliced_input(node, concat, constants, shapes)
        if source is None:
            continue
        graph.node[index].CopyFrom(helper.make_node("Identity", [source], [node.output[0]], name=node.name))
        folded += 1
    return folded


def prune(model: Any) -> int:
    """Drop the nodes (and initializers) no graph output depends on; returns how many nodes went.

    A graph with control flow (If, Loop, Scan) is left alone: its subgraphs read outer names.
    """
    graph = model.graph
    if any(_has_subgraph(node) for node in graph.node):
        return 0
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(output in needed for output in node.output):
            kept.append(node)
            needed.update(node.input)
    removed = len(graph.node) - len(kept)
    if removed:
        kept.reverse()
        del graph.node[:]
        graph.node.extend(kept)
        unused = [init for init in graph.initializer if init.name not in needed]
        for init in unused:
            graph.initializer.remove(init)
    return removed


def _sliced_input(
    node: Any, concat: Any, constants: dict[str, np.ndarray], shapes: dict[str, list[int | None]]
) -> str | None:
    """The ``Concat`` input that ``node`` (a ``Slice``) selects exactly, or None."""
    arguments = list(node.input) + [""] * (5 - len(node.input))
    data, starts, ends, axes, steps = arguments
    if any(name and name not in constants for name in (starts, ends, axes, steps)) or not (starts and ends):
        return None
    rank = len(shapes.get(data) or [])
    axis_attribute = next((a.i for a in concat.attribute if a.name == "axis"), None)
    if axis_attribute is None or rank == 0:
        return None
    concat_axis = axis_attribute % rank
    starts_value, ends_value = constants[starts].reshape(-1), constants[ends].reshape(-1)
    axes_value = constants[axes].reshape(-1) if axes else np.arange(len(starts_value))
    if len(starts_value) != 1 or len(axes_value) != 1 or int(axes_value[0]) % rank != concat_axis:
        return None
    if steps and int(constants[steps].reshape(-1)[0]) != 1:
        return None
    start, end = int(starts_value[0]), int(ends_value[0])
    if start < 0:
        return None
    offset = 0
    for position, name in enumerate(concat.input):
        shape = shapes.get(name)
        size = shape[concat_axis] if shape and len(shape) == rank else None
        last = position == len(concat.input) - 1
        if start == offset and ((size is not None and end == offset + size) or (last and end >= _TO_THE_END)):
            return str(name)
        if size is None:
            return None
        offset += size
        if offset > start:
            return None
    return None


def _static_shapes(model: Any) -> dict[str, list[int | None]]:
    """Each named value's shape as ints (None for a symbolic or unknown dimension)."""
    shapes: dict[str, list[int | None]] = {}
    values: Iterable[Any] = [*model.graph.input, *model.graph.value_info, *model.graph.output]
    for value in values:
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            shapes[value.name] = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _has_subgraph(node: Any) -> bool:
    """Whether ``node`` holds a subgraph (control flow: If, Loop, Scan)."""
    return any(attribute.type in (5, 10) for attribute in node.attribute)  # GRAPH, GRAPHS
