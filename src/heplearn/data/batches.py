"""A batch: the ``dict[str, torch.Tensor]`` that models, losses and methods read.

A batch is the ``dict[str, torch.Tensor]`` of DESIGN.md: one tensor per input group, ``mask``
(B, N) bool for per-particle groups, ``label`` and ``weight``, and one (B,) tensor per observer of
the data config under ``observer_key(name)`` (``observer:<name>``; ``batch_observers`` collects
them). An observer holds exactly the file's values for the jets of its batch, in the file's dtype,
for loss terms and methods; models never read it, and ``trim_padding`` leaves it as it is. Every
path delivers them alike: ``to_batch``, ``InMemoryJets.batches`` (sharded or not), ``JetStream``
and ``StreamLoader``, whose workers pad them into the shared blocks beside label and weight.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from heplearn.data.jets import OBSERVER_PREFIX, JetArrays, observer_key

Batch = dict[str, torch.Tensor]


def to_batch(arrays: JetArrays) -> Batch:
    """The batch of ``arrays``: tensors sharing their memory, observers under ``observer_key``."""
    batch = {name: torch.from_numpy(values) for name, values in arrays.inputs.items()}
    if arrays.mask is not None:
        batch["mask"] = torch.from_numpy(arrays.mask)
    batch["label"] = torch.from_numpy(arrays.label)
    batch["weight"] = torch.from_numpy(arrays.weight)
    for name, values in arrays.observers.items():
        batch[observer_key(name)] = torch.from_numpy(values)
    return batch


def batch_observers(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The observers of ``batch``, keyed by their name (without ``OBSERVER_PREFIX``)."""
    return {
        key.removeprefix(OBSERVER_PREFIX): values for key, values in batch.items() if key.startswith(OBSERVER_PREFIX)
    }


PARTICLE_AXIS_KEYS = ("particles", "points", "vectors", "mask")


def trim_padding(batch: Batch) -> Batch:
    """The batch cut to its longest jet along the particle axis.

    Real particles come first in every row, so the cut drops only padding; the models are
    invariant under padding (tested), so only the cost changes: attention and pair features
    scale with the square of the particle axis. Per-jet tensors (``jet``, labels, weights,
    observers) stay as they are.
    """
    if "mask" not in batch or batch["mask"].dim() != 2:
        return batch
    longest = max(int(batch["mask"].sum(dim=1).max()), 1)
    if longest == batch["mask"].shape[1]:
        return batch
    return {key: (value[:, :longest] if key in PARTICLE_AXIS_KEYS else value) for key, value in batch.items()}
