"""Eval-mode batch norms folded into the neighbouring linear layers (for exported graphs)."""

from __future__ import annotations

import torch
from torch.nn import functional

from heplearn.models.folding import batch_norm_affine, fold_after, fold_before
from heplearn.models.nn_base import MaskedBatchNorm


def trained_norm(channels: int, seed: int) -> MaskedBatchNorm:
    """A batch norm in eval mode with non-trivial statistics and affine parameters (float64)."""
    generator = torch.Generator().manual_seed(seed)
    norm = MaskedBatchNorm(channels).double().eval()
    with torch.no_grad():
        norm.running_mean.copy_(torch.randn(channels, generator=generator, dtype=torch.float64))
        norm.running_var.copy_(torch.rand(channels, generator=generator, dtype=torch.float64) * 3 + 0.1)
        norm.weight.copy_(torch.randn(channels, generator=generator, dtype=torch.float64))
        norm.bias.copy_(torch.randn(channels, generator=generator, dtype=torch.float64))
    return norm


def test_affine_form_is_the_eval_batch_norm() -> None:
    norm = trained_norm(5, seed=0)
    values = torch.randn(7, 5, dtype=torch.float64)
    scale, shift = batch_norm_affine(norm)
    torch.testing.assert_close(values * scale + shift, norm(values, None), rtol=0, atol=1e-12)


def linear_layer_and_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A (6 ← 4) layer's weight and bias, and 10 inputs of 4 values, in float64."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    bias = torch.randn(6, generator=generator, dtype=torch.float64)
    return weight, bias, torch.randn(10, 4, generator=generator, dtype=torch.float64)


def test_folding_after_a_linear_layer_gives_the_same_outputs() -> None:
    weight, bias, values = linear_layer_and_inputs(1)
    norm = trained_norm(6, seed=2)
    for layer_bias in (bias, None):
        expected = norm(functional.linear(values, weight, layer_bias), None)
        torch.testing.assert_close(
            functional.linear(values, *fold_after(weight, layer_bias, norm)), expected, rtol=0, atol=1e-12
        )


def test_folding_before_a_linear_layer_gives_the_same_outputs() -> None:
    weight, bias, values = linear_layer_and_inputs(3)
    norm = trained_norm(4, seed=4)
    for layer_bias in (bias, None):
        expected = functional.linear(norm(values, None), weight, layer_bias)
        torch.testing.assert_close(
            functional.linear(values, *fold_before(norm, weight, layer_bias)), expected, rtol=0, atol=1e-12
        )
