"""The jets of a batch, as arrays: padded (``JetArrays``) and unpadded (``RaggedJets``).

``JetArrays`` holds ``n`` jets as a model sees them: a numpy array per input group (``(n, L, F)``
padded per-particle, or ``(n, F)`` per-jet), ``mask``, ``label``, ``weight`` and the observers.
``RaggedJets`` holds the same jets with the per-particle inputs unpadded, as the streaming buffer
keeps them; ``RaggedJets.padded`` pads (and standardises) the jets a batch takes, each value once.
The transformer (``heplearn.data.transform``) makes both from a file's chunk.

The observers (``data.observers``, weaver-core's ``monitor_variables``) are per-jet values kept
exactly as the file holds them: never standardised, never converted (a float64 field stays
float64), never a model input. In a batch each is the ``(n,)`` array under
``observer_key(name)`` (``observer:<name>``): ``RaggedJets.padded_shapes`` lists them beside
``label`` and ``weight``, and ``RaggedJets.padded(out=...)`` writes them into the given arrays
like those, so they travel through the streaming hand-over's shared blocks too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from heplearn.data.padding import Constants, pad_particles, row_pattern

OBSERVER_PREFIX = "observer:"  # batch keys of the observers: ``observer:<name>``


def observer_key(name: str) -> str:
    """The batch key of observer ``name``.

    Example:
    >>> observer_key("jet_sdmass")
    'observer:jet_sdmass'
    """
    return OBSERVER_PREFIX + name


@dataclass
class JetArrays:
    """The arrays of ``n`` jets; ``inputs`` keyed by input-group name."""

    inputs: dict[str, np.ndarray]
    mask: np.ndarray | None
    label: np.ndarray
    weight: np.ndarray
    observers: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.weight)

    def take(self, index: np.ndarray | slice) -> JetArrays:
        """The jets at ``index`` (rows of every input, the mask, labels, weights and observers)."""
        return JetArrays(
            {k: v[index] for k, v in self.inputs.items()},
            None if self.mask is None else self.mask[index],
            self.label[index],
            self.weight[index],
            {k: v[index] for k, v in self.observers.items()},
        )

    @staticmethod
    def concatenate(parts: list[JetArrays]) -> JetArrays:
        """One ``JetArrays`` of the jets of ``parts``, in order (all with the same inputs)."""
        first = parts[0]
        return JetArrays(
            {k: np.concatenate([p.inputs[k] for p in parts]) for k in first.inputs},
            None if first.mask is None else np.concatenate([p.mask for p in parts if p.mask is not None]),
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.weight for p in parts]),
            {k: np.concatenate([p.observers[k] for p in parts]) for k in first.observers},
        )


def particle_rows(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The flat rows ``[start, start + count)`` of every jet, one after the other."""
    ends = np.cumsum(counts)
    return np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(starts - (ends - counts), counts)


