"""Sampling a flow-matching generator through onnxruntime, with float or int8 weights.

``onnx_velocity(network, slots, quantize)`` exports the flow's velocity network (torch's dynamo
exporter, opset 20; the batch and particle axes dynamic) and opens it in onnxruntime on as many
threads as torch has. With ``quantize``, ``onnxruntime.quantization.quantize_dynamic`` stores the
weights of the matrix products as int8 and quantizes their inputs batch by batch (dynamic
quantization: nothing to calibrate). On one core, the 3-block pair-bias network ran 0.92-0.97× as
fast as PyTorch in float and 1.19-1.26× with int8 weights (network alone); with the JetClass file
written, ``benchmarks/bench_fastsim.py --backend onnx-int8`` gave 1.15× for it and 1.40× for the
network without the pair bias, whose per-pair MLP stays in float. The float graph computes the
network's function (to 10⁻⁶); int8 changes it a little (RMS 0.007 in standardised coordinates on
untrained weights), so a quantized sampler's quality is its own to measure (``heplearn fastsim
evaluate``).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from heplearn.errors import ConfigError
from heplearn.optional import optional_import

#: ``FastSim.generate``'s network backends: PyTorch, onnxruntime in float, onnxruntime with int8 weights.
BACKENDS = ("torch", "onnx", "onnx-int8")
_NEEDED_BY = "fastsim sampling through onnxruntime (the export extra)"


class _Velocity(torch.nn.Module):
    """The velocity network with the padding's ``slots`` fixed: (x, condition, mask) → v."""

    def __init__(self, network: torch.nn.Module, slots: int) -> None:
        super().__init__()
        self.network, self.slots = network, slots

    def forward(self, x: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.network(x, condition, mask, self.slots)[0]


class OnnxVelocity:
    """The velocity network in an onnxruntime session, called as the PyTorch network is:
    ``(x, condition, mask, slots) → (v, None)`` (``FlowMatchingJets.velocity_at``'s ``network``)."""

    def __init__(self, session: Any, slots: int) -> None:
        self.session, self.slots = session, slots

    def __call__(
        self, x: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor, slots: int | None = None
    ) -> tuple[torch.Tensor, None]:
        """The velocity of ``x`` at ``condition`` (with the time features) for the particles in ``mask``."""
        if slots not in (None, self.slots):
            raise ValueError(f"this exported network has {self.slots} slots, not {slots}")
        feeds = {"x": x.numpy(), "condition": condition.numpy(), "mask": np.ascontiguousarray(mask.numpy())}
        return torch.from_numpy(self.session.run(None, feeds)[0]), None


def onnx_velocity(network: torch.nn.Module, slots: int, quantize: bool = False) -> OnnxVelocity:
    """``network`` (a ``FlowMatchingJets``) exported and opened in onnxruntime; ``quantize``: int8 weights."""
    from heplearn.methods.fastsim import _TIME_FEATURES, FlowMatchingJets
    from heplearn.serving.export import quiet_exporter

    if not isinstance(network, FlowMatchingJets):
        raise ConfigError(f"fastsim: the onnx backends sample flow matching, not a {type(network).__name__}")
    onnxruntime = optional_import("onnxruntime", _NEEDED_BY)
    optional_import("onnxscript", _NEEDED_BY)
    velocity = _Velocity(network.velocity, slots).eval()
    local = torch.Generator().manual_seed(0)  # the example leaves the global stream, and so the samples, alone
    example = (
        torch.randn(4, slots, network.features, generator=local),
        torch.randn(4, network.condition_size + _TIME_FEATURES, generator=local),
        torch.arange(slots)[None, :].expand(4, slots) < torch.tensor([[slots], [1], [slots - 1], [2]]),
    )
    jets, particles = torch.export.Dim("jets"), torch.export.Dim("particles", max=slots)
    with tempfile.TemporaryDirectory(prefix="heplearn_fastsim_onnx_") as directory:
        path = Path(directory) / "velocity.onnx"
        with quiet_exporter():
            program = torch.onnx.export(
                velocity,
                example,
                None,
                input_names=["x", "condition", "mask"],
                output_names=["velocity"],
                dynamic_shapes=({0: jets, 1: particles}, {0: jets}, {0: jets, 1: particles}),
                opset_version=20,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        assert program is not None
        program.save(str(path))
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = path.with_name("velocity_int8.onnx")
            logging.disable(logging.WARNING)  # its advice to pre-process, given on every call
            try:
                quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
            finally:
                logging.disable(logging.NOTSET)
            path = quantized
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return OnnxVelocity(session, slots)
