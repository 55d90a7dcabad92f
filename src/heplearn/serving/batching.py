"""Dynamic batching: concurrent requests to one model are joined into one onnxruntime call.

The first waiting request opens a batch; requests arriving within ``max_queue_delay`` join it
while it holds fewer than ``max_batch_size`` jets (Triton's ``dynamic_batching``). Only requests
whose tensors agree in every axis but the batch axis are joined. While one batch runs (in a
worker thread, so the event loop keeps accepting requests), the next one gathers: under load,
batches grow to what arrives during one model call, which is where the throughput comes from.
A request larger than ``max_batch_size`` runs on its own. The HTTP and gRPC services run in one
event loop and submit to the same batcher, so their requests join the same batches.

``close()`` stops taking new requests and returns once every accepted one is answered.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_SIZE = 256  # jets; larger batches gain little on CPU and cost latency and cache
DEFAULT_QUEUE_DELAY_MS = 1.0
Tensors = dict[str, np.ndarray]
Signature = tuple[tuple[str, str, tuple[int, ...]], ...]


@dataclass
class _Request:
    inputs: Tensors
    size: int
    signature: Signature
    future: asyncio.Future[Tensors] = field(repr=False)


@dataclass
class BatchStatistics:
    """What the dynamic batcher did: requests answered and batches run."""

    requests: int = 0
    batches: int = 0
    jets: int = 0

    @property
    def mean_batch_requests(self) -> float:
        """Requests per batch, on average."""
        return self.requests / self.batches if self.batches else 0.0


class DynamicBatcher:
    """Joins concurrent ``submit`` calls into batches for ``run`` (a blocking function)."""

    def __init__(
        self,
        run: Callable[[Tensors], Tensors],
        max_batch_size: int = 1024,
        max_queue_delay: float = 0.001,
        name: str = "model",
    ) -> None:
        if max_batch_size < 1 or max_queue_delay < 0:
            raise ValueError("max_batch_size must be >= 1 and max_queue_delay >= 0")
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_queue_delay = max_queue_delay
        self.name = name
        self.statistics = BatchStatistics()
        self._waiting: collections.deque[_Request] = collections.deque()
        self._arrived = asyncio.Event()
        self._idle = asyncio.Semaphore(1)  # one batch in the model at a time; the next one gathers meanwhile
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"heplearn-{name}")
        self._running: set[asyncio.Task[None]] = set()
        self._closing = False
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start gathering requests into batches (on the running event loop)."""
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._gather_loop())

    async def submit(self, inputs: Tensors) -> Tensors:
        """The model's outputs for ``inputs`` (all with the same batch size on axis 0)."""
        if self._closing:
            raise RuntimeError(f"model {self.name!r} is shutting down")
        self.start()
        size = len(next(iter(inputs.values())))
        signature = tuple((name, str(array.dtype), array.shape[1:]) for name, array in sorted(inputs.items()))
        request = _Request(inputs, size, signature, asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        self._arrived.set()
        return await request.future

    async def close(self) -> None:
        """Answer every accepted request, then stop."""
        self._closing = True
        self._arrived.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._running:
            await asyncio.gather(*self._running)
        self._executor.shutdown(wait=True)

    # ----------------------------------------------------------------------- internals
    async def _gather_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._waiting:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            batch = [self._waiting.popleft()]
            deadline = loop.time() + self.max_queue_delay
            fits = self._take_waiting(batch)
            while fits and self._size(batch) < self.max_batch_size and not self._closing:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
                fits = self._take_waiting(batch)  # False: what arrived cannot join this batch
            await self._idle.acquire()
            self._take_waiting(batch)  # whatever arrived while the previous batch ran
            task = loop.create_task(self._run_batch(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _take_waiting(self, batch: list[_Request]) -> bool:
        """Move waiting requests that fit into ``batch``; False if the next one does not fit."""
        size = self._size(batch)
        while self._waiting:
            candidate = self._waiting[0]
            if candidate.signature != batch[0].signature or size + candidate.size > self.max_batch_size:
                return False
            batch.append(self._waiting.popleft())
            size += candidate.size
        return True

    @staticmethod
    def _size(batch: list[_Request]) -> int:
        return sum(request.size for request in batch)

    async def _run_batch(self, batch: list[_Request]) -> None:
        try:
            live = [request for request in batch if not request.future.cancelled()]
            if not live:
                return
            names = list(live[0].inputs)
            joined = (
                live[0].inputs
                if len(live) == 1
                else {name: np.concatenate([request.inputs[name] for request in live]) for name in names}
            )
            try:
                outputs = await asyncio.get_running_loop().run_in_executor(self._executor, self.run, joined)
            except Exception as error:  # the model failed: every request of the batch learns why
                log.exception("model %s failed on a batch of %d requests", self.name, len(live))
                for request in live:
                    if not request.future.done():
                        request.future.set_exception(error)
                return
            self.statistics.batches += 1
            self.statistics.requests += len(live)
            self.statistics.jets += self._size(live)
            start = 0
            for request in live:
                stop = start + request.size
                if not request.future.done():
                    request.future.set_result({name: values[start:stop] for name, values in outputs.items()})
                start = stop
        finally:
            self._idle.release()
