"""A dense autoencoder on jet- or event-level features: the anomaly detector of the trigger studies.

The encoder squeezes the ``jet`` input group (standardised) through a narrow ``latent`` layer and
the decoder rebuilds it; trained on background alone (``data.labels.type: none``, the
``reconstruction`` task), events it rebuilds badly are anomalous. The architecture follows the
dense autoencoders of the L1-trigger anomaly studies (Govorkova et al., arXiv:2108.03986).
``num_outputs`` is the size of what it rebuilds: the group's number of features.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn
from typing_extensions import override

from heplearn.models.nn_base import ParticleModel, mlp


class JetAutoencoder(ParticleModel):
    """A dense autoencoder on the ``jet`` input group: the reconstruction error is the anomaly score."""

    name: ClassVar[str] = "autoencoder"
    input_keys: ClassVar[tuple[str, ...]] = ("jet",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "small": {"hidden": (16,), "latent": 3},
    }

    @dataclasses.dataclass(frozen=True)
    class Hyperparameters:
        """The encoder's widths (the decoder mirrors them), the latent dimension and the dropout."""

        hidden: tuple[int, ...] = (32, 16)  # the encoder's widths; the decoder mirrors them
        latent: int = 3
        dropout: float = 0.0

    def __init__(self, num_outputs: int, input_dims: dict[str, int], **hyperparameters: Any) -> None:
        super().__init__(num_outputs, input_dims, **hyperparameters)
        hp = self.hparams
        widths = (self.input_dims["jet"], *hp.hidden)
        self.encoder = nn.Sequential(
            mlp(widths, activation=nn.ReLU, dropout=hp.dropout), nn.Linear(widths[-1], hp.latent)
        )
        decoder_widths = (hp.latent, *reversed(hp.hidden))
        self.decoder = nn.Sequential(
            nn.ReLU(),
            mlp(decoder_widths, activation=nn.ReLU, dropout=hp.dropout),
            nn.Linear(decoder_widths[-1], num_outputs),
        )

    @override
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.decoder(self.encoder(self.inputs(batch)["jet"]))
