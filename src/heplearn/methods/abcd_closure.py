"""The ABCD non-closure as a differentiable constraint, for ABCDisCo with closure (ABCDisCoTEC).

Double DisCo (``decorrelation.DoubleDisCoStep``) makes two taggers f and g independent on the
background so that N_A = N_B·N_C/N_D holds in the (f, g) plane; independence is sufficient, not
necessary, and a finite λ leaves some non-closure. ABCDisCoTEC (CMS, MLG-23-003) constrains the
non-closure itself. Here the regions are counted softly on the batch's background — a_f =
σ((f − c_f)/T), a_g = σ((g − c_g)/T), N_A = Σ w a_f a_g, N_B = Σ w a_f (1 − a_g), N_C = Σ w (1 − a_f) a_g,
N_D = Σ w (1 − a_f)(1 − a_g), with the cuts c at fixed background quantiles of the batch — and the
non-closure |N_A·N_D / (N_B·N_C) − 1| must stay below ε.

The constraint is enforced with the modified differential method of multipliers (MDMM; Platt &
Barr, "Constrained differential optimization", NIPS 1987): the networks descend on
L + λ·h + (d/2)·h², with h = non-closure − ε, while the multiplier ascends, λ ← max(0, λ + η·h)
(an inequality constraint: λ stays at 0 while the constraint holds). The damping d turns the
saddle point into a minimum of the networks' problem, so the oscillations of the plain method of
multipliers die out.
"""

from __future__ import annotations

import pydantic
import torch
from torch import nn

from heplearn.config import StrictModel

__all__ = ["ClosureConstraint", "ClosureSettings", "non_closure", "soft_region_counts"]


class ClosureSettings(StrictModel):
    """``training.step: {name: double_disco, closure: {epsilon: 0.02, ...}}``."""

    # the non-closure allowed on one batch: above its statistical spread there, ~2/√(background
    # events per region) (0.2 for a batch of 512 half background; 0.1 needs ~2000 background events)
    epsilon: float = pydantic.Field(default=0.2, ge=0)
    quantiles: tuple[float, float] = (0.5, 0.5)  # the cuts on f and g: background quantiles of the batch
    temperature: float = pydantic.Field(default=0.02, gt=0)  # width of the soft cuts, in score units
    damping: float = pydantic.Field(default=1.0, ge=0)  # d of MDMM
    multiplier_rate: float = pydantic.Field(default=1.0, gt=0)  # η of the multiplier's ascent

    @pydantic.field_validator("quantiles")
    @classmethod
    def _inside(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 < quantile < 1 for quantile in value):
            raise ValueError(f"quantiles must lie in (0, 1), got {list(value)}")
        return value


def soft_region_counts(
    f: torch.Tensor,
    g: torch.Tensor,
    cut_f: float | torch.Tensor,
    cut_g: float | torch.Tensor,
    temperature: float,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """(N_A, N_B, N_C, N_D) with sigmoid cuts of width ``temperature``: A = f and g above their cuts,
    B = f above only, C = g above only, D = neither (the convention of ``heplearn.stats.abcd``).

    As ``temperature`` → 0 these are the weighted counts of the hard cuts.
    """
    weight = torch.ones_like(f) if weight is None else weight
    above_f = torch.sigmoid((f - cut_f) / temperature)
    above_g = torch.sigmoid((g - cut_g) / temperature)
    return torch.stack(
        [
            (weight * above_f * above_g).sum(),
            (weight * above_f * (1 - above_g)).sum(),
            (weight * (1 - above_f) * above_g).sum(),
            (weight * (1 - above_f) * (1 - above_g)).sum(),
        ]
    )


def non_closure(counts: torch.Tensor) -> torch.Tensor:
    """|N_A·N_D / (N_B·N_C) − 1|: 0 when the ABCD estimate N_B·N_C/N_D equals N_A."""
    region_a, region_b, region_c, region_d = counts
    tiny = torch.finfo(counts.dtype).tiny
    return (region_a * region_d / (region_b * region_c + tiny) - 1).abs()


class ClosureConstraint(nn.Module):
    """The MDMM term of the non-closure constraint and its multiplier λ (a buffer, checkpointed)."""

    multiplier: torch.Tensor

    def __init__(self, settings: ClosureSettings) -> None:
        super().__init__()
        self.settings = settings
        self.register_buffer("multiplier", torch.zeros((), dtype=torch.float64))

    def forward(self, f: torch.Tensor, g: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the term the networks minimise, the non-closure) for the background scores f and g."""
        settings = self.settings
        with torch.no_grad():
            cut_f = torch.quantile(f.detach().float(), settings.quantiles[0])
            cut_g = torch.quantile(g.detach().float(), settings.quantiles[1])
        counts = soft_region_counts(f, g, cut_f, cut_g, settings.temperature, weight)
        violation = non_closure(counts)
        excess = violation - settings.epsilon
        damped = torch.clamp(excess, min=0.0)
        term = self.multiplier.to(excess.dtype) * excess + 0.5 * settings.damping * damped**2
        return term, violation

    @torch.no_grad()
    def ascend(self, violation: torch.Tensor) -> None:
        """λ ← max(0, λ + η·(non-closure − ε)): the multiplier's step of MDMM."""
        step = self.settings.multiplier_rate * (float(violation) - self.settings.epsilon)
        self.multiplier.copy_(torch.clamp(self.multiplier + step, min=0.0))
