"""ParT's exported graph: the paths ``torch.export`` takes through ``heplearn.models.part``.

The eager model (``heplearn.models.part``) runs its attention blocks on groups of similar-length
jets in a Python loop, with index tensors whose shapes depend on the data. An exported graph
cannot hold that loop, so under ``torch.export`` the model's layers call the functions here:

- in training mode, the plain padded path: U from all N × N pairs (``full_pair_bias``), one group;
- in eval mode (the graph ``heplearn export`` writes), no loop either, but still only the real
  pairs are embedded (``folded_pair_bias``) and the per-particle layers run on the real particles
  only, as lists whose lengths the graph computes (``Packing``), with the batch norms folded into
  the dense layers; only the attention itself sees the padded (B, H, N, N) layout
  (``forward_exported``). The attention is written out with fewer reshapes than the decomposed
  ``scaled_dot_product_attention``, or as one fused op (``biased_attention``, ``fused_attention``).

Each function gives the same outputs as the eager layer it stands for (tested in
tests/models/test_particle_models.py and by the export agreement tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.nn import functional

from heplearn.models.folding import batch_norm_affine, fold_after, fold_before
from heplearn.models.pairwise import interaction_features

if TYPE_CHECKING:
    from heplearn.models.part import AttentionBlock, MultiHeadAttention, PairEmbedding, ParticleTransformer

# Whether the exported eval graph writes its attention as one fused op (``biased_attention``,
# float32 only); set by ``heplearn.serving.export.export_network(fused_attention=True)``
# through ``fused_attention``. Off by default: on the 2-core reference machine the fused
# graph ran 0.9-1.1x the written-out one (``benchmarks/bench_infer.py --ab``), and it holds a
# contrib op that only onnxruntime runs.
_EXPORT_SETTINGS = {"fused_attention": False}


@contextlib.contextmanager
def fused_attention(enabled: bool = True) -> Iterator[None]:
    """Within the block, the exported ParT graph takes the fused attention op (or not)."""
    previous, _EXPORT_SETTINGS["fused_attention"] = _EXPORT_SETTINGS["fused_attention"], enabled
    try:
        yield
    finally:
        _EXPORT_SETTINGS["fused_attention"] = previous


@dataclass(frozen=True)
class Packing:
    """The True entries of a flat boolean tensor as a list of R rows, for the exported eval graph.

    ``index`` (R,) holds their positions; ``rows`` (M,) the row of every entry in the list with a
    zero row put first (row 0 for the False entries). R depends on the data (onnxruntime's
    NonZero), so the graph computes only real rows while its inputs keep dynamic axes.
    """

    index: torch.Tensor
    rows: torch.Tensor

    @classmethod
    def of(cls, selected: torch.Tensor) -> Packing:
        """The packing of the True entries of ``selected``."""
        rows = torch.where(selected, torch.cumsum(selected.to(torch.int64), dim=0), 0)
        return cls(selected.nonzero().squeeze(1), rows)

    def pack(self, values: torch.Tensor) -> torch.Tensor:
        """The selected rows (R, ...) of ``values`` (M, ...)."""
        return values.index_select(0, self.index)

    def unpack(self, values: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``values`` (R, C) at their places in (M, C), zeros elsewhere; ``rows``: other places
        (a selection of ``self.rows``)."""
        rows = self.rows if rows is None else rows
        return torch.cat([values.new_zeros(1, values.shape[1]), values]).index_select(0, rows)


# -- the interaction matrix U


