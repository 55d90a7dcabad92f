"""The training loop for every torch model: one loop, resumable, ready for DDP.

``fit(model, task, train, val, config)`` is the one in-memory entry point: ``heplearn.train``,
``heplearn.Classifier.fit`` and the iterative methods (OmniFold, k-fold reweighting) all call it.
What one step does belongs to the step strategy (``steps.py``: one network by default, or a
network and an adversary); what is predicted and how it is scored belongs to the task
(``heplearn.tasks``: outputs, named loss terms, metrics). The trainer never branches on either.

``Trainer.fit`` runs epochs over a ``BatchSource``; after every epoch it evaluates the validation
split (the loss and each of its terms, and the task's metrics: accuracy and AUC for classifiers),
appends a line to ``metrics.jsonl`` and the
TensorBoard log, keeps the best weights, and stops early when the validation loss has not improved
for ``early_stopping_patience`` epochs, then hands the epoch's record to ``on_epoch`` (a callback
that may raise to stop the training: hyper-parameter search prunes poor trials this way, see
``heplearn.training.tune``). Checkpoints (see ``checkpoint.py``) are written every
``checkpoint_every`` steps and at each epoch's end; ``resume=True`` continues from the last one,
skipping the batches of the interrupted epoch that were already used, so that a resumed run in
deterministic mode ends with the same weights as an uninterrupted one.

Under ``torchrun`` (several processes), the model is wrapped in DistributedDataParallel, each rank
reads its own shard of the data, and rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist

from heplearn.data.batches import Batch, trim_padding
from heplearn.optional import BrokenPackageError, MissingExtraError, optional_import
from heplearn.progress import progress_bar
from heplearn.run_config import StepConfig, TrainingConfig
from heplearn.runs import RunDirectory
from heplearn.tasks import Task
from heplearn.training import checkpoint as ckpt
from heplearn.training.steps import StepContext, StepStrategy, build_step

log = logging.getLogger(__name__)


class BatchSource(Protocol):
    """Where the trainer's batches come from: in memory or streamed."""

    def epoch_batches(self, epoch: int) -> Iterator[Batch]:
        """The batches of ``epoch`` (shuffled with the epoch as part of the seed)."""

    def batches_per_epoch(self) -> int:
        """How many batches an epoch holds (an estimate when streaming)."""


