"""Deep Sets for jets: Particle Flow Networks and Energy Flow Networks.

Komiske, Metodiev, Thaler, "Energy Flow Networks: Deep Sets for Particle Jets",
JHEP 01 (2019) 121, arXiv:1810.05165. A jet is a set of particles; every function of a set
that does not depend on the order can be written as F(Σ_i Φ(p_i)). Φ maps each particle to a
latent vector, the sum pools the set, F maps the pooled vector to the output.

- PFN: Φ reads all per-particle features; the sum is plain.
- EFN: Φ reads only the angles (Δη, Δφ) and the sum is weighted by the momentum fraction
  z_i = pT_i / Σ_j pT_j, which makes the latent sum — and the output — infrared and collinear
  safe (a soft particle has z → 0, a collinear split shares z at the same angle).

A PFN may also read the jet-level input group (``jet_inputs``: F(Σ_i Φ(p_i) ⊕ BN(jet features)),
the "global features" that weaver's taggers append): substructure such as τ21 or the soft-drop mass,
which a sum of per-particle terms learns slowly, enters F directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from typing_extensions import override

from heplearn.errors import ConfigError
from heplearn.models.nn_base import ParticleModel, mlp

#: The paper's dense sizes are Φ (100, 100, 128), F (100, 100, 100); like the reference
#: benchmarks we use 128 everywhere, which gives 83,842 parameters with 7 particle features.
_SIZES = (128, 128, 128)


@dataclass(frozen=True)
class DeepSetsHyperparameters:
    """The widths of the per-particle network Φ and of the jet-level network F, F's dropout, and
    whether F also reads the batch-normalised ``jet`` input group (PFN only)."""

    phi_sizes: tuple[int, ...] = _SIZES
    f_sizes: tuple[int, ...] = _SIZES
    dropout: float = 0.0  # after each F layer
    jet_inputs: bool = False


_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": {"phi_sizes": (32, 32), "f_sizes": (32, 32)},
}


class _DeepSets(ParticleModel):
    Hyperparameters = DeepSetsHyperparameters
    presets = _PRESETS

    def _build(self, phi_input: int, jet_input: int = 0) -> None:
        hp: DeepSetsHyperparameters = self.hparams
        if not hp.phi_sizes:
            raise ConfigError(f"model {self.name}: phi_sizes needs at least one layer")
        # Φ: ReLU after every layer, including the last (the latent space is non-negative).
        self.phi = mlp((phi_input, *hp.phi_sizes))
        self.f = mlp((hp.phi_sizes[-1] + jet_input, *hp.f_sizes), dropout=hp.dropout)
        self.output = nn.Linear(hp.f_sizes[-1] if hp.f_sizes else hp.phi_sizes[-1], self.num_outputs)

    def _head(self, latent_sum: torch.Tensor) -> torch.Tensor:
        return self.output(self.f(latent_sum))


class ParticleFlowNetwork(_DeepSets):
    """PFN: ``F(Σ_i Φ(particle features_i))`` over the real particles."""

    name: ClassVar[str] = "pfn"
    input_keys: ClassVar[tuple[str, ...]] = ("particles", "mask")

    def __init__(self, num_outputs: int, input_dims: dict[str, int], **hyperparameters: Any) -> None:
        super().__init__(num_outputs, input_dims, **hyperparameters)
        jet_size = 0
        if self.hparams.jet_inputs:
            jet_size = input_dims.get("jet", 0)
            if isinstance(jet_size, bool) or not isinstance(jet_size, int) or jet_size < 1:
                raise ConfigError(
                    f"model {self.name}: jet_inputs needs a 'jet' input group of jet-level variables in the data "
                    f"config (input_dims has {sorted(input_dims)})"
                )
            self.input_dims["jet"] = jet_size
            # this instance reads one group more than its class declares (export and attacks ask the instance)
            self.input_keys = ("particles", "jet", "mask")  # type: ignore[misc]
            self.jet_norm = nn.BatchNorm1d(jet_size)
        self._build(self.input_dims["particles"], jet_size)

    @override
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = self.inputs(batch)
        mask = inputs["mask"].unsqueeze(-1).to(inputs["particles"].dtype)
        pooled = (self.phi(inputs["particles"]) * mask).sum(dim=1)
        if self.hparams.jet_inputs:
            pooled = torch.cat([pooled, self.jet_norm(inputs["jet"])], dim=1)
        return self._head(pooled)


class EnergyFlowNetwork(_DeepSets):
    """EFN: ``F(Σ_i z_i Φ(Δη_i, Δφ_i))`` with z_i the pT fraction of particle i (IRC safe)."""

    name: ClassVar[str] = "efn"
    input_keys: ClassVar[tuple[str, ...]] = ("points", "vectors", "mask")

    def __init__(self, num_outputs: int, input_dims: dict[str, int], **hyperparameters: Any) -> None:
        super().__init__(num_outputs, input_dims, **hyperparameters)
        if self.hparams.jet_inputs:
            raise ConfigError(
                f"model {self.name}: jet_inputs is a PFN option (the EFN's F reads an IRC-safe sum alone)"
            )
        self._build(self.input_dims["points"])

    @override
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = self.inputs(batch)
        vectors = inputs["vectors"]  # padded slots are zero, so their pT (and z) is zero
        pt = torch.hypot(vectors[..., 0], vectors[..., 1])
        z = pt / pt.sum(dim=1, keepdim=True).clamp_min(torch.finfo(pt.dtype).tiny)
        latent = self.phi(inputs["points"]) * z.unsqueeze(-1)
        return self._head(latent.sum(dim=1))
