"""Eval-mode batch norms folded into their neighbouring linear layers, for exported graphs.

In eval mode a batch norm is the affine map ``x · s + t`` per channel, with
``s = γ / √(running_var + ε)`` and ``t = β − running_mean · s``. Next to a linear layer
``x Wᵀ + b`` it folds into that layer's weights, so the exported graph runs one MatMul (+ bias)
instead of MatMul, Mul and Add over the whole tensor:

- after it:  ``(x Wᵀ + b) · s + t = x (s W)ᵀ + (s b + t)``  (W scaled row by row);
- before it: ``(x · s + t) Wᵀ + b = x (W s)ᵀ + (W t + b)``   (W scaled column by column).

The folded weights are computed from the parameters inside ``forward``, so they are constants of
the exported graph (folded by the exporter or by onnxruntime when the session loads). Only
rounding differs from the unfolded computation (float32: about 1e-7 relative per layer).
"""

from __future__ import annotations

import torch

from heplearn.models.nn_base import MaskedBatchNorm


def batch_norm_affine(norm: MaskedBatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s, t)`` with ``norm(x) = x · s + t`` in eval mode (the running statistics)."""
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale


def fold_after(
    weight: torch.Tensor, bias: torch.Tensor | None, norm: MaskedBatchNorm
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``norm(x Wᵀ + b)`` as one linear layer (``bias=None``: no b)."""
    scale, shift = batch_norm_affine(norm)
    return weight * scale[:, None], shift if bias is None else bias * scale + shift


def fold_before(
    norm: MaskedBatchNorm, weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``norm(x) Wᵀ + b`` as one linear layer (``bias=None``: no b)."""
    scale, shift = batch_norm_affine(norm)
    folded_bias = weight @ shift
    return weight * scale, folded_bias if bias is None else folded_bias + bias
