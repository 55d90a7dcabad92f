"""Jets held in memory: every jet of a split read at once, batches drawn per epoch.

For data that fits in memory (and for evaluation, export checks and the methods): ``load_arrays``
reads files into ``JetArrays``, ``load_with_variations`` adds a split's systematic variations,
``fit_preprocessing`` fits the standardisation on the training split, and ``InMemoryJets`` holds a
split standardised and cuts its batches (shuffled per epoch, shared equally among DDP ranks).
Larger data streams instead (``heplearn.data.stream``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from heplearn.data.batches import Batch, to_batch
from heplearn.data.config import VARIATION_OBSERVER, DataConfig
from heplearn.data.jets import JetArrays, RaggedJets
from heplearn.data.pieces import PieceReader, plan_pieces
from heplearn.data.preprocessing import Preprocessing
from heplearn.errors import DataError


def load_arrays(
    files: Sequence[str | os.PathLike[str]], config: DataConfig, max_jets: int | None = None
) -> tuple[JetArrays, list[str]]:
    """All jets of ``files`` (or the first ``max_jets`` after selection), unstandardised."""
    reader = PieceReader(config)
    parts: list[RaggedJets] = []
    kept = 0
    for piece in plan_pieces(files, config.chunk_size, config.treename):
        part = reader.read(piece)
        parts.append(part)
        kept += len(part)
        if max_jets is not None and kept >= max_jets:
            break
    jets = RaggedJets.concatenate(parts)
    if len(jets) == 0:
        where = f"data.selection {config.selection!r}" if config.selection else "reading"
        raise DataError(f"no jets left after {where} in {', '.join(map(str, files))}")
    if max_jets is not None and len(jets) > max_jets:
        jets = jets.take(np.arange(max_jets))
    return jets.padded(), reader.class_names(str(files[0]))


def load_with_variations(config: DataConfig, split: str) -> tuple[JetArrays, list[str]]:
    """All jets of a split and of its systematic variations (``data.variations``), unstandardised.

    With variations, every jet carries the observer ``variation``: 0 for the split's own jets, +k / −k
    for those of the up / down sample of the k-th variation (``DataConfig.variation_files``).
    """
    arrays, class_names = load_arrays(config.files(split), config)
    if not config.variations:
        return arrays, class_names
    parts = [replace(arrays, observers={**arrays.observers, VARIATION_OBSERVER: np.zeros(len(arrays), np.int64)})]
    for code, files in config.variation_files(split):
        varied, varied_classes = load_arrays(files, config)
        if varied_classes != class_names:
            raise DataError(
                f"data.variations: {', '.join(map(str, files))} has the classes {varied_classes}, the "
                f"{split} split {class_names}"
            )
        parts.append(
            replace(varied, observers={**varied.observers, VARIATION_OBSERVER: np.full(len(varied), code, np.int64)})
        )
    return JetArrays.concatenate(parts), class_names


def fit_preprocessing(config: DataConfig, files: Sequence[Path] | None = None) -> Preprocessing:
    """Standardisation fitted on (the first ``standardization_jets`` of) the training split."""
    files = list(files) if files is not None else config.files("train")
    arrays, class_names = load_arrays(files, config, config.standardization_jets)
    return Preprocessing.fit(arrays, config, class_names)


class InMemoryJets:
    """All jets of a split, standardised, held as numpy arrays; batches drawn per epoch."""

    def __init__(
        self,
        arrays: JetArrays,
        class_names: list[str],
        preprocessing: Preprocessing | None,
        config: DataConfig | None = None,
    ) -> None:
        self.arrays = preprocessing.apply(arrays) if preprocessing else arrays
        self.class_names = class_names
        self.config = config

    @classmethod
    def from_files(
        cls, files: Sequence[str | os.PathLike[str]], config: DataConfig, preprocessing: Preprocessing | None
    ) -> InMemoryJets:
        """Every jet of ``files`` read with ``config`` (standardised with ``preprocessing``, when given)."""
        arrays, class_names = load_arrays(files, config)
        return cls(arrays, class_names, preprocessing, config)

    @classmethod
    def from_split(cls, config: DataConfig, split: str, preprocessing: Preprocessing | None) -> InMemoryJets:
        """The jets of ``split``, with those of its systematic variations (``load_with_variations``)."""
        arrays, class_names = load_with_variations(config, split)
        return cls(arrays, class_names, preprocessing, config)

    def __len__(self) -> int:
        return len(self.arrays)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """Batches of ``batch_size`` jets, shuffled per (seed, epoch); under DDP each rank takes an equal share."""
        order = np.random.default_rng([seed, epoch]).permutation(len(self)) if shuffle else np.arange(len(self))
        if world_size > 1:  # equal shares, so every rank runs the same number of steps (DDP needs it)
            share = len(order) // world_size
            order = order[rank * share : (rank + 1) * share]
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            if drop_last and len(index) < batch_size:
                break
            yield to_batch(self.arrays.take(index))