def full_pair_bias(embedding: PairEmbedding, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """U (B, heads, N, N) from all N × N pairs (export in training mode): twice the eager work,
    but no shape-dependent index tensors."""
    size = mask.shape[1]
    off_diagonal = ~torch.eye(size, dtype=torch.bool, device=mask.device)
    pair_mask = mask[:, :, None] & mask[:, None, :] & off_diagonal
    values = embedding.embed(interaction_features(vectors[:, :, None], vectors[:, None, :]), pair_mask)
    values = values * off_diagonal[..., None].to(values.dtype)
    return values.permute(0, 3, 1, 2)


def folded_pair_bias(embedding: PairEmbedding, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The same U in eval mode for the exported graph: the real pairs only, batch norms folded.

    The pairs (i, (i + d) mod N) for the offsets d = 0 … ⌊N/2⌋ hold every unordered pair of
    slots (d = 0 is the diagonal; for even N, d = N/2 gives each pair twice): a
    (B, N, ⌊N/2⌋ + 1) layout whose shape follows N, so the particle axis stays dynamic. The
    unordered pairs of distinct real particles are picked from it (a list of R pairs, as the
    eager path makes: a data-dependent length that onnxruntime takes) and embedded, with the
    batch norms folded into the dense layers. U (i, j) is then looked up at (i, d) with
    d = (j − i) mod N when (i, d) is the listed one of the two, else at (j, N − d) (the pair
    features are symmetric), and is 0 off the real pairs, as in the eager path.
    """
    batch, size = vectors.shape[:2]
    slots = torch.arange(size, device=vectors.device)
    offsets = torch.arange(size // 2 + 1, device=vectors.device)
    width = offsets.shape[0]
    partners = slots[:, None] + offsets  # (i + d) mod N: (N, width); a symbolic N takes no Mod
    partners = torch.where(partners < size, partners, partners - size)
    once = (offsets > 0) & ((2 * offsets < size) | (slots[:, None] < partners))  # each unordered pair once
    pairs = Packing.of((mask[:, :, None] & mask[:, partners] & once).reshape(-1))  # (B·N·width) → R
    first_slot = (torch.arange(batch, device=vectors.device) * size)[:, None, None]  # (B, 1, 1)
    firsts = pairs.pack((first_slot + slots[:, None]).expand(-1, -1, width).reshape(-1))  # flat slots (R,)
    seconds = pairs.pack((first_slot + partners).reshape(-1))
    flat_vectors = vectors.reshape(-1, vectors.shape[-1])
    features = interaction_features(flat_vectors.index_select(0, firsts), flat_vectors.index_select(0, seconds))
    dense = [(linear.weight, linear.bias) for linear in embedding.linears]
    dense += [(embedding.output.weight, embedding.output.bias)]
    dense[0] = fold_before(embedding.input_norm, *dense[0])
    for position, norm in enumerate(embedding.norms):
        dense[position] = fold_after(*dense[position], norm)
    values = features
    for weight, bias in dense[:-1]:
        values = functional.gelu(functional.linear(values, weight, bias))
    values = functional.linear(values, *dense[-1])  # (R, heads)
    offset = slots[None, :] - slots[:, None]  # d(i, j) = (j − i) mod N: (N, N)
    offset = torch.where(offset < 0, offset + size, offset)
    listed = (2 * offset < size) | ((2 * offset == size) & (slots[:, None] < slots[None, :]))  # as in `once`
    index = torch.where(listed, slots[:, None] * width + offset, slots[None, :] * width + size - offset)
    rows = pairs.rows.reshape(batch, size * width).index_select(1, index.reshape(-1)).reshape(-1)  # (B·N·N)
    return pairs.unpack(values, rows).reshape(batch, size, size, -1).permute(0, 3, 1, 2)


# -- the attention


@torch.library.custom_op("heplearn::biased_attention", mutates_args=())
def biased_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor, num_heads: int
) -> torch.Tensor:
    """softmax(Q Kᵀ + bias) V per head, for query (B, Lq, D), key and value (B, Lk, D), bias
    broadcasting to (B, H, Lq, Lk); no 1/√d (the callers fold it into the query layer).

    One op for the exported eval graph: ``heplearn.serving.export`` writes it as onnxruntime's
    fused ``com.microsoft.MultiHeadAttention`` (with ``attention_bias``, scale 1), one node
    instead of the head split, two MatMuls, the bias Add, the Softmax and the head merge.
    """
    batch, length, dim = query.shape
    head_size = dim // num_heads
    query = query.reshape(batch, length, num_heads, head_size).transpose(1, 2)  # (B, H, Lq, d)
    key = key.reshape(batch, -1, num_heads, head_size).permute(0, 2, 3, 1)  # (B, H, d, Lk)
    value = value.reshape(batch, -1, num_heads, head_size).transpose(1, 2)  # (B, H, Lk, d)
    weights = torch.softmax(query @ key + bias, dim=-1)
    return (weights @ value).transpose(1, 2).reshape(batch, length, dim)


@biased_attention.register_fake
def _biased_attention_shape(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor, num_heads: int
) -> torch.Tensor:
    return torch.empty_like(query)


def exported_attention(
    attention: MultiHeadAttention, queries: torch.Tensor, keys: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """``MultiHeadAttention`` written out for the exported eval graph (class attention), with
    fewer reshapes than the decomposed ``scaled_dot_product_attention``.

    The keys are laid out transposed (B, H, d, Lk) by one Transpose, key and value come from
    two dense layers (slices of ``key_value``: no Split), and the 1/√d scale is folded into
    the query layer (d = 16 in the presets: an exact power of two).
    """
    num_heads = attention.num_heads
    dim = queries.shape[-1]
    head_size = dim // num_heads
    scale = head_size**-0.5
    weight, bias_kv = attention.key_value.weight, attention.key_value.bias
    query = functional.linear(queries, attention.query.weight * scale, attention.query.bias * scale)
    key = functional.linear(keys, weight[:dim], bias_kv[:dim])
    value = functional.linear(keys, weight[dim:], bias_kv[dim:])
    if _EXPORT_SETTINGS["fused_attention"] and query.dtype == torch.float32:
        return attention.projection(biased_attention(query, key, value, bias, num_heads))
    query = query.unflatten(-1, (num_heads, head_size)).transpose(1, 2)  # (B, H, Lq, d)
    key = key.unflatten(-1, (num_heads, head_size)).permute(0, 2, 3, 1)  # (B, H, d, Lk)
    value = value.unflatten(-1, (num_heads, head_size)).transpose(1, 2)  # (B, H, Lk, d)
    weights = torch.softmax(query @ key + bias, dim=-1)
    return attention.projection((weights @ value).transpose(1, 2).flatten(2))


def attend_packed(
    attention: MultiHeadAttention, normed: torch.Tensor, tokens: Packing, bias: torch.Tensor, batch: int, size: int
) -> torch.Tensor:
    """The particle attention of the exported eval graph on the real particles ``normed`` (R, D).

    Query, key and value come from one dense layer on the R rows (the 1/√d scale folded into
    the query part; d = 16 in the presets, an exact power of two), are put at their slots of
    the padded (B, N) layout (zeros for padding: padded keys get −inf anyway) and split into
    heads, the keys laid out transposed (B, H, d, N); the attended values of the real
    particles go through the output layer.
    """
    num_heads = attention.num_heads
    dim = normed.shape[-1]
    head_size = dim // num_heads
    scale = head_size**-0.5
    weight = torch.cat([attention.query.weight * scale, attention.key_value.weight])
    layer_bias = torch.cat([attention.query.bias * scale, attention.key_value.bias])
    projected = tokens.unpack(functional.linear(normed, weight, layer_bias))
    if _EXPORT_SETTINGS["fused_attention"] and projected.dtype == torch.float32:
        query, key, value = projected.reshape(batch, size, 3, dim).unbind(2)
        attended = biased_attention(query, key, value, bias, num_heads).reshape(batch * size, dim)
        return attention.projection(tokens.pack(attended))
    query, key, value = projected.reshape(batch, size, 3, num_heads, head_size).unbind(2)
    weights = torch.softmax(query.transpose(1, 2) @ key.permute(0, 2, 3, 1) + bias, dim=-1)
    attended = (weights @ value.transpose(1, 2)).transpose(1, 2).reshape(batch * size, dim)
    return attention.projection(tokens.pack(attended))


def block_packed(
    block: AttentionBlock, particles: torch.Tensor, tokens: Packing, bias: torch.Tensor, batch: int, size: int
) -> torch.Tensor:
    """``AttentionBlock.forward`` in the exported eval graph, on the real particles (R, D) only."""
    attended = attend_packed(block.attention, block.attention_norm(particles), tokens, bias, batch, size)
    return block.feed_forward(particles + block.attention_out_norm(attended))


# -- the model


def forward_exported(
    model: ParticleTransformer, particles: torch.Tensor, vectors: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The eval forward pass of the exported graph: ``ParticleTransformer.classify`` on the real
    particles only.

    The embedding and every per-particle layer of the particle-attention blocks run on the R
    real particles as one (R, D) matrix (no padded rows to compute, and each dense layer is
    one Gemm); only the attention itself uses the padded (B, H, N, N) layout. The particles
    go back to the padded layout (zeros in the padding, as ``zero_padding`` leaves them)
    for the class attention. Same outputs as ``classify`` (tested).
    """
    batch, size = mask.shape
    tokens = Packing.of(mask.reshape(-1))
    real = tokens.pack(particles.reshape(batch * size, -1))
    scale, shift = batch_norm_affine(model.embedding.input_norm)
    values = model.embedding.layers(real * scale + shift)  # (R, D)
    visible = mask | ~mask.any(dim=1, keepdim=True)  # as in classify
    key_bias = torch.zeros(mask.shape, dtype=values.dtype, device=mask.device).masked_fill(~visible, float("-inf"))
    bias = folded_pair_bias(model.pair_embedding, vectors, mask) + key_bias[:, None, None, :]
    for block in model.blocks:
        values = block_packed(block, values, tokens, bias, batch, size)
    padded = tokens.unpack(values).reshape(batch, size, -1)
    class_token = model.class_token.expand(batch, -1, -1).to(values.dtype)
    class_bias = torch.cat([key_bias.new_zeros(batch, 1), key_bias], dim=1)[:, None, None, :]
    for block in model.class_blocks:
        class_token = block.attend_class(class_token, padded, class_bias)
    return model.output(model.norm(class_token.squeeze(1)))
