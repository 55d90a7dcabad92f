"""Sampling a flow-matching generator through onnxruntime, with float or int8 weights.

``onnx_velocity(network, slots, quantize)`` exports the flow's velocity network (torch's dynamo
exporter, opset 20; the batch and particle axes dynamic) and opens it in onnxruntime on as many
threads as torch has. It does so twice: a graph that masks the padding, and one for batches without
padding (most of them), whose attention blocks mask nothing, as PyTorch's pass skips the mask there
(a graph cannot look at its mask to decide; the masking took 7 % of the int8 pass). With
``quantize``, ``onnxruntime.quantization.quantize_dynamic`` stores the weights of the matrix
products as int8 and quantizes their inputs batch by batch (dynamic quantization: nothing to
calibrate). The pair bias's per-pair MLP has no constant weight matrix to quantize and stays in
float. The float graph computes the network's function (to 10⁻⁶); int8 changes it a little (RMS
0.007 in standardised coordinates on untrained weights), so a quantized sampler's quality is its
own to measure (``heplearn fastsim evaluate``). The rates are in the README's performance table.
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
    """The velocity network with the padding's ``slots`` fixed: (x, condition, mask) → v; ``unpadded``:
    the graph of batches without padding, whose attention blocks mask nothing."""

    def __init__(self, network: torch.nn.Module, slots: int, unpadded: bool) -> None:
        super().__init__()
        self.network, self.slots, self.unpadded = network, slots, unpadded

    def forward(self, x: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.network(x, condition, mask, self.slots, unpadded=self.unpadded or None)[0]


class OnnxVelocity:
    """The velocity network in onnxruntime, called as the PyTorch network is: ``(x, condition, mask,
    slots) → (v, None)`` (``FlowMatchingJets.velocity_at``'s ``network``). Two sessions, as the PyTorch
    network has two paths: a batch with padding runs the graph that masks it, a batch without (most:
    sampling sorts the jets by multiplicity and cuts the padding) the graph that masks nothing."""

    def __init__(self, padded: Any, unpadded: Any, slots: int) -> None:
        self.padded, self.unpadded, self.slots = padded, unpadded, slots

    def __call__(
        self, x: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor, slots: int | None = None
    ) -> tuple[torch.Tensor, None]:
        """The velocity of ``x`` at ``condition`` (with the time features) for the particles in ``mask``."""
        if slots not in (None, self.slots):
            raise ValueError(f"this exported network has {self.slots} slots, not {slots}")
        session = self.unpadded if bool(mask.all()) else self.padded
        feeds = {"x": x.numpy(), "condition": condition.numpy(), "mask": np.ascontiguousarray(mask.numpy())}
        return torch.from_numpy(session.run(None, feeds)[0]), None


def onnx_velocity(network: torch.nn.Module, slots: int, quantize: bool = False) -> OnnxVelocity:
    """``network`` (a ``FlowMatchingJets``) exported and opened in onnxruntime; ``quantize``: int8 weights."""
    from heplearn.methods.fastsim import FlowMatchingJets

    if not isinstance(network, FlowMatchingJets):
        raise ConfigError(f"fastsim: the onnx backends sample flow matching, not a {type(network).__name__}")
    optional_import("onnxruntime", _NEEDED_BY)
    optional_import("onnxscript", _NEEDED_BY)
    padded, unpadded = (_session(network, slots, quantize, flag) for flag in (False, True))
    return OnnxVelocity(padded, unpadded, slots)


def _session(network: Any, slots: int, quantize: bool, unpadded: bool) -> Any:
    """An onnxruntime session of ``network``'s velocity (``_Velocity``), on as many threads as torch has."""
    import onnxruntime

    from heplearn.methods.fastsim import _TIME_FEATURES
    from heplearn.serving.export import quiet_exporter

    velocity = _Velocity(network.velocity, slots, unpadded).eval()
    local = torch.Generator().manual_seed(0)  # the example leaves the global stream, and so the samples, alone
    lengths = torch.tensor([[slots]] * 4 if unpadded else [[slots], [1], [slots - 1], [2]])
    example = (
        torch.randn(4, slots, network.features, generator=local),
        torch.randn(4, network.condition_size + _TIME_FEATURES, generator=local),
        torch.arange(slots)[None, :].expand(4, slots) < lengths,
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
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
