"""A variational autoencoder on jet- or event-level features: AXOL1TL's anomaly detector.

The encoder maps the ``jet`` input group (e.g. the AXOL1TL input: MET, 4 e/γ, 4 μ and 10 jets as
(pT, η, φ), zero-padded, 57 values) to the mean μ and log-variance log σ² of a Gaussian posterior
q(z | x); the decoder rebuilds the group from z = μ + σ·ε (training) or z = μ (evaluation).
Trained on background alone (``data.labels.type: none``) with the loss (1 − β)·MSE + β·D_KL
(Govorkova et al., arXiv:2108.03986; terms ``reconstruction_mse`` and ``kl`` of
``heplearn.methods.anomaly``), events far from the background are anomalous.

Outputs. Asked for ``num_outputs = F + 2·latent`` (``F`` the group's features; the
``variational_reconstruction`` task does), the network returns ``[μ | log σ² | x̂]``; asked for any
other width (a classifier's classes), it is a bottleneck network whose head reads z.

The deployed score is the hyper-parameter ``score``: ``mse``, ``kl`` or ``latent_norm`` (Σμ²,
the AXOL1TL firmware's score). For the latent scores the exported graph holds the encoder alone:
while ``torch.export`` traces the model, the decoder is not run (its columns are zeros).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn
from typing_extensions import override

from heplearn.errors import ConfigError
from heplearn.models.nn_base import ParticleModel, mlp
from heplearn.tasks import VARIATIONAL_SCORES, LossTerm, Task, VariationalReconstruction


class EventVAE(ParticleModel):
    """Dense VAE on the per-event (or per-jet) group ``jet``; see the module notes."""

    name: ClassVar[str] = "vae"
    input_keys: ClassVar[tuple[str, ...]] = ("jet",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # AXOL1TL v1 (cms-hls4ml/AXOL1TL, GTADModel_v1): 57 inputs → 32 → 16 → 13 (μ)
        "paper": {},
        "small": {"hidden": (16,), "latent": 2},
    }

    @dataclasses.dataclass(frozen=True)
    class Hyperparameters:
        """The encoder's widths (the decoder mirrors them), the latent dimension and the dropout."""

        hidden: tuple[int, ...] = (32, 16)  # the encoder's widths; the decoder mirrors them
        latent: int = 13
        dropout: float = 0.0
        score: str = "latent_norm"  # the deployed anomaly score: mse, kl or latent_norm

    def __init__(self, num_outputs: int, input_dims: dict[str, int], **hyperparameters: Any) -> None:
        super().__init__(num_outputs, input_dims, **hyperparameters)
        hp = self.hparams
        if hp.latent < 1:
            raise ConfigError(f"model vae: latent must be a positive integer, got {hp.latent!r}")
        if hp.score not in VARIATIONAL_SCORES:
            raise ConfigError(f"model vae: unknown score {hp.score!r}; choose one of {', '.join(VARIATIONAL_SCORES)}")
        features = self.input_dims["jet"]
        self.variational = num_outputs == features + 2 * hp.latent
        widths = (features, *hp.hidden)
        self.encoder = nn.Sequential(
            mlp(widths, activation=nn.ReLU, dropout=hp.dropout), nn.Linear(widths[-1], 2 * hp.latent)
        )
        decoder_widths = (hp.latent, *reversed(hp.hidden))
        width = features if self.variational else num_outputs
        self.decoder = nn.Sequential(
            mlp(decoder_widths, activation=nn.ReLU, dropout=hp.dropout), nn.Linear(decoder_widths[-1], width)
        )

    def encode(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's mean and log-variance, ``(B, latent)`` each."""
        mu, log_variance = self.encoder(self.inputs(batch)["jet"]).chunk(2, dim=-1)
        return mu, log_variance

    @override
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mu, log_variance = self.encode(batch)
        # the reparametrisation trick (Kingma & Welling, arXiv:1312.6114): z = μ + σ ε, ε ~ N(0, I)
        z = mu + torch.randn_like(mu) * (0.5 * log_variance).exp() if self.training else mu
        if not self.variational:
            return self.decoder(z)
        if self.hparams.score != "mse" and torch.compiler.is_exporting():
            # a latent score needs the encoder alone: no decoder in the deployed graph
            rebuilt = mu.new_zeros(mu.shape[0], self.input_dims["jet"])
        else:
            rebuilt = self.decoder(z)
        return torch.cat([mu, log_variance, rebuilt], dim=-1)

    @classmethod
    def reconstruction_task(cls, config: Any, group: str, terms: list[LossTerm]) -> Task:
        """The ``variational_reconstruction`` task of a run config (``data.labels.type: none``).

        Padding is recognisable only in an unstandardised group (``standardize: false``): there
        the group's ``pad_value`` marks the empty object slots, which the loss and the MSE score skip.
        """
        if config.training.loss == "auto":
            raise ConfigError(
                "training.loss: a vae trains on (1 − β)·MSE + β·KL; give both terms, e.g. "
                "[{name: reconstruction_mse, weight: 0.5}, {name: kl, weight: 0.5}]"
            )
        hp = cls.parse_hyperparameters({**cls.presets.get(config.model.preset, {}), **config.model.hyperparameters})
        inputs = config.data.inputs[group]
        pad_value = None if inputs.standardize else inputs.pad_value
        return VariationalReconstruction(group, inputs.size, hp.latent, terms, score=hp.score, pad_value=pad_value)
