"""Padded batches from DataLoader workers to the main process through reused shared memory."""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from multiprocessing.context import BaseContext

import numpy as np
import torch

from heplearn.data.batches import Batch, to_batch
from heplearn.data.jets import RaggedJets

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
