"""Losses for the three heads: classification, regression (MSE, Huber) and quantile regression.

Every loss takes per-event weights: ``Σ wᵢ ℓᵢ / Σ wᵢ``, so Monte Carlo weights and class weights
both enter the gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (values * weight).sum() / weight.sum().clamp_min(torch.finfo(values.dtype).tiny)


def cross_entropy(class_weights: torch.Tensor | None = None) -> LossFunction:
    def loss(logits: torch.Tensor, label: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        per_event = F.cross_entropy(logits.float(), label, reduction="none")
        if class_weights is not None:
            weight = weight * class_weights[label]
        return weighted_mean(per_event, weight)

    return loss


def mse(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return weighted_mean(F.mse_loss(output.float(), target, reduction="none").sum(-1), weight)


def huber(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return weighted_mean(F.huber_loss(output.float(), target, reduction="none").sum(-1), weight)


def quantile(levels: list[float]) -> LossFunction:
    """Pinball loss; the output holds one column per (target, quantile level), targets outermost."""
    tau = torch.tensor(levels)

    def loss(output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        predicted = output.float().reshape(len(output), target.shape[-1], len(levels))
        error = target.unsqueeze(-1) - predicted
        pinball = torch.maximum(tau * error, (tau - 1) * error)
        return weighted_mean(pinball.sum((-1, -2)), weight)

    return loss