@dataclass
class InMemorySource:
    """Batches of an ``InMemoryJets``; every rank gets the same number of batches."""

    dataset: Any
    batch_size: int
    shuffle: bool
    seed: int
    rank: int = 0
    world_size: int = 1

    def epoch_batches(self, epoch: int) -> Iterator[Batch]:
        """The batches of ``epoch`` of this rank's share of the jets."""
        return self.dataset.batches(
            self.batch_size,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=epoch,
            rank=self.rank,
            world_size=self.world_size,
        )

    def batches_per_epoch(self) -> int:
        """Batches per epoch of one rank."""
        return math.ceil(len(self.dataset) // self.world_size / self.batch_size)


@dataclass
class StreamSource:
    """Batches of a ``StreamLoader`` over files larger than memory."""

    loader: Any  # a StreamLoader
    estimated_batches: int

    def epoch_batches(self, epoch: int) -> Iterator[Batch]:
        """The streamed batches of ``epoch``."""
        self.loader.set_epoch(epoch)
        return iter(self.loader)

    def batches_per_epoch(self) -> int:
        """The estimated batches per epoch (from the files' entries)."""
        return self.estimated_batches


def distributed() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass
class Predictions:
    """Raw outputs over one pass of a source, with every column of its batches that is not an input:
    ``label``, ``weight`` and the observers (``observer:<name>``)."""

    outputs: np.ndarray
    columns: dict[str, np.ndarray]

    def batch(self) -> dict[str, torch.Tensor]:
        """The columns as tensors: a batch the task's loss terms can read."""
        return {key: torch.from_numpy(values) for key, values in self.columns.items()}


class Trainer:
    """Runs a step strategy over a ``BatchSource`` for ``config.epochs`` epochs (see the module doc)."""

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainingConfig,
        task: Task,
        run_dir: Path | None,
        progress: bool = True,
        on_batch: Callable[[Batch], None] | None = None,
        step: StepConfig | None = None,
        data: Any = None,
        preprocessing: Any = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.task = task
        self.run_dir = run_dir
        self.step_config = step or config.step
        self.rank, self.world_size = distributed()
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main
        self.on_batch = on_batch
        self.on_epoch = on_epoch  # called with each epoch's record once it is logged and checkpointed
        self.history: list[dict[str, Any]] = []
        self._wrapped: list[torch.nn.Module] = []
        self.strategy: StepStrategy | None = None
        self.data, self.preprocessing = data, preprocessing

    def _wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """A module as the loop runs it: in DistributedDataParallel under torchrun, compiled if asked."""
        network = module
        if self.world_size > 1:
            network = torch.nn.parallel.DistributedDataParallel(module)
            self._wrapped.append(network)
        if self.config.compile:
            network = torch.compile(network)  # type: ignore[assignment]
        return network

    # -- the loop
    def fit(self, train: BatchSource, val: BatchSource | None, resume: bool = False) -> ckpt.TrainingState:
        """Train until ``config.epochs`` or early stopping (from the last checkpoint if ``resume``); the end state."""
        config = self.config
        steps_per_epoch = min(train.batches_per_epoch(), config.max_steps_per_epoch or 10**12)
        strategy = build_step(
            StepContext(
                self.model,
                self.task,
                config,
                max(1, steps_per_epoch * config.epochs),
                self._wrap,
                self.data,
                self.preprocessing,
            ),
            self.step_config,
        )
        self.strategy = strategy
        state = ckpt.TrainingState()
        checkpoints = RunDirectory(self.run_dir).checkpoints if self.run_dir else None
        if resume and checkpoints and (last := ckpt.latest_checkpoint(checkpoints)):
            state = ckpt.load_checkpoint(last, strategy)
            log.info("resuming from %s (epoch %d, batch %d, step %d)", last.name, state.epoch, state.batch, state.step)
        writer = self._tensorboard()
        while state.epoch < config.epochs and not state.finished:
            strategy.train()
            batches = train.epoch_batches(state.epoch)
            batches = itertools.islice(batches, state.batch, steps_per_epoch)  # skip what a resume already did
            bar = progress_bar(
                total=steps_per_epoch,
                initial=state.batch,
                desc=f"epoch {state.epoch + 1}/{config.epochs}",
                disable=not self.progress,
                unit="batch",
                dynamic_ncols=True,
                leave=False,
                log_summary=False,
            )  # the epoch's log line (``_log``) says it all
            sums: defaultdict[str, float]
            started, jets, sums, count = time.perf_counter(), 0, defaultdict(float), 0
            with self._join():
                for batch in batches:
                    if self.on_batch:
                        self.on_batch(batch)
                    figures = strategy.step(trim_padding(batch), state.step)
                    state.batch += 1
                    state.step += 1
                    jets += len(batch["weight"])
                    count += 1
                    for key, value in figures.items():
                        sums[key] += value
                    bar.update()
                    bar.set_postfix(
                        loss=f"{figures['loss']:.4f}", jets_s=f"{jets / (time.perf_counter() - started):.0f}"
                    )
                    if writer:
                        writer.add_scalar("train/loss_step", figures["loss"], state.step)
                    if config.checkpoint_every and state.step % config.checkpoint_every == 0 and self.is_main:
                        ckpt.save_checkpoint(checkpoints, strategy, state)  # type: ignore[arg-type]
            bar.close()
            seconds = time.perf_counter() - started
            record: dict[str, Any] = {"epoch": state.epoch + 1, "step": state.step}
            record.update({f"train_{key}": value / max(count, 1) for key, value in sums.items()} or {"train_loss": 0.0})
            record.update({"jets_per_second": jets / max(seconds, 1e-9), "learning_rate": strategy.learning_rate})
            if val is not None:
                record.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
            state = self._end_epoch(state, record)
            if self.is_main and checkpoints:
                ckpt.save_checkpoint(checkpoints, strategy, state)
            self._log(record, writer)
            if self.on_epoch:
                self.on_epoch(record)
        if writer:
            writer.close()
        return state

    def _end_epoch(self, state: ckpt.TrainingState, record: dict[str, Any]) -> ckpt.TrainingState:
        monitored = record.get("val_loss", record["train_loss"])
        if monitored < state.best_val_loss:
            state.best_val_loss, state.best_epoch, state.epochs_without_improvement = monitored, state.epoch, 0
            if self.is_main and self.run_dir:
                assert self.strategy is not None
                ckpt.save_best(RunDirectory(self.run_dir).checkpoints, self.strategy.product_modules())
        else:
            state.epochs_without_improvement += 1
            patience = self.config.early_stopping_patience
            if patience and state.epochs_without_improvement >= patience:
                log.info("early stopping after epoch %d: no improvement for %d epochs", state.epoch + 1, patience)
                state.finished = True
        state.epoch += 1
        state.batch = 0
        return state

    # -- evaluation
    @torch.inference_mode()
    def predict(self, source: BatchSource) -> Predictions:
        """Raw outputs over one pass of ``source``, with the batches' labels, weights and observers."""
        was_training = self.model.training
        self.model.eval()
        outputs: list[np.ndarray] = []
        columns: dict[str, list[np.ndarray]] = defaultdict(list)
        for batch in source.epoch_batches(0):
            outputs.append(self.model(trim_padding(batch)).float().numpy())
            for key in [*non_input_keys(batch), *self.task.target_keys]:
                columns[key].append(batch[key].numpy())
        self.model.train(was_training)
        return Predictions(np.concatenate(outputs), {key: np.concatenate(parts) for key, parts in columns.items()})

    def evaluate(self, source: BatchSource) -> dict[str, float]:
        """The loss (and each of its terms) and the task's metrics over one pass of ``source``."""
        predictions = self.predict(source)
        outputs, batch = torch.from_numpy(predictions.outputs), predictions.batch()
        terms = self.task.loss(outputs, batch)
        metrics = {"loss": float(self.task.total_loss(terms))}
        if len(terms) > 1:
            metrics.update({f"loss_{name}": float(value) for name, value in terms.items()})
        if self.strategy is not None:  # e.g. the adversary's value function instead of the task's loss
            metrics = self.strategy.validation_figures(outputs, batch, metrics)
        return {**metrics, **self.task.metrics(predictions.outputs, predictions.columns)}

    # -- bookkeeping
    def _log(self, record: dict[str, Any], writer: Any) -> None:
        self.history.append(record)
        log.info(
            "epoch %d: %s",
            record["epoch"],
            ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in {"epoch", "step"}),
        )
        if not (self.is_main and self.run_dir):
            return
        RunDirectory(self.run_dir).append_history(record)
        if writer:
            for key, value in record.items():
                if key not in {"epoch", "step"}:
                    writer.add_scalar(key.replace("_", "/", 1), value, record["epoch"])

    def _tensorboard(self) -> Any:
        if not (self.is_main and self.run_dir):
            return None
        return tensorboard_writer(RunDirectory(self.run_dir).tensorboard)

    def _join(self) -> contextlib.AbstractContextManager[Any]:
        """Under DDP, let ranks with fewer batches (streamed data) finish without hanging the others."""
        if self._wrapped:
            from torch.distributed.algorithms.join import Join

            return Join(self._wrapped)  # type: ignore[arg-type]
        return contextlib.nullcontext()


