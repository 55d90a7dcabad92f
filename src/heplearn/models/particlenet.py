"""ParticleNet: a dynamic graph CNN on the particle cloud of a jet.

Qu, Gouskos, "ParticleNet: Jet Tagging via Particle Clouds", Phys. Rev. D 101 (2020) 056019,
arXiv:1902.08570. Each EdgeConv block (Wang et al., arXiv:1801.07829) links every particle to its
k nearest neighbours, maps each edge (x_i, x_j − x_i) through shared dense layers (1×1
convolutions) with batch norm and ReLU, averages over the k edges and adds a shortcut. The first
block finds neighbours in (Δη, Δφ); later blocks in the feature space of the block before, so the
graph is learnt ("dynamic"). Global average pooling over the particles, one dense layer with
dropout, and the output layer follow.

Neighbours are chosen alike in PyTorch and in the exported graph: distances in (Δη, Δφ) are
computed from the coordinate differences (exact, so particles at identical coordinates are at
distance 0 in both), and among equal distances the lower index (the harder particle: particles
are ordered by pT) comes first, as ONNX ``TopK`` does by its specification; eager mode uses a
stable sort for the same order. (Before, the GEMM form ‖a‖² + ‖b‖² − 2a·b rounded differently in
onnxruntime and the two broke ties differently: jets with duplicated coordinates or equal
distances got other neighbours in the export, differences up to 1e-2 in the scores.)

Padding: neighbours are searched among the real particles only (padded ones, and the particle
itself, are at infinite distance); a jet with at most k real particles simply has fewer edges,
and the edge average runs over the real edges, so the output does not depend on the padding.
Only the real edges are formed (a list of (jet, particle, neighbour)), so the dense layers and
batch norms never touch padding. Under ``torch.export`` the blocks take the padded paths of
``heplearn.models.particlenet_export`` instead, with the same result (tested).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from heplearn.errors import ConfigError
from heplearn.models import particlenet_export
from heplearn.models.nn_base import MaskedBatchNorm, ParticleModel, masked_mean, mlp, zero_padding


@dataclass(frozen=True)
class ParticleNetHyperparameters:
    """Defaults: the ParticleNet of the paper (Table 1): 366,160 parameters with 7 features."""

    k: int = 16
    edge_conv_channels: tuple[tuple[int, ...], ...] = ((64, 64, 64), (128, 128, 128), (256, 256, 256))
    fc_sizes: tuple[int, ...] = (256,)
    dropout: float = 0.1
    input_batchnorm: bool = True  # normalise the particle features first, as the reference code does


EXACT_DISTANCE_DIMENSIONS = 4  # up to this many coordinates, distances come from the differences (exact)


def squared_distances(coordinates: torch.Tensor) -> torch.Tensor:
    """Squared distances (B, N, N) between the particles of each jet.

    Few coordinates (the (Δη, Δφ) of the first block): from the differences, exact in every
    backend. Many (the feature spaces of later blocks): ‖a‖² + ‖b‖² − 2a·b, one matrix product,
    as the (B, N, N, C) differences would cost too much memory.
    """
    if coordinates.shape[-1] <= EXACT_DISTANCE_DIMENSIONS:
        difference = coordinates.unsqueeze(2) - coordinates.unsqueeze(1)
        return (difference * difference).sum(dim=-1)
    squared_norm = (coordinates * coordinates).sum(dim=-1)
    return squared_norm.unsqueeze(2) + squared_norm.unsqueeze(1) - 2.0 * coordinates @ coordinates.transpose(1, 2)


def nearest_neighbours(coordinates: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (B, N, k) of each particle's k nearest real neighbours, and which of them are real.

    The particle itself and padded particles are put at infinite distance, so they come last
    and are flagged invalid; so are the missing neighbours when a jet has at most k real
    particles (k columns of infinite distance are appended, so there are always k candidates).
    ``valid`` (B, N, k) is also False for every edge of a padded particle. Among equal distances
    the lower index comes first: ONNX ``TopK``'s rule (the exported graph), a stable sort here.
    """
    distance = squared_distances(coordinates)
    size = coordinates.shape[1]
    itself = torch.eye(size, dtype=torch.bool, device=coordinates.device)
    distance = distance.masked_fill(itself | ~mask.unsqueeze(1), float("inf"))
    missing = distance.new_full((*distance.shape[:2], k), float("inf"))
    candidates = torch.cat([distance, missing], dim=-1)
    if torch.compiler.is_exporting():
        distance, index = candidates.topk(k, dim=-1, largest=False, sorted=True)
    else:
        distance, index = candidates.sort(dim=-1, stable=True)
        distance, index = distance[..., :k], index[..., :k]
    valid = torch.isfinite(distance) & mask.unsqueeze(2)
    return index.clamp_max(size - 1), valid


