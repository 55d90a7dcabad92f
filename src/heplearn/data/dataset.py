"""Datasets of jets as batches of tensors: in memory for small data, streamed for large data.

A batch is the ``dict[str, torch.Tensor]`` of DESIGN.md: one tensor per input group, ``mask``
(B, N) bool for per-particle groups, ``label`` and ``weight``, and one (B,) tensor per observer of
the data config under ``observer_key(name)`` (``observer:<name>``; ``batch_observers`` collects
them). An observer holds exactly the file's values for the jets of its batch, in the file's dtype,
for loss terms and methods; models never read it, and ``trim_padding`` leaves it as it is. Every
path delivers them alike: ``to_batch``, ``InMemoryJets.batches`` (sharded or not), ``JetStream``
and ``StreamLoader``, whose workers pad them into the shared blocks beside label and weight.

Streaming (``JetStream``) reads the files in pieces (Parquet row groups, ROOT clusters, HDF5
slices, at most ``chunk_size`` jets each). Every epoch the pieces of all files are shuffled into
one virtual sequence with a seed shared by every process, and shard ``s`` of ``S`` (one per
DataLoader worker per distributed rank) takes entries ``[s·T/S, (s+1)·T/S)`` of it: each jet is
seen exactly once per epoch, the shards differ in size by at most one jet, and every shard mixes
files. Inside a shard a buffer of jets is shuffled before batches are cut: ``buffer_size`` jets
in all, so each of ``W`` DataLoader workers holds ``buffer_size / W`` (the main process receives
their blocks interleaved, and the shuffle buffers do not grow with the number of workers; each
worker also holds up to one piece's worth of padded batches it prepared ahead, see
``StreamLoader``). Fewer than a batch of jets left over by one buffer open the next one's first batch.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import math
import multiprocessing
import os
import threading
import weakref
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing.context import BaseContext
from pathlib import Path

import numpy as np
import pyarrow
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from heplearn.data.config import VARIATION_OBSERVER, DataConfig
from heplearn.data.io import Source, open_source
from heplearn.data.jets import OBSERVER_PREFIX, JetArrays, RaggedJets, observer_key
from heplearn.data.preprocessing import Preprocessing
from heplearn.data.transform import ChunkTransformer
from heplearn.errors import DataError

log = logging.getLogger(__name__)
Batch = dict[str, torch.Tensor]


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


class JetStream(IterableDataset[Batch]):
    """Batches streamed from files larger than memory; use with ``DataLoader(batch_size=None)``."""

    def __init__(
        self,
        files: Sequence[str | os.PathLike[str]],
        config: DataConfig,
        preprocessing: Preprocessing | None,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        buffer_size: int = 50_000,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        read_threads: int = 2,
    ) -> None:
        super().__init__()
        self.config = config
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.buffer_size = max(buffer_size, batch_size)
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.read_threads = read_threads
        self.epoch = 0
        self.batches_per_transfer = 1
        self.handover: Handover | None = None  # set by StreamLoader for its workers
        self.shared_epoch: ctypes.c_longlong | None = None  # the epoch, as persistent workers see it
        self._arena: dict[str, np.ndarray] = {}  # memory for the shuffling buffer's particles
        self.pieces = plan_pieces(files, config.chunk_size, config.treename)

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_arena"] = {}  # memory, not state: never pickled to a worker
        return state

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose shuffling the next iteration uses."""
        self.epoch = epoch

    def my_pieces(self) -> list[Piece]:
        """The pieces this DataLoader worker (and DDP rank) reads this epoch, each piece read exactly once."""
        info = get_worker_info()
        if info is not None and self.shared_epoch is not None:
            self.epoch = self.shared_epoch.value
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        return shard_pieces(
            self.pieces,
            self.rank * workers + worker,
            self.world_size * workers,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=self.epoch,
        )

    def _read(self, pieces: list[Piece]) -> Iterator[RaggedJets]:
        """The pieces' jets in order; in the main process ``read_threads`` read ahead in parallel
        (numpy, awkward and pyarrow release the GIL in their kernels)."""
        threads = self.read_threads if get_worker_info() is None else 1
        if threads <= 1:
            reader = PieceReader(self.config)
            for piece in pieces:
                yield reader.read(piece, self.preprocessing)
            return
        local = threading.local()

        def read(piece: Piece) -> RaggedJets:
            if not hasattr(local, "reader"):
                local.reader = PieceReader(self.config)
            return local.reader.read(piece, self.preprocessing)

        remaining = iter(pieces)
        with ThreadPoolExecutor(threads, thread_name_prefix="heplearn-read") as executor:
            pending = deque(executor.submit(read, piece) for piece in itertools.islice(remaining, threads + 1))
            while pending:
                jets = pending.popleft().result()
                following = next(remaining, None)
                if following is not None:
                    pending.append(executor.submit(read, following))
                yield jets

    def __iter__(self) -> Iterator[Batch]:
        """Batches cut from a buffer of unpadded jets, shuffled; only the batches are padded."""
        info = get_worker_info()
        pieces = self.my_pieces()  # first: it reads the epoch
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, (info or _NoWorker).id])
        buffer_size = max(self.buffer_size // (info.num_workers if info else 1), self.batch_size)
        buffered: list[RaggedJets] = []
        carry: RaggedJets | None = None  # fewer than a batch of jets, left by the previous pool
        size = 0
        # the pools' particles, reused from pool to pool and epoch to epoch (taken, so that two
        # iterations at once never share it); nothing keeps a view of a pool once it is cut
        arena, self._arena = self._arena, {}
        for jets in self._read(pieces):
            buffered.append(jets)
            size += len(jets)
            if size >= buffer_size:
                pool = RaggedJets.concatenate(buffered, arena)  # of one piece: no copy
                order = rng.permutation(len(pool)) if self.shuffle else np.arange(len(pool))
                if carry is not None:  # it opens this pool's first batch instead of being copied into the pool
                    fill = self.batch_size - len(carry)
                    first = RaggedJets.concatenate([carry, pool.take(order[:fill])])
                    yield from self._cut(first, np.arange(len(first)))
                    order = order[fill:]
                usable = len(order) // self.batch_size * self.batch_size
                yield from self._cut(pool, order[:usable])
                carry = pool.take(order[usable:]) if usable < len(order) else None
                buffered, size = [], 0
        if carry is not None:
            buffered.insert(0, carry)
        if buffered:
            pool = RaggedJets.concatenate(buffered, arena)
            order = rng.permutation(len(pool)) if self.shuffle else np.arange(len(pool))
            if self.drop_last:
                order = order[: len(order) // self.batch_size * self.batch_size]
            yield from self._cut(pool, order)
        self._arena = arena

    def _cut(self, pool: RaggedJets, order: np.ndarray) -> Iterator[Batch | SharedBlock | list[Batch]]:
        """Batches padding ``pool`` rows in ``order``: each padded value is written once.

        Inside a ``StreamLoader`` worker, blocks of ``batches_per_transfer`` batches are padded
        into a reused shared buffer (``Handover``), which the main process hands out as views.
        """
        info = get_worker_info()
        if info is not None and self.handover is not None:
            step = self.batch_size * self.batches_per_transfer
            for start in range(0, len(order), step):
                block = order[start : start + step]
                yield self.handover.send(
                    pool, [block[i : i + self.batch_size] for i in range(0, len(block), self.batch_size)], info.id
                )
            return
        for start in range(0, len(order), self.batch_size):
            yield to_batch(pool.padded(order[start : start + self.batch_size]))


class _NoWorker:
    id = 0


HANDOVER_ALIGNMENT = 64
Layout = dict[str, tuple[str, tuple[int, ...], int]]  # array key: dtype, shape, byte offset


def _views(memory: np.ndarray, layout: Layout) -> dict[str, np.ndarray]:
    return {
        key: memory[offset : offset + math.prod(shape) * np.dtype(dtype).itemsize].view(dtype).reshape(shape)
        for key, (dtype, shape, offset) in layout.items()
    }


@dataclass
class SharedBlock:
    """Padded batches in a worker's shared buffer, as they travel to the main process."""

    worker: int
    slot: int
    # uint8 in shared memory (pickling it passes a file descriptor, not the bytes); None when the
    # main process already holds this slot's buffer: passing descriptors costs a round trip
    buffer: torch.Tensor | None
    layouts: list[Layout]  # one per batch

    def batches(self, buffer: torch.Tensor, handover: Handover) -> list[Batch]:
        """The batches, as views of ``buffer`` (this block's); it goes back to the worker when they
        are all gone."""
        memory = buffer.numpy()  # the base of every view below
        batches = [
            {key: torch.from_numpy(values) for key, values in _views(memory, layout).items()} for layout in self.layouts
        ]
        weakref.finalize(memory, handover.give_back, self.worker, self.slot)
        return batches


class Handover:
    """Batches from DataLoader workers to the main process through reused shared memory.

    Passing tensors the usual way puts every batch in fresh shared memory, and the first touch of
    each 4 kB page of it, in the worker and again in the main process, costs more than computing
    the jets. Here each worker pads blocks of batches straight into a few shared buffers that it
    reuses, and the main process hands the batches out as views of them. A shared flag per buffer
    says it is in use: the worker sets it when it fills the buffer, the main process clears it
    when the last batch of the block is garbage. Workers never wait for a buffer: with none free
    (a consumer keeping many batches) a worker makes another, up to ``buffers``, and beyond that
    sends ordinary tensors. A block's layout holds every array ``RaggedJets.padded_shapes`` lists
    (inputs, mask, label, weight and the observers), each aligned to ``HANDOVER_ALIGNMENT`` bytes.
    """

    def __init__(self, workers: int, buffers: int, context: BaseContext) -> None:
        self.buffers = buffers
        self.in_use = context.Array("b", workers * buffers)  # with a lock, which orders the accesses
        self._filled: dict[int, torch.Tensor] = {}  # this worker's buffers, by slot
        self._sent: set[int] = set()  # the slots whose buffer the main process holds
        # per slot: its buffer, the layouts last written into it and their arrays
        self._views: dict[int, tuple[torch.Tensor, list[Layout], list[dict[str, np.ndarray]]]] = {}

    def _free_slot(self, worker: int) -> int | None:
        with self.in_use.get_lock():
            flags = self.in_use.get_obj()
            for slot in range(self.buffers):
                if not flags[worker * self.buffers + slot]:
                    flags[worker * self.buffers + slot] = 1
                    return slot
        return None

    def give_back(self, worker: int, slot: int) -> None:
        """In the main process: the buffer's batches are gone."""
        with self.in_use.get_lock():
            self.in_use.get_obj()[worker * self.buffers + slot] = 0

    def send(self, pool: RaggedJets, batches: list[np.ndarray], worker: int) -> SharedBlock | list[Batch]:
        """In worker ``worker``: the jets ``batches`` (one index array per batch) of ``pool``, padded
        into a free buffer."""
        shapes = {n: pool.padded_shapes(n) for n in {len(index) for index in batches}}
        layouts, size = [], 0
        for index in batches:
            layout: Layout = {}
            for key, (shape, dtype) in shapes[len(index)].items():
                layout[key] = (dtype.str, shape, size)
                size += -(-math.prod(shape) * dtype.itemsize // HANDOVER_ALIGNMENT) * HANDOVER_ALIGNMENT
            layouts.append(layout)
        slot = self._free_slot(worker)
        if slot is None:
            return [to_batch(pool.padded(index)) for index in batches]
        buffer = self._filled.get(slot)
        if buffer is None or buffer.numel() < size:
            buffer = self._filled[slot] = torch.empty(size, dtype=torch.uint8).share_memory_()
            self._sent.discard(slot)
        cached = self._views.get(slot)  # blocks of full batches repeat the same layouts
        if cached is None or cached[0] is not buffer or cached[1] != layouts:
            memory = buffer.numpy()
            cached = self._views[slot] = (buffer, layouts, [_views(memory, layout) for layout in layouts])
        for index, views in zip(batches, cached[2], strict=True):
            pool.padded(index, out=views)
        sent = slot in self._sent
        self._sent.add(slot)
        return SharedBlock(worker, slot, None if sent else buffer, layouts)


class StreamLoader:
    """Batches of a ``JetStream`` read by ``num_workers`` DataLoader worker processes (0: in this one).

    The workers live from the first epoch to ``close()`` (or an epoch left before its end): forking
    them anew every epoch costs more than a small epoch's reading, mostly in copy-on-write page
    faults on both sides. They learn the epoch through shared memory.

    The DataLoader hands blocks over in order, worker after worker, so while one worker reads and
    transforms a piece the others can run ahead only by the blocks they may prefetch. Each may
    prefetch the blocks of one piece (at most ``max_prefetch``), so that none waits for another.
    """

    max_prefetch = 16

    def __init__(self, stream: JetStream, num_workers: int = 0, batches_per_transfer: int = 8) -> None:
        self.stream = stream
        self.num_workers = num_workers
        stream.batches_per_transfer = batches_per_transfer
        self._loader: DataLoader[Batch] | None = None
        self._handover: Handover | None = None
        self._mapped: dict[tuple[int, int], torch.Tensor] = {}  # the workers' buffers, by worker and slot

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose shuffling the next iteration uses, shared with the worker processes."""
        self.stream.set_epoch(epoch)
        if self.stream.shared_epoch is not None:
            self.stream.shared_epoch.value = epoch

    def prefetch_blocks(self) -> int:
        """Blocks each worker may prepare ahead: those of its largest piece, within [2, max_prefetch]."""
        block_jets = self.stream.batch_size * self.stream.batches_per_transfer
        piece_jets = max((len(piece) for piece in self.stream.pieces), default=0)
        return min(max(-(-piece_jets // block_jets), 2), self.max_prefetch)

    def _start(self) -> None:
        context = multiprocessing.get_context()
        prefetch = self.prefetch_blocks()
        # a buffer per block the DataLoader lets a worker prefetch, one being filled, the one being
        # handed out and one whose last batch the consumer may still hold (allocated when needed)
        self._handover = self.stream.handover = Handover(self.num_workers, prefetch + 3, context)
        self.stream.shared_epoch = context.Value("q", self.stream.epoch, lock=False)
        self._loader = DataLoader(
            self.stream,
            batch_size=None,
            num_workers=self.num_workers,
            prefetch_factor=prefetch,
            multiprocessing_context=context,
            persistent_workers=True,
            worker_init_fn=_one_thread_per_worker,
        )

    def close(self) -> None:
        """Stop the workers (they also stop with this process)."""
        self._loader = self._handover = self.stream.handover = self.stream.shared_epoch = None
        self._mapped.clear()

    def __iter__(self) -> Iterator[Batch]:
        if self.num_workers == 0:
            yield from self.stream
            return
        if self._loader is None or self._handover is None:
            self._start()
        loader, handover = self._loader, self._handover
        assert loader is not None and handover is not None
        finished = False
        try:
            for block in loader:
                if isinstance(block, SharedBlock):
                    if block.buffer is not None:
                        self._mapped[block.worker, block.slot] = block.buffer
                    yield from block.batches(self._mapped[block.worker, block.slot], handover)
                elif isinstance(block, list):
                    yield from block
                else:
                    yield block
            finished = True
        finally:
            if not finished:  # the workers are somewhere in the epoch: start afresh next time
                self.close()


def _one_thread_per_worker(worker: int) -> None:
    """Workers each decode with one thread, as torch computes in them: more would only compete."""
    pyarrow.set_cpu_count(1)


def stream_loader(stream: JetStream, num_workers: int = 0) -> StreamLoader:
    """Batches of ``stream``; each worker reads its own shard of the files."""
    return StreamLoader(stream, num_workers)
