"""The loader of a ``JetStream``: persistent DataLoader workers handing batches over in shared memory."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pyarrow
import torch
from torch.utils.data import DataLoader

from heplearn.data.batches import Batch
from heplearn.data.handover import Handover, SharedBlock
from heplearn.data.stream import Delivery, JetStream


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
        self._loader: DataLoader[Delivery] | None = None
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
            for batch in self.stream:  # no worker, no hand-over: the stream cuts plain batches
                assert isinstance(batch, dict)
                yield batch
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
