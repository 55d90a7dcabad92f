"""ParticleNet's exported graph: the EdgeConv paths ``torch.export`` takes through ``heplearn.models.particlenet``.

The eager EdgeConv block forms only the real edges, a list of (jet, particle, neighbour) whose
length depends on the data. Under ``torch.export`` the block takes the padded (B, N, k) edge
tensor instead, whose shapes are static, with the same result (tested):

- in training mode, ``aggregate_padded``: the edge layers on (B, N, k, C) with masked batch norms;
- in eval mode (the graph ``heplearn export`` writes), ``forward_folded``: the batch norms folded
  into the dense layers and the edges as one 2-D matrix, so that onnxruntime runs each edge layer
  as one fused Gemm + ReLU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.nn import functional

from heplearn.models.folding import batch_norm_affine, fold_after
from heplearn.models.nn_base import masked_mean, zero_padding

if TYPE_CHECKING:
    from heplearn.models.particlenet import EdgeConvBlock


def gather_neighbours(features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``features`` (B, N, C) of the neighbours ``index`` (B, N, k): (B, N, k, C)."""
    batch, size, k = index.shape
    channels = features.shape[-1]
    flat = index.reshape(batch, size * k, 1).expand(-1, -1, channels)
    return torch.gather(features, 1, flat).reshape(batch, size, k, channels)


def aggregate_padded(
    block: EdgeConvBlock, features: torch.Tensor, index: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """``EdgeConvBlock``'s mean over each particle's real edges (B, N, C), on the padded (B, N, k)
    edge tensor: no data-dependent shapes, for export in training mode (eval: ``forward_folded``)."""
    centres, projected = block.first_layer(features)
    edges = centres.unsqueeze(2) + gather_neighbours(projected, index)
    edges = block.edge_layers(edges, valid)
    return masked_mean(edges, valid, dim=2)


def forward_folded(
    block: EdgeConvBlock, features: torch.Tensor, index: torch.Tensor, valid: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The eval-mode block for the exported graph: ``aggregate_padded`` and the shortcut with
    every batch norm folded into its dense layer (``heplearn.models.folding``).

    The padded (B, N, k) edges are rows of one (B·N·k, C) matrix, so that each later edge
    layer is a single Gemm + bias + ReLU in onnxruntime; the neighbours' terms are looked up
    with one row Gather in the flattened (B·N, C) per-particle terms. Edges that are not real
    (missing neighbours, padded particles) hold finite values and get weight 0 in the mean.
    """
    batch, size, k = index.shape
    weight = block.linears[0].weight
    channels = features.shape[-1]
    # norm(W [x_i, x_j − x_i]) = (s (W_a − W_b)) x_i + t + (s W_b) x_j
    scale, shift = batch_norm_affine(block.norms[0])
    centre_weight, difference_weight = weight[:, :channels], weight[:, channels:]
    centres = functional.linear(features, (centre_weight - difference_weight) * scale[:, None], shift)
    projected = functional.linear(features, difference_weight * scale[:, None])
    rows = index + (torch.arange(batch, device=index.device) * size)[:, None, None]
    neighbours = projected.reshape(batch * size, -1).index_select(0, rows.reshape(-1)).reshape(batch * size, k, -1)
    edges = torch.relu(centres.reshape(batch * size, 1, -1) + neighbours).reshape(batch * size * k, -1)
    for linear, norm in zip(block.linears[1:], block.norms[1:], strict=True):
        edges = torch.relu(functional.linear(edges, *fold_after(linear.weight, linear.bias, norm)))
    # the mean over the real edges as one (1 × k)·(k × C) product per particle: weights 1 / (real
    # edges) on the real edges, 0 on the others
    share = valid.to(edges.dtype)
    share = share / share.sum(dim=2, keepdim=True).clamp_min(1.0)
    aggregated = (share.reshape(batch * size, 1, k) @ edges.reshape(batch * size, k, -1)).reshape(batch, size, -1)
    shortcut = features
    if block.shortcut is not None and block.shortcut_norm is not None:
        shortcut = functional.linear(features, *fold_after(block.shortcut.weight, None, block.shortcut_norm))
    return zero_padding(torch.relu(aggregated + shortcut), mask)