def tensorboard_writer(directory: Path) -> Any:
    """A TensorBoard ``SummaryWriter`` into ``directory``; None without the ``tensorboard`` extra.

    TensorBoard only shows what ``metrics.jsonl`` holds anyway, and nobody asks for it by a setting,
    so training goes on without it: a missing package is said once per process (INFO, with its
    ``pip install``), a package that is installed but fails to import once as a WARNING quoting why.
    """
    try:
        module = optional_import("torch.utils.tensorboard", "writing TensorBoard event files", extra="tensorboard")
    except MissingExtraError as error:
        _log_once(logging.INFO, f"TensorBoard logging is off ({error}); metrics.jsonl has every epoch")
        return None
    except BrokenPackageError as error:
        _log_once(logging.WARNING, f"TensorBoard logging is off: {error}")
        return None
    return module.SummaryWriter(str(directory))


@functools.cache
def _log_once(level: int, message: str) -> None:
    log.log(level, message)


def non_input_keys(batch: Batch) -> list[str]:
    """The keys of a batch that no model reads: ``label``, ``weight`` and the observers."""
    from heplearn.data.jets import OBSERVER_PREFIX

    return [key for key in batch if key in {"label", "weight"} or key.startswith(OBSERVER_PREFIX)]


@dataclass
class FitResult:
    """The trained network (last weights), the per-epoch records and the final loop state."""

    model: torch.nn.Module
    history: list[dict[str, Any]]
    state: ckpt.TrainingState
    trainer: Trainer


def fit(
    model: torch.nn.Module,
    task: Task,
    train: BatchSource,
    val: BatchSource | None,
    config: TrainingConfig,
    *,
    run_dir: Path | None = None,
    progress: bool = False,
    on_batch: Callable[[Batch], None] | None = None,
    resume: bool = False,
    data: Any = None,
    preprocessing: Any = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` for ``task`` on ``train`` (validating on ``val``) as ``config`` says.

    The one in-memory entry point: ``heplearn.train`` and ``Classifier.fit`` call it, and so do
    methods that train many times (OmniFold calls it twice per iteration with new per-event
    weights). With ``run_dir``, checkpoints, ``metrics.jsonl`` and TensorBoard logs go there.
    ``data`` and ``preprocessing`` (the data config and standardisation of the batches) are handed
    to the step strategy, for strategies that read a sample of their own (domain adaptation).
    ``on_epoch`` is called with each epoch's record (``metrics.jsonl``'s line) after it is written.
    The process keeps the memory it frees (``heplearn.memory``): each batch reuses the pages of the
    last one instead of faulting them in again (1.2× fewer CPU-seconds for a flow-matching epoch).
    """
    from heplearn.memory import retain_freed_memory

    retain_freed_memory()
    trainer = Trainer(
        model, config, task, run_dir, progress, on_batch, data=data, preprocessing=preprocessing, on_epoch=on_epoch
    )
    state = trainer.fit(train, val, resume=resume)
    log.info("finished after %d epochs; best epoch %d", state.epoch, state.best_epoch + 1)
    return FitResult(model, trainer.history, state, trainer)
