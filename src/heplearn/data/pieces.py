"""The pieces a set of files is read in, and their shares among the processes of an epoch.

A piece is entries ``[start, stop)`` of one file, cut along the file's storage units (Parquet row
groups, ROOT clusters, HDF5 slices) into at most ``chunk_size`` jets (``plan_pieces``). Every
epoch the pieces of all files are shuffled into one virtual sequence with a seed shared by every
process, and shard ``s`` of ``S`` (one per DataLoader worker per distributed rank) takes entries
``[s·T/S, (s+1)·T/S)`` of it (``shard_pieces``): each jet is seen exactly once per epoch, the
shards differ in size by at most one jet, and every shard mixes files. ``PieceReader`` reads a
piece through the transformer.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from heplearn.data.config import DataConfig
from heplearn.data.io import Source, open_source
from heplearn.data.jets import RaggedJets
from heplearn.data.preprocessing import Preprocessing
from heplearn.data.transform import ChunkTransformer
from heplearn.errors import DataError


@dataclass(frozen=True)
class Piece:
    """Entries ``[start, stop)`` of one file."""

    path: str
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def plan_pieces(files: Sequence[str | os.PathLike[str]], chunk_size: int, tree: str | None = None) -> list[Piece]:
    """Cut every file along its storage units into pieces of at most ``chunk_size`` entries."""
    pieces: list[Piece] = []
    for file in files:
        source = open_source(file, tree)
        if source.num_entries == 0:
            raise DataError(f"{file}: the file contains no entries")
        bounds = source.chunk_boundaries()
        for low, high in itertools.pairwise(bounds):
            for start in range(low, high, chunk_size):
                pieces.append(Piece(str(file), start, min(start + chunk_size, high)))
    return pieces


def shard_pieces(
    pieces: Sequence[Piece], shard: int, num_shards: int, *, shuffle: bool, seed: int, epoch: int
) -> list[Piece]:
    """The pieces (cut where needed) of shard ``shard`` of ``num_shards`` for this epoch."""
    order = np.random.default_rng([seed, epoch]).permutation(len(pieces)) if shuffle else range(len(pieces))
    ordered = [pieces[i] for i in order]
    total = sum(len(p) for p in ordered)
    low, high = shard * total // num_shards, (shard + 1) * total // num_shards
    selected: list[Piece] = []
    position = 0
    for piece in ordered:
        begin, end = position, position + len(piece)
        position = end
        if end <= low or begin >= high:
            continue
        selected.append(Piece(piece.path, piece.start + max(low - begin, 0), piece.stop - max(end - high, 0)))
    return selected


class PieceReader:
    """Reads pieces through the transformer, keeping each file open once per process."""

    def __init__(self, config: DataConfig, transformer: ChunkTransformer | None = None) -> None:
        self.config = config
        self.transformer = transformer or ChunkTransformer(config)
        self._sources: dict[str, tuple[Source, list[str]]] = {}

    def source(self, path: str) -> tuple[Source, list[str]]:
        """The open file at ``path`` and the fields to read from it (each file opened once)."""
        if path not in self._sources:
            source = open_source(path, self.config.treename)
            fields = self.transformer.fields_to_read(source.field_names(), path)
            self._sources[path] = (source, fields)
        return self._sources[path]

    def class_names(self, path: str) -> list[str]:
        """The class names of the file at ``path``."""
        return self.transformer.class_names(self.source(path)[0].field_names())

    def read(self, piece: Piece, preprocessing: Preprocessing | None = None) -> RaggedJets:
        """The jets of ``piece`` that pass the selection, transformed (and standardised, when given)."""
        source, fields = self.source(piece.path)
        chunk = source.read(fields, piece.start, piece.stop)
        return self.transformer.ragged(chunk, f"{piece.path} (entries {piece.start}-{piece.stop})", preprocessing)
