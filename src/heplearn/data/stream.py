"""Jets streamed from files larger than memory, shuffled through a buffer (``JetStream``).

``JetStream`` reads the files in pieces (``heplearn.data.pieces``): its shard of the epoch's
shuffled pieces, so that each jet is seen exactly once per epoch whatever the number of DataLoader
workers and distributed ranks. Inside a shard a buffer of jets is shuffled before batches are cut:
``buffer_size`` jets in all, so each of ``W`` DataLoader workers holds ``buffer_size / W`` (the main
process receives their blocks interleaved, and the shuffle buffers do not grow with the number of
workers; each worker also holds up to one piece's worth of padded batches it prepared ahead, see
``StreamLoader``). The buffer keeps the jets unpadded (``RaggedJets``) and pads only the batches
it cuts. Fewer than a batch of jets left over by one buffer open the next one's first batch.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from heplearn.data.batches import Batch, to_batch
from heplearn.data.config import DataConfig
from heplearn.data.handover import Handover, SharedBlock
from heplearn.data.jets import RaggedJets
from heplearn.data.pieces import Piece, PieceReader, plan_pieces, shard_pieces
from heplearn.data.preprocessing import Preprocessing

# What a JetStream yields: batches in this process; in a StreamLoader worker, blocks of batches
# in shared memory (or a list of batches when no shared buffer is free), which the loader unpacks.
Delivery = Batch | SharedBlock | list[Batch]


class JetStream(IterableDataset[Delivery]):
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

    def __iter__(self) -> Iterator[Delivery]:
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

    def _cut(self, pool: RaggedJets, order: np.ndarray) -> Iterator[Delivery]:
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