class EdgeConvBlock(nn.Module):
    """EdgeConv with shortcut (paper Fig. 2): dense + BN + ReLU on edges, mean over k, + shortcut."""

    def __init__(self, in_channels: int, channels: Sequence[int], k: int) -> None:
        super().__init__()
        self.k = k
        sizes = (2 * in_channels, *channels)
        self.linears = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(sizes))
        self.norms = nn.ModuleList(MaskedBatchNorm(size) for size in channels)
        self.shortcut: nn.Linear | None = None
        self.shortcut_norm: MaskedBatchNorm | None = None
        if in_channels != channels[-1]:
            self.shortcut = nn.Linear(in_channels, channels[-1], bias=False)
            self.shortcut_norm = MaskedBatchNorm(channels[-1])

    def first_layer(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first edge layer W [x_i, x_j − x_i] as (W_a − W_b) x_i + W_b x_j.

        Same weights and result as applying W to every edge, but the products are taken once per
        particle instead of once per edge (k times fewer): returns both per-particle terms.
        """
        weight = self.linears[0].weight
        channels = features.shape[-1]
        centre_weight, difference_weight = weight[:, :channels], weight[:, channels:]
        return features @ (centre_weight - difference_weight).T, features @ difference_weight.T

    def forward(self, coordinates: torch.Tensor, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One EdgeConv block: the k nearest neighbours in ``coordinates``, edge MLP, mean over edges, shortcut."""
        index, valid = nearest_neighbours(coordinates, mask, self.k)
        if torch.compiler.is_exporting() and not self.training:
            return particlenet_export.forward_folded(self, features, index, valid, mask)
        if torch.compiler.is_exporting():
            aggregated = particlenet_export.aggregate_padded(self, features, index, valid)
        else:
            aggregated = self._aggregate_real(features, index, valid)
        shortcut = features
        if self.shortcut is not None and self.shortcut_norm is not None:
            shortcut = self.shortcut_norm(self.shortcut(features), mask)
        return zero_padding(torch.relu(aggregated + shortcut), mask)

    def edge_layers(self, edges: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Batch norm + ReLU after the first layer, then (dense + batch norm + ReLU) for the rest;
        ``valid`` masks the batch statistics (None: every edge is real)."""
        for position, (linear, norm) in enumerate(zip(self.linears, self.norms, strict=True)):
            if position > 0:
                edges = linear(edges)
            edges = torch.relu(norm(edges, valid))
        return edges

    def _aggregate_real(self, features: torch.Tensor, index: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean over each particle's real edges (B, N, C), computing only the real edges.

        The edges of padded particles and the missing neighbours of short jets are never
        formed, and the batch norms see exactly the real edges, with no mask to apply.
        """
        batch, size, _ = index.shape
        jet, particle, neighbour = valid.nonzero(as_tuple=True)
        centres, projected = self.first_layer(features)
        edges = centres[jet, particle] + projected[jet, index[jet, particle, neighbour]]  # (edges, C)
        edges = self.edge_layers(edges, None)
        summed = edges.new_zeros(batch * size, edges.shape[-1]).index_add(0, jet * size + particle, edges)
        counts = valid.sum(dim=2).reshape(-1, 1).clamp_min(1).to(edges.dtype)
        return (summed / counts).reshape(batch, size, -1)


class ParticleNet(ParticleModel):
    """ParticleNet (arXiv:1902.08570); presets "paper" (ParticleNet), "lite" (ParticleNet-Lite), "small"."""

    name: ClassVar[str] = "particlenet"
    input_keys: ClassVar[tuple[str, ...]] = ("particles", "points", "mask")
    Hyperparameters = ParticleNetHyperparameters
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        # ParticleNet-Lite of the paper: 26,416 parameters with 7 features.
        "lite": {"k": 7, "edge_conv_channels": ((32, 32, 32), (64, 64, 64)), "fc_sizes": (128,)},
        "small": {"k": 8, "edge_conv_channels": ((16, 16), (32, 32)), "fc_sizes": (32,)},
    }

    def __init__(self, num_outputs: int, input_dims: dict[str, int], **hyperparameters: Any) -> None:
        super().__init__(num_outputs, input_dims, **hyperparameters)
        hp: ParticleNetHyperparameters = self.hparams
        if hp.k < 1 or not hp.edge_conv_channels or not all(hp.edge_conv_channels):
            raise ConfigError("model particlenet: needs k >= 1 and at least one EdgeConv block with channels")
        features = self.input_dims["particles"]
        self.input_norm = MaskedBatchNorm(features) if hp.input_batchnorm else None
        blocks = []
        for channels in hp.edge_conv_channels:
            blocks.append(EdgeConvBlock(features, channels, hp.k))
            features = channels[-1]
        self.blocks = nn.ModuleList(blocks)
        self.fc = mlp((features, *hp.fc_sizes), dropout=hp.dropout)
        self.output = nn.Linear(hp.fc_sizes[-1] if hp.fc_sizes else features, num_outputs)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B, classes) of a batch's particles (points and features)."""
        inputs = self.inputs(batch)
        mask = inputs["mask"]
        features = inputs["particles"]
        if self.input_norm is not None:
            features = zero_padding(self.input_norm(features, mask), mask)
        coordinates = inputs["points"]
        for block in self.blocks:
            features = block(coordinates, features, mask)
            coordinates = features  # dynamic graph: the next kNN runs in the learnt feature space
        pooled = masked_mean(features, mask, dim=1)
        return self.output(self.fc(pooled))
