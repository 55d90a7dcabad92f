"""Particle Transformer (ParT).

Qu, Li, Qian, "Particle Transformer for Jet Tagging", ICML 2022, arXiv:2202.03772.

- Particle embedding: a 3-layer MLP (128, 512, 128), each layer LayerNorm → Linear → GELU.
- Interaction embedding: the pairwise features (ln kT, ln z, ln Δ, ln m²) of every particle pair
  (``heplearn.models.pairwise``) go through pointwise (1×1) layers (64, 64, 64) with batch norm and
  GELU and a last layer with one output per attention head: the matrix U added to the attention
  logits of every particle-attention block ("P-MHA", Eq. 2: softmax(QKᵀ/√d + U) V).
- 8 particle-attention blocks and 2 class-attention blocks (CaiT, arXiv:2103.17239) in which a
  learnt class token attends to the particles; NormFormer-style pre-LayerNorm blocks with the
  extra LayerNorms after the attention and inside the feed-forward network (paper Fig. 3).
- LayerNorm and a linear layer on the class token give the output.

Padded particles are removed from the attention by a −inf logit on their keys; the padding mask
and U are folded into the float ``attn_mask`` of ``scaled_dot_product_attention``.

Speed (the same result as the plain padded computation, tested): U is embedded only for the pairs
of real particles, and the attention blocks run on groups of similar-length jets, each cut to its
longest jet, so the N² work follows the real multiplicities. Under ``torch.export`` the layers
take the paths of ``heplearn.models.part_export`` instead (no Python loop over groups, the same
outputs): this module is the paper's model as it trains.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional

from heplearn.errors import ConfigError
from heplearn.models import part_export
from heplearn.models.nn_base import MaskedBatchNorm, ParticleModel, zero_padding
from heplearn.models.pairwise import NUM_PAIR_FEATURES, interaction_features, pair_layout


@dataclass(frozen=True)
class ParticleTransformerHyperparameters:
    """Defaults: ParT of the paper: 2,139,758 parameters with 7 features and 2 outputs."""

    embed_sizes: tuple[int, ...] = (128, 512, 128)  # the last one is the model width
    pair_embed_sizes: tuple[int, ...] = (64, 64, 64)
    num_heads: int = 8
    num_layers: int = 8  # particle-attention blocks
    num_class_layers: int = 2  # class-attention blocks
    ffn_size: int = 512
    dropout: float = 0.1  # attention, feed-forward and residual dropout of the particle blocks
    class_dropout: float = 0.0  # the same in the class-attention blocks (0 in the reference setup)


class ParticleEmbedding(nn.Module):
    """Per-particle MLP: batch norm of the inputs, then (LayerNorm → Linear → GELU) per size."""

    def __init__(self, in_features: int, sizes: Sequence[int]) -> None:
        super().__init__()
        self.input_norm = MaskedBatchNorm(in_features)
        layers: list[nn.Module] = []
        for size_in, size_out in zip((in_features, *sizes[:-1]), sizes, strict=True):
            layers += [nn.LayerNorm(size_in), nn.Linear(size_in, size_out), nn.GELU()]
        self.layers = nn.Sequential(*layers)

    def forward(self, particles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Particles (B, N, F) to embeddings (B, N, D), zero where ``mask`` is False."""
        return zero_padding(self.layers(self.input_norm(particles, mask)), mask)


@dataclass(frozen=True)
class RealPairs:
    """Per-pair values (R, heads) of the pairs (jet, row < column), sorted by jet."""

    values: torch.Tensor
    jet: torch.Tensor
    row: torch.Tensor
    column: torch.Tensor

    def matrix(self, first_jet: int, stop_jet: int, size: int) -> torch.Tensor:
        """U (jets, heads, size, size) of the jets [first_jet, stop_jet), zero off the real pairs."""
        bounds = torch.searchsorted(self.jet, torch.tensor([first_jet, stop_jet], device=self.jet.device))
        start, stop = int(bounds[0]), int(bounds[1])
        values, jet = self.values[start:stop], self.jet[start:stop] - first_jet
        row, column = self.row[start:stop, None], self.column[start:stop, None]
        num_heads = values.shape[1]
        jet_head = (jet[:, None] * num_heads + torch.arange(num_heads, device=jet.device)) * size
        upper = (jet_head + row) * size + column
        lower = (jet_head + column) * size + row
        flat = values.new_zeros((stop_jet - first_jet) * num_heads * size * size)
        flat = flat.index_put((torch.cat([upper, lower]).reshape(-1),), torch.cat([values, values]).reshape(-1))
        return flat.reshape(stop_jet - first_jet, num_heads, size, size)


