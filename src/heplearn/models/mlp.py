"""A dense network on jet-level features: the DNN event classifier of the analyses.

Binary, multiclass (e.g. tt̄H vs tt̄+X categories) or regression, depending on ``num_outputs`` and
the loss the trainer picks; reads the ``jet`` input group of the batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn
from typing_extensions import override

from heplearn.models.nn_base import ParticleModel, activation_class, mlp


class JetMLP(ParticleModel):
    """A dense network on the ``jet`` input group: the DNN classifier (or regressor) of the analyses."""

    name: ClassVar[str] = "mlp"
    input_keys: ClassVar[tuple[str, ...]] = ("jet",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "small": {"hidden": (32, 32)},
    }

    @dataclasses.dataclass(frozen=True)
    class Hyperparameters:
        """The widths of the hidden layers, the dropout after each, whether the inputs are
        batch-normalised, and the hidden units' activation (``ACTIVATIONS``)."""

        hidden: tuple[int, ...] = (128, 128, 128)
        dropout: float = 0.1
        batch_norm: bool = True
        activation: str = "relu"

    def __init__(self, num_outputs: int, input_dims: dict[str, int], **hyperparameters: Any) -> None:
        super().__init__(num_outputs, input_dims, **hyperparameters)
        hp = self.hparams
        sizes = (self.input_dims["jet"], *hp.hidden)
        self.normalise = nn.BatchNorm1d(self.input_dims["jet"]) if hp.batch_norm else nn.Identity()
        self.body = mlp(sizes, activation=activation_class(hp.activation, self.name), dropout=hp.dropout)
        self.head = nn.Linear(sizes[-1], num_outputs)

    @override
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.body(self.normalise(self.inputs(batch)["jet"])))
