"""A convolutional network on jet images.

The "paper" preset follows the DeepTop tagger (Kasieczka, Plehn, Russell, Schell,
"Deep-learning top taggers or the end of QCD?", JHEP 05 (2017) 006, arXiv:1701.08784):
40 × 40 calorimeter images, four convolutions with 8 maps of 4 × 4, a 2 × 2 max-pooling after the
second and the fourth, then dense layers of 64, 256 and 256 units. Images come from
``heplearn.features.images.jet_images``.

Before the dense layers the maps are average-pooled to a fixed ``pooled_size`` (the identity for
40 × 40 inputs with two poolings), so the same network reads images of any size.
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
class JetImageCNNHyperparameters:
    """Defaults: DeepTop-like; 137,442 parameters for 1-channel images and 2 outputs."""

    conv_channels: tuple[tuple[int, ...], ...] = ((8, 8), (8, 8))  # groups, each followed by 2x2 max-pooling
    kernel_size: int = 4
    pooled_size: int = 10
    dense_sizes: tuple[int, ...] = (64, 256, 256)
    dropout: float = 0.0


class JetImageCNN(ParticleModel):
    """Convolution groups ('same' padding, ReLU) with 2x2 max-pooling, then dense layers."""

    name: ClassVar[str] = "cnn"
    input_keys: ClassVar[tuple[str, ...]] = ("image",)
    Hyperparameters = JetImageCNNHyperparameters
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "small": {"conv_channels": ((8,), (16,)), "kernel_size": 3, "pooled_size": 4, "dense_sizes": (32,)},
    }

    def __init__(self, num_outputs: int, input_dims: dict[str, int], **hyperparameters: Any) -> None:
        super().__init__(num_outputs, input_dims, **hyperparameters)
        hp: JetImageCNNHyperparameters = self.hparams
        if not hp.conv_channels or not all(hp.conv_channels) or hp.kernel_size < 1 or hp.pooled_size < 1:
            raise ConfigError("model cnn: needs at least one convolution group, kernel_size >= 1 and pooled_size >= 1")
        # 'same' padding written out: torch warns on padding="same" with an even kernel (DeepTop's 4x4).
        before = (hp.kernel_size - 1) // 2
        after = hp.kernel_size - 1 - before
        layers: list[nn.Module] = []
        channels = self.input_dims["image"]
        for group in hp.conv_channels:
            for size in group:
                layers += [
                    nn.ZeroPad2d((before, after, before, after)),
                    nn.Conv2d(channels, size, hp.kernel_size),
                    nn.ReLU(),
                ]
                channels = size
            layers.append(nn.MaxPool2d(2))
        layers.append(nn.AdaptiveAvgPool2d(hp.pooled_size))
        self.features = nn.Sequential(*layers)
        flat = channels * hp.pooled_size**2
        self.dense = mlp((flat, *hp.dense_sizes), dropout=hp.dropout)
        self.output = nn.Linear(hp.dense_sizes[-1] if hp.dense_sizes else flat, num_outputs)

    @override
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        image = self.inputs(batch)["image"]
        return self.output(self.dense(self.features(image).flatten(1)))