@dataclass
class RaggedJets:
    """``n`` jets with their per-particle inputs unpadded: the kept particles of every jet in a row.

    The shuffling buffer holds jets in this form (less than half the padded size for JetClass-like
    jets) and pads only the batches it cuts, so every padded value is written exactly once.
    """

    names: tuple[str, ...]  # the input groups, in the config's order
    particles: dict[str, np.ndarray]  # per-particle groups: (kept particles, F) float32, not standardised
    counts: np.ndarray | None  # (n,) kept particles per jet; None without per-particle groups
    length: int
    pad_values: dict[str, float]
    jet_inputs: dict[str, np.ndarray]  # per-jet groups (n, F) and images (n, C, H, W)
    label: np.ndarray
    weight: np.ndarray
    observers: dict[str, np.ndarray] = field(default_factory=dict)
    # per-particle groups standardised as they are padded (``padding.pad_particles``)
    scaling: dict[str, Constants] = field(default_factory=dict)
    starts: np.ndarray | None = field(init=False, repr=False)  # first flat row of every jet
    patterns: dict[str, Constants] = field(init=False, repr=False)  # ``scaling`` for every slot

    def __post_init__(self) -> None:
        self.particles = {name: np.ascontiguousarray(values, np.float32) for name, values in self.particles.items()}
        if self.counts is not None:
            self.counts = self.counts.astype(np.int64, copy=False)
            self.starts = np.cumsum(self.counts) - self.counts
            if len(self.counts) and self.counts.max() > self.length:  # the kernel writes without bounds checks
                raise ValueError(f"jets of up to {self.counts.max()} particles for {self.length} slots")
        else:
            self.starts = None
        self.patterns = {
            name: row_pattern(self.scaling.get(name), self.length, values.shape[1])
            for name, values in self.particles.items()
        }

    def __len__(self) -> int:
        return len(self.weight)

    def take(self, index: np.ndarray) -> RaggedJets:
        """The jets ``index`` (an integer array), in that order."""
        particles, counts = self.particles, None
        if self.counts is not None and self.starts is not None:
            counts = self.counts[index]
            rows = particle_rows(self.starts[index], counts)
            particles = {name: _gather_rows(values, rows) for name, values in self.particles.items()}
        return RaggedJets(
            self.names,
            particles,
            counts,
            self.length,
            self.pad_values,
            {k: v[index] for k, v in self.jet_inputs.items()},
            self.label[index],
            self.weight[index],
            {k: v[index] for k, v in self.observers.items()},
            self.scaling,
        )

    @staticmethod
    def concatenate(parts: list[RaggedJets], arena: dict[str, np.ndarray] | None = None) -> RaggedJets:
        """The jets of ``parts`` one after the other (``parts[0]`` itself if alone).

        With ``arena``, the particles are copied into its arrays (grown as needed, one per group)
        rather than into new ones: a shuffling buffer reuses the same memory from pool to pool
        instead of touching fresh pages every time. The result is a view of the arena, valid
        until the arena's next use.
        """
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        return RaggedJets(
            first.names,
            {k: _concatenated([p.particles[k] for p in parts], k, arena) for k in first.particles},
            None if first.counts is None else np.concatenate([p.counts for p in parts if p.counts is not None]),
            first.length,
            first.pad_values,
            {k: np.concatenate([p.jet_inputs[k] for p in parts]) for k in first.jet_inputs},
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.weight for p in parts]),
            {k: np.concatenate([p.observers[k] for p in parts]) for k in first.observers},
            first.scaling,
        )

    def padded_shapes(self, n: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Shape and dtype of every array of ``n`` padded jets, keyed as in a batch."""
        shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for name in self.names:
            if name in self.particles and self.counts is not None:
                shapes[name] = ((n, self.length, self.particles[name].shape[1]), np.dtype(np.float32))
            else:
                values = self.jet_inputs[name]
                shapes[name] = ((n, *values.shape[1:]), values.dtype)
        if self.counts is not None:
            shapes["mask"] = ((n, self.length), np.dtype(bool))
        shapes["label"] = ((n, *self.label.shape[1:]), self.label.dtype)
        shapes["weight"] = ((n, *self.weight.shape[1:]), self.weight.dtype)
        for name, values in self.observers.items():
            shapes[observer_key(name)] = ((n, *values.shape[1:]), values.dtype)
        return shapes

    def padded(self, index: np.ndarray | slice | None = None, out: Mapping[str, np.ndarray] | None = None) -> JetArrays:
        """The jets ``index`` (all if None) as ``JetArrays``: particles padded to ``length`` slots
        and standardised with ``scaling``.

        ``out`` (arrays as ``padded_shapes`` describes, observers under ``observer_key(name)``)
        receives the batch's arrays instead of new ones, and the result's arrays are those.
        """
        if index is None:
            index = slice(0, len(self))
        index = (
            np.arange(*index.indices(len(self))) if isinstance(index, slice) else np.ascontiguousarray(index, np.int64)
        )
        if len(index) and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"jet index out of range for {len(self)} jets")  # the kernel does not check
        if out is None:
            out = {key: np.empty(shape, dtype) for key, (shape, dtype) in self.padded_shapes(len(index)).items()}
        starts, counts = self.starts, self.counts
        mask = out["mask"] if counts is not None and starts is not None else None
        inputs = {}
        for name in self.names:
            if name in self.particles and mask is not None and starts is not None and counts is not None:
                padded = out[name]
                pad_particles(
                    self.particles[name],
                    starts,
                    counts,
                    index,
                    self.patterns[name],
                    self.pad_values[name],
                    padded,
                    mask,
                )
                inputs[name] = padded
            else:
                inputs[name] = np.take(self.jet_inputs[name], index, axis=0, out=out[name])
        observers = {
            name: np.take(values, index, axis=0, out=out[observer_key(name)]) for name, values in self.observers.items()
        }
        return JetArrays(
            inputs,
            mask,
            np.take(self.label, index, axis=0, out=out["label"]),
            np.take(self.weight, index, axis=0, out=out["weight"]),
            observers,
        )


def _concatenated(arrays: list[np.ndarray], key: str, arena: dict[str, np.ndarray] | None) -> np.ndarray:
    if arena is None:
        return np.concatenate(arrays)
    rows = sum(len(values) for values in arrays)
    memory = arena.get(key)
    if memory is None or len(memory) < rows or memory.shape[1:] != arrays[0].shape[1:]:
        memory = arena[key] = np.empty((rows + rows // 4, *arrays[0].shape[1:]), arrays[0].dtype)
    return np.concatenate(arrays, out=memory[:rows])


def _gather_rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.take(values, rows, axis=0)  # one memcpy per row: twice as fast as values[rows]