class PairEmbedding(nn.Module):
    """Interaction matrix U (B, heads, N, N) from the pairwise features of ``vectors``.

    The diagonal (a particle and itself) has no interaction features and gets U = 0.
    """

    def __init__(self, sizes: Sequence[int], num_heads: int) -> None:
        super().__init__()
        self.input_norm = MaskedBatchNorm(NUM_PAIR_FEATURES)
        self.linears = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip((NUM_PAIR_FEATURES, *sizes[:-1]), sizes, strict=True)
        )
        self.norms = nn.ModuleList(MaskedBatchNorm(size) for size in sizes)
        self.output = nn.Linear(sizes[-1] if sizes else NUM_PAIR_FEATURES, num_heads)

    def embed(self, features: torch.Tensor, pair_mask: torch.Tensor | None) -> torch.Tensor:
        """Pair features (..., 4) to one logit bias per head (..., heads); ``None``: all pairs real."""
        values = self.input_norm(features, pair_mask)
        for linear, norm in zip(self.linears, self.norms, strict=True):
            values = functional.gelu(norm(linear(values), pair_mask))
        return self.output(values)

    def embed_pairs(self, vectors: torch.Tensor, mask: torch.Tensor) -> RealPairs:
        """The embedded pairs of distinct real particles (b, i < j) of every jet, in (b, i, j) order.

        The features are symmetric and padded pairs are never attended to: each unordered pair of
        real particles is embedded once (about a third of the padded N × N matrix).
        """
        first, second = pair_layout(mask.shape[1], vectors.device)
        jet, pair = (mask[:, first] & mask[:, second]).nonzero(as_tuple=True)
        row, column = first[pair], second[pair]
        values = self.embed(interaction_features(vectors[jet, row], vectors[jet, column]), None)
        return RealPairs(values, jet, row, column)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The attention bias U (B, heads, N, N) from the four-vectors (B, N, 4); 0 on the diagonal and padded pairs."""
        if torch.compiler.is_exporting() and not self.training:
            return part_export.folded_pair_bias(self, vectors, mask)
        if torch.compiler.is_exporting():
            return part_export.full_pair_bias(self, vectors, mask)
        return self.embed_pairs(vectors, mask).matrix(0, mask.shape[0], mask.shape[1])


class MultiHeadAttention(nn.Module):
    """Multi-head attention through ``scaled_dot_product_attention`` with a float logit bias."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.projection = nn.Linear(dim, dim)

    def _heads(self, values: torch.Tensor) -> torch.Tensor:
        batch, length, dim = values.shape
        return values.reshape(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``queries`` (B, Lq, D) attend to ``keys`` (B, Lk, D); ``bias`` broadcasts to (B, H, Lq, Lk)."""
        if torch.compiler.is_exporting() and not self.training:
            return part_export.exported_attention(self, queries, keys, bias)
        key, value = self.key_value(keys).chunk(2, dim=-1)
        attended = functional.scaled_dot_product_attention(
            self._heads(self.query(queries)),
            self._heads(key),
            self._heads(value),
            attn_mask=bias,
            dropout_p=self.dropout if self.training else 0.0,
        )
        batch, _, length, _ = attended.shape
        return self.projection(attended.transpose(1, 2).reshape(batch, length, -1))


class AttentionBlock(nn.Module):
    """NormFormer-style pre-LN block: x + LN(MHA(LN x)); x + FC(LN(GELU(FC(LN x))))."""

    def __init__(self, dim: int, num_heads: int, ffn_size: int, dropout: float) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(dim, num_heads, dropout)
        self.attention_out_norm = nn.LayerNorm(dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn_in = nn.Linear(dim, ffn_size)
        self.ffn_mid_norm = nn.LayerNorm(ffn_size)
        self.ffn_out = nn.Linear(ffn_size, dim)
        self.dropout = nn.Dropout(dropout)

    def feed_forward(self, values: torch.Tensor) -> torch.Tensor:
        """The block's feed-forward half with its residual connection (NormFormer norms, as in ParT)."""
        hidden = self.dropout(functional.gelu(self.ffn_in(self.ffn_norm(values))))
        return values + self.dropout(self.ffn_out(self.ffn_mid_norm(hidden)))

    def forward(self, particles: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Particle attention: every particle attends to every real particle, logits + U."""
        normed = self.attention_norm(particles)
        attended = self.attention_out_norm(self.attention(normed, normed, bias))
        return self.feed_forward(particles + self.dropout(attended))

    def attend_class(self, class_token: torch.Tensor, particles: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Class attention: only the class token is updated; it attends to itself and the particles."""
        normed = self.attention_norm(torch.cat([class_token, particles], dim=1))
        attended = self.attention_out_norm(self.attention(normed[:, :1], normed, bias))
        return self.feed_forward(class_token + self.dropout(attended))


class ParticleTransformer(ParticleModel):
    """ParT (arXiv:2202.03772) on particle features with pairwise interactions from four-vectors."""

    name: ClassVar[str] = "part"
    input_keys: ClassVar[tuple[str, ...]] = ("particles", "vectors", "mask")
    Hyperparameters = ParticleTransformerHyperparameters
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        # Half the paper's width and depth, for CPU trainings: 341,070 parameters (7 features, 2 outputs).
        "lite": {
            "embed_sizes": (64, 256, 64),
            "pair_embed_sizes": (32, 32, 32),
            "num_layers": 4,
            "num_class_layers": 2,
            "ffn_size": 256,
        },
        "small": {
            "embed_sizes": (32, 64, 32),
            "pair_embed_sizes": (16, 16),
            "num_heads": 4,
            "num_layers": 2,
            "num_class_layers": 1,
            "ffn_size": 64,
            "dropout": 0.0,
        },
    }

    def __init__(self, num_outputs: int, input_dims: dict[str, int], **hyperparameters: Any) -> None:
        super().__init__(num_outputs, input_dims, **hyperparameters)
        hp: ParticleTransformerHyperparameters = self.hparams
        if not hp.embed_sizes or hp.num_heads < 1 or hp.embed_sizes[-1] % hp.num_heads:
            raise ConfigError(
                f"model part: the width embed_sizes[-1] must be a multiple of num_heads "
                f"(got embed_sizes={hp.embed_sizes}, num_heads={hp.num_heads})"
            )
        dim = hp.embed_sizes[-1]
        self.embedding = ParticleEmbedding(self.input_dims["particles"], hp.embed_sizes)
        self.pair_embedding = PairEmbedding(hp.pair_embed_sizes, hp.num_heads)
        self.blocks = nn.ModuleList(
            AttentionBlock(dim, hp.num_heads, hp.ffn_size, hp.dropout) for _ in range(hp.num_layers)
        )
        self.class_blocks = nn.ModuleList(
            AttentionBlock(dim, hp.num_heads, hp.ffn_size, hp.class_dropout) for _ in range(hp.num_class_layers)
        )
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.class_token, std=0.02)
        self.norm = nn.LayerNorm(dim)
        self.output = nn.Linear(dim, num_outputs)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B, classes) of a batch's particles and their four-vectors."""
        inputs = self.inputs(batch)
        mask = inputs["mask"]
        if torch.compiler.is_exporting() and not self.training:
            return part_export.forward_exported(self, inputs["particles"], inputs["vectors"], mask)
        if torch.compiler.is_exporting():
            particles = self.embedding(inputs["particles"], mask)
            return self.classify(particles, self.pair_embedding(inputs["vectors"], mask), mask)
        # Jets never meet after the (batch-normalised) embeddings, so the attention blocks can run
        # on groups of jets of similar length, each cut to its own longest jet: the same result
        # for a fraction of the padded N × N attention work.
        lengths = mask.sum(dim=1)
        order = torch.argsort(lengths, stable=True)
        lengths, mask = lengths[order], mask[order]
        particles = self.embedding(inputs["particles"][order], mask)
        pairs = self.pair_embedding.embed_pairs(inputs["vectors"][order], mask)
        logits = []
        for start, stop in length_groups(mask.shape[0]):
            size = max(int(lengths[stop - 1]), 1)
            logits.append(
                self.classify(particles[start:stop, :size], pairs.matrix(start, stop, size), mask[start:stop, :size])
            )
        return torch.cat(logits)[torch.argsort(order)]

    def classify(self, particles: torch.Tensor, pair_bias: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention blocks and output for embedded ``particles`` (B, N, D) and U (B, heads, N, N)."""
        # A jet without any real particle would have no key to attend to (softmax of all −inf
        # is NaN): let its rows see every slot instead; its output is meaningless but finite.
        visible = mask | ~mask.any(dim=1, keepdim=True)
        key_bias = torch.zeros(mask.shape, dtype=particles.dtype, device=mask.device)
        key_bias = key_bias.masked_fill(~visible, float("-inf"))
        bias = pair_bias + key_bias[:, None, None, :]
        for block in self.blocks:
            particles = zero_padding(block(particles, bias), mask)
        class_token = self.class_token.expand(mask.shape[0], -1, -1).to(particles.dtype)
        class_bias = torch.cat([key_bias.new_zeros(mask.shape[0], 1), key_bias], dim=1)[:, None, None, :]
        for block in self.class_blocks:
            class_token = block.attend_class(class_token, particles, class_bias)
        return self.output(self.norm(class_token.squeeze(1)))


def length_groups(batch_size: int, jets_per_group: int = 32, max_groups: int = 8) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges of about ``jets_per_group`` length-sorted jets each."""
    num_groups = min(max(batch_size // jets_per_group, 1), max_groups)
    bounds = [round(index * batch_size / num_groups) for index in range(num_groups + 1)]
    return list(itertools.pairwise(bounds))
