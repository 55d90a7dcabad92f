"""Which engine runs a model fastest on this machine, measured at export and used by predict and serve.

Whether onnxruntime beats eager PyTorch depends on the machine, not only on the model: the same
exported ParT ran 1.75× faster than eager at batch 1 but 0.64× at batch 256 on a 2-core Xeon with
AVX-512 and AMX (issue 23), where the README's machine had it faster at every size. So
``heplearn export`` times both engines, as heplearn runs them, on the run's own jets at
``ENGINE_BATCH_SIZES`` and records the faster engine per batch-size range in the model's metadata
(``heplearn.engine_choice`` in ``model.onnx``, with the machine it was measured on).
``predict`` and ``serve`` then run the recorded faster engine unless told otherwise
(``--engine onnx|torch``) and log which one and why; a model exported before this has no record
and runs in onnxruntime, with a log line saying so.

The two sides are the engines as they run: onnxruntime through ``run_by_multiplicity`` (calls of
``JETS_PER_CALL`` jets of similar multiplicity, each cut to its longest jet), PyTorch on the whole
batch in eager mode under ``torch.inference_mode`` (ParT groups its jets by length itself), both on
the raw inputs with the run's standardisation (``DeployableModel``, the module that was exported).
The timings interleave the engines and keep the best of ``repeats`` rounds.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heplearn.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ONNX, TORCH, AUTO = "onnx", "torch", "auto"
ENGINES = (ONNX, TORCH)
REQUESTS = (AUTO, ONNX, TORCH)
#: A single request; one engine call (``JETS_PER_CALL``); the server's largest dynamic batch
#: (``DEFAULT_MAX_BATCH_SIZE``) and what prediction over files runs per chunk.
ENGINE_BATCH_SIZES = (1, 32, 256)
TIMING_SECONDS = 0.1  # per engine, batch size and round (at least 2 calls): ~2 s per export of a small model
TIMING_ROUNDS = 3
METADATA_KEY = "engine_choice"

Run = Callable[[], object]
#: ``timer(run, jets, seconds)`` → jets per second; replaced by a fake one in the tests.
Timer = Callable[[Run, int, float], float]


@dataclass(frozen=True)
class EngineTiming:
    """Jets per second of both engines on batches of ``batch_size`` jets."""

    batch_size: int
    onnx_jets_per_second: float
    torch_jets_per_second: float

    @property
    def faster(self) -> str:
        """The faster engine (onnxruntime on a tie: it needs no PyTorch)."""
        return ONNX if self.onnx_jets_per_second >= self.torch_jets_per_second else TORCH

    @property
    def ratio(self) -> float:
        """onnxruntime's speed over PyTorch's."""
        return self.onnx_jets_per_second / self.torch_jets_per_second if self.torch_jets_per_second else np.inf


@dataclass(frozen=True)
class EngineChoice:
    """The engine timings of one model on one machine, and the faster engine per batch-size range.

    A batch of ``n`` jets takes the timing of the smallest measured batch size ≥ ``n`` (the largest
    one beyond them): with sizes 1, 32, 256 the ranges are 1, 2-32 and 33 and more.
    """

    timings: tuple[EngineTiming, ...]
    machine: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.timings:
            raise ValueError("an engine choice needs at least one timing")
        object.__setattr__(self, "timings", tuple(sorted(self.timings, key=lambda timing: timing.batch_size)))

    def timing_for(self, batch_size: int) -> EngineTiming:
        """The timing that stands for batches of ``batch_size`` jets."""
        return next((timing for timing in self.timings if timing.batch_size >= batch_size), self.timings[-1])

    def engine_for(self, batch_size: int) -> str:
        """The faster engine for batches of ``batch_size`` jets."""
        return self.timing_for(batch_size).faster

    def ranges(self) -> list[tuple[int, int | None, str]]:
        """``(first, last, engine)`` per measured batch size; ``last`` None: and every larger batch."""
        ranges: list[tuple[int, int | None, str]] = []
        first = 1
        for index, timing in enumerate(self.timings):
            last = None if index == len(self.timings) - 1 else timing.batch_size
            ranges.append((first, last, timing.faster))
            first = timing.batch_size + 1
        return ranges

    def describe(self) -> str:
        """One line: the faster engine per range and the speed ratios."""
        parts = []
        for (first, last, engine), timing in zip(self.ranges(), self.timings, strict=True):
            span = f"{first}" if first == last else f"{first}-{last}" if last is not None else f"{first}+"
            parts.append(f"{span} jets: {engine} (onnx/torch {timing.ratio:.2f} at {timing.batch_size})")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The record stored in the model's metadata."""
        return {
            "timings": [
                {
                    "batch_size": timing.batch_size,
                    "onnx_jets_per_second": timing.onnx_jets_per_second,
                    "torch_jets_per_second": timing.torch_jets_per_second,
                    "faster": timing.faster,
                }
                for timing in self.timings
            ],
            "ranges": [{"first": first, "last": last, "engine": engine} for first, last, engine in self.ranges()],
            "machine": self.machine,
        }

    @classmethod
    def from_json(cls, content: Any, where: str = "the model's metadata") -> EngineChoice:
        """The choice recorded by ``to_json``; a ``DataError`` naming ``where`` if it is malformed."""
        try:
            timings = tuple(
                EngineTiming(
                    int(entry["batch_size"]),
                    float(entry["onnx_jets_per_second"]),
                    float(entry["torch_jets_per_second"]),
                )
                for entry in content["timings"]
            )
            return cls(timings, dict(content.get("machine", {})))
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(
                f"{where}: the recorded engine choice is malformed ({error!r}); export the run again"
            ) from None


