"""Pairwise particle interaction features for the Particle Transformer.

Qu, Li, Qian, "Particle Transformer for Jet Tagging", ICML 2022, arXiv:2202.03772, Eq. (3):
for particles a and b with transverse momenta pT, rapidities y, azimuths φ and four-momenta p,

    Δ   = sqrt((y_a − y_b)² + (φ_a − φ_b)²)
    kT  = min(pT_a, pT_b) Δ
    z   = min(pT_a, pT_b) / (pT_a + pT_b)
    m²  = (E_a + E_b)² − |p_a + p_b|²

and the network reads their logarithms (ln kT, ln z, ln Δ, ln m²), each floored at a small ε so
that collinear, soft or padded pairs give a finite value.

The features are symmetric in a ↔ b, so the model computes them once per unordered pair of
distinct real particles (``pair_layout`` lists the strict upper triangle of the N × N matrix).
Exported models compute the full padded matrix instead, with the same result: the pair list
depends on the data, which would fix the number of particles in the exported graph.
"""

from __future__ import annotations

import math

import torch

NUM_PAIR_FEATURES = 4
PAIR_EPSILON = 1e-8


def particle_kinematics(vectors: torch.Tensor) -> dict[str, torch.Tensor]:
    """pT, rapidity and azimuth of ``vectors`` (..., 4) = (px, py, pz, E); finite for zero vectors."""
    px, py, pz, energy = vectors.unbind(-1)
    tiny = torch.finfo(vectors.dtype).tiny
    rapidity = 0.5 * torch.log((energy + pz).clamp_min(tiny) / (energy - pz).clamp_min(tiny))
    return {"pt": torch.hypot(px, py), "rapidity": rapidity, "phi": torch.atan2(py, px)}


def wrap_angle(angle: torch.Tensor) -> torch.Tensor:
    """An angle difference folded into [−π, π)."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def pair_layout(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The unordered pairs (first, second) of distinct slots, first < second, row by row."""
    first, second = torch.triu_indices(size, size, offset=1, device=device)
    return first, second


def interaction_features(
    vectors_a: torch.Tensor, vectors_b: torch.Tensor, epsilon: float = PAIR_EPSILON
) -> torch.Tensor:
    """(ln kT, ln z, ln Δ, ln m²) of the pairs (a, b): shape of the broadcast inputs, last axis 4.

    ``vectors_a[:, first]`` and ``vectors_a[:, second]`` give a list of pairs (B, P, 4);
    ``vectors[:, :, None]`` and ``vectors[:, None, :]`` the full matrix (B, N, N, 4).
    """
    a, b = particle_kinematics(vectors_a), particle_kinematics(vectors_b)
    delta_squared = (a["rapidity"] - b["rapidity"]) ** 2 + wrap_angle(a["phi"] - b["phi"]) ** 2
    delta = torch.sqrt(delta_squared.clamp_min(epsilon**2))
    pt_min = torch.minimum(a["pt"], b["pt"])
    z = pt_min / (a["pt"] + b["pt"]).clamp_min(epsilon)
    total = vectors_a + vectors_b
    mass_squared = total[..., 3] ** 2 - (total[..., :3] ** 2).sum(dim=-1)
    features = torch.stack([pt_min * delta, z, delta, mass_squared], dim=-1)
    return torch.log(features.clamp_min(epsilon))
