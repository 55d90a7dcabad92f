"""A convolutional autoencoder on the event's calorimeter regions: CICADA's anomaly detector.

CICADA (Calorimeter Image Convolutional Anomaly Detection Algorithm, CMS Level-1 trigger) reads
the 18 × 14 (φ × η) regions of transverse energy of the calorimeter layer-1 trigger; its
"teacher" is a convolutional autoencoder trained on zero-bias data, and the anomaly score is the
mean squared reconstruction error (the deployed "student" regresses that score). The "paper"
preset follows the teacher's published shape [recall: CMS-DP-2023-079 / the CICADA repository]:
convolution of 20 maps 3 × 3, 2 × 2 average pooling, convolution of 30 maps, a dense latent of
80, then the mirror image (dense, convolution, 2 × 2 upsampling, convolutions) back to one map.

Images come from ``heplearn.features.images.calorimeter_images`` (the data config's
``image: {kind: calorimeter}``, a group named ``image``; ``model.regions`` must match its
``regions``). Trained with ``data.labels.type: none``: the ``reconstruction``
task on the flattened image, score the MSE over the regions. The φ axis is periodic: the
convolutions pad it circularly, η with zeros.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch
from torch import nn
from typing_extensions import override

from heplearn.errors import ConfigError
from heplearn.models.nn_base import ParticleModel


class PeriodicConv(nn.Module):
    """A 'same' 2-D convolution whose rows (φ) wrap around and whose columns (η) are zero-padded."""

    def __init__(self, channels_in: int, channels_out: int, kernel_size: int) -> None:
        super().__init__()
        self.pad = kernel_size // 2
        self.conv = nn.Conv2d(channels_in, channels_out, kernel_size)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad
        x = torch.cat([x[:, :, -p:], x, x[:, :, :p]], dim=2) if p else x
        return self.conv(nn.functional.pad(x, (p, p, 0, 0)))


class CaloAutoencoder(ParticleModel):
    """Convolutional autoencoder of calorimeter-region images ``(B, 1, φ, η)``; outputs the image flattened."""

    name: ClassVar[str] = "cicada"
    input_keys: ClassVar[tuple[str, ...]] = ("image",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "small": {"channels": (8, 12), "latent": 16},
    }

    @dataclasses.dataclass(frozen=True)
    class Hyperparameters:
        """The input regions, the convolutions' channels and the latent size of the teacher."""

        regions: tuple[int, int] = (18, 14)  # (φ, η) of the input image; must match the data's
        channels: tuple[int, int] = (20, 30)
        latent: int = 80
        kernel_size: int = 3

    def __init__(self, num_outputs: int, input_dims: dict[str, int], **hyperparameters: Any) -> None:
        super().__init__(num_outputs, input_dims, **hyperparameters)
        hp = self.hparams
        rows, columns = hp.regions
        if rows % 2 or columns % 2 or hp.latent < 1 or hp.kernel_size % 2 == 0:
            raise ConfigError(
                f"model cicada: regions must be even (one 2 × 2 pooling), latent ≥ 1 and the kernel "
                f"odd; got regions {hp.regions}, latent {hp.latent}, kernel_size {hp.kernel_size}"
            )
        channels = self.input_dims["image"]
        # asked for the image's size (the reconstruction task), it rebuilds the image; asked for any
        # other width (a check with placeholder classes), it is a bottleneck network whose head reads z
        self.rebuilds = num_outputs == channels * rows * columns
        first, second = hp.channels
        self.pooled = (second, rows // 2, columns // 2)
        flat = math.prod(self.pooled)
        self.encoder = nn.Sequential(
            PeriodicConv(channels, first, hp.kernel_size),
            nn.ReLU(),
            nn.AvgPool2d(2),
            PeriodicConv(first, second, hp.kernel_size),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(flat, hp.latent),
        )
        self.decoder = nn.Sequential(
            nn.ReLU(),
            nn.Linear(hp.latent, flat),
            nn.ReLU(),
            nn.Unflatten(1, self.pooled),
            PeriodicConv(second, second, hp.kernel_size),
            nn.ReLU(),
            nn.Upsample(scale_factor=2.0, mode="nearest"),
            PeriodicConv(second, first, hp.kernel_size),
            nn.ReLU(),
            PeriodicConv(first, channels, hp.kernel_size),
            nn.Flatten(),
        )
        self.head = None if self.rebuilds else nn.Sequential(nn.ReLU(), nn.Linear(hp.latent, num_outputs))

    @override
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        image = self.inputs(batch)["image"]
        if tuple(image.shape[2:]) != tuple(self.hparams.regions):
            raise ConfigError(
                f"model cicada: images of {tuple(image.shape[2:])} regions, the model was built for "
                f"{tuple(self.hparams.regions)}"
            )
        latent = self.encoder(image)
        return self.decoder(latent) if self.head is None else self.head(latent)