def jets_per_second(run: Run, jets: int, seconds: float, min_calls: int = 2, warm_up: bool = True) -> float:
    """Jets per second of ``run`` (which handles ``jets`` jets per call), after one warm-up call
    (unless not ``warm_up``), timed over at least ``seconds`` and ``min_calls`` calls."""
    if warm_up:
        run()
    calls, started = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - started < seconds:
        run()
        calls += 1
    return calls * jets / (time.perf_counter() - started)


def measure_engines(
    onnx: Callable[[dict[str, np.ndarray]], object],
    torch: Callable[[dict[str, np.ndarray]], object],
    feed: dict[str, np.ndarray],
    batch_sizes: Sequence[int] = ENGINE_BATCH_SIZES,
    *,
    seconds: float = TIMING_SECONDS,
    rounds: int = TIMING_ROUNDS,
    timer: Timer = jets_per_second,
    machine: dict[str, Any] | None = None,
) -> EngineChoice:
    """Time ``onnx(feed)`` and ``torch(feed)`` (each an engine on a whole batch) on the first
    ``batch_size`` jets of ``feed`` (repeated if it has fewer), interleaved, best of ``rounds``."""
    available = len(next(iter(feed.values())))
    if available == 0:
        raise DataError("no jets to time the engines on")
    timings = []
    for batch_size in batch_sizes:
        rows = np.arange(batch_size) % available
        batch = {name: values[rows] for name, values in feed.items()}
        best = {ONNX: 0.0, TORCH: 0.0}
        for _ in range(rounds):
            for engine, run in ((ONNX, onnx), (TORCH, torch)):
                best[engine] = max(best[engine], timer(functools.partial(run, batch), batch_size, seconds))
        timings.append(EngineTiming(batch_size, best[ONNX], best[TORCH]))
        log.info(
            "engines at %d jets: onnxruntime %.0f jets/s, PyTorch %.0f jets/s", batch_size, best[ONNX], best[TORCH]
        )
    return EngineChoice(tuple(timings), machine or {})


def resolve_engine(
    requested: str,
    choice: EngineChoice | None,
    batch_size: int,
    *,
    torch_available: bool = True,
    onnx_available: bool = True,
    what: str = "model",
) -> tuple[str, str]:
    """The engine to run batches of ``batch_size`` jets of ``what`` on, and why (for the log).

    ``requested``: ``auto`` (the recorded faster one), ``onnx`` or ``torch`` (as asked). ``auto``
    never falls back silently: without a record it takes onnxruntime and says that nothing was
    measured; when the faster engine cannot run here (no weights beside a served ONNX file, no
    ONNX file beside a run), it takes the other and says which one would be faster.
    """
    if requested not in REQUESTS:
        raise ConfigError(f"engine {requested!r}: choose one of {', '.join(REQUESTS)}")
    if not (torch_available or onnx_available):
        raise DataError(f"{what}: neither an ONNX file nor PyTorch weights to run")
    if requested != AUTO:
        if requested == ONNX and not onnx_available:
            raise DataError(f"{what}: no ONNX file; export the run first, or use the torch engine")
        if requested == TORCH and not torch_available:
            raise DataError(f"{what}: no PyTorch weights beside the ONNX file; serve the run directory, or use onnx")
        return requested, f"{requested} as asked (--engine {requested})"
    if not onnx_available:
        return TORCH, "torch: the run has no ONNX file (export it to measure both engines)"
    if choice is None:
        return ONNX, "onnx: no engine timing recorded for this model (export it again to measure both engines)"
    timing = choice.timing_for(batch_size)
    reason = (
        f"at {timing.batch_size} jets onnxruntime ran {timing.onnx_jets_per_second:.0f} jets/s and PyTorch "
        f"{timing.torch_jets_per_second:.0f} jets/s at export, on {choice.machine.get('cpu_model', 'a machine')}"
    )
    if timing.faster == TORCH and not torch_available:
        return ONNX, f"onnx, although torch was faster ({reason}): no PyTorch weights here"
    return timing.faster, f"{timing.faster}, the faster engine for {batch_size} jets ({reason})"
