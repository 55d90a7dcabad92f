"""A recurrent network over the jet constituents in decreasing pT.

Recurrent taggers read the constituents as a sequence ordered by pT, e.g. the LSTM top tagger of
Egan, Fedorko, Lister, Pearkes, Gay, arXiv:1711.09059. The data layer orders particles by
decreasing pT by default (``data.particle_order: pt``) and pads at the end; the model moves the
real particles to the front anyway (keeping their order), so holes in the mask are harmless.

Padding: the recurrence is causal, so the state after the last real particle depends only on
the real particles; the model reads that state. This needs neither ``pack_padded_sequence``
(whose lengths live on the CPU and do not export) nor any data-dependent branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from typing_extensions import override

from heplearn.errors import ConfigError
from heplearn.models.nn_base import ParticleModel, mlp


@dataclass(frozen=True)
class ParticleRNNHyperparameters:
    """Defaults: one GRU layer of 128 units and a dense layer of 64: 60,994 parameters (7 features)."""

    cell: str = "gru"  # or "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    dense_sizes: tuple[int, ...] = (64,)
    dropout: float = 0.0  # between stacked recurrent layers and after dense layers


_CELLS: dict[str, type[nn.GRU] | type[nn.LSTM]] = {"gru": nn.GRU, "lstm": nn.LSTM}


class ParticleRNN(ParticleModel):
    """GRU (or LSTM) over the pT-ordered particles; the last real step's state feeds dense layers."""

    name: ClassVar[str] = "rnn"
    input_keys: ClassVar[tuple[str, ...]] = ("particles", "mask")
    Hyperparameters = ParticleRNNHyperparameters
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "small": {"hidden_size": 32, "dense_sizes": (32,)},
    }

    def __init__(self, num_outputs: int, input_dims: dict[str, int], **hyperparameters: Any) -> None:
        super().__init__(num_outputs, input_dims, **hyperparameters)
        hp: ParticleRNNHyperparameters = self.hparams
        if hp.cell not in _CELLS:
            raise ConfigError(f"model rnn: cell must be one of {sorted(_CELLS)}, got {hp.cell!r}")
        self.recurrent = _CELLS[hp.cell](
            self.input_dims["particles"],
            hp.hidden_size,
            num_layers=hp.num_layers,
            batch_first=True,
            dropout=hp.dropout if hp.num_layers > 1 else 0.0,
        )
        self.dense = mlp((hp.hidden_size, *hp.dense_sizes), dropout=hp.dropout)
        self.output = nn.Linear(hp.dense_sizes[-1] if hp.dense_sizes else hp.hidden_size, num_outputs)

    @override
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = self.inputs(batch)
        mask, particles = inputs["mask"], inputs["particles"]
        # Real particles first, in their order (a stable sort on "is padding").
        order = torch.sort((~mask).to(torch.int32), dim=1, stable=True).indices
        particles = torch.gather(particles, 1, order.unsqueeze(-1).expand_as(particles))
        states, _ = self.recurrent(particles)
        last = (mask.sum(dim=1) - 1).clamp_min(0)
        final = torch.gather(states, 1, last.view(-1, 1, 1).expand(-1, 1, states.shape[-1])).squeeze(1)
        return self.output(self.dense(final))
