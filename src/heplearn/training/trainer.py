"""The training loop for every torch model: one loop, resumable, ready for DDP.

``Trainer.fit`` runs epochs over a ``BatchSource``; after every epoch it evaluates the validation
split (loss, accuracy, AUC or regression error), appends a line to ``metrics.jsonl`` and the
TensorBoard log, keeps the best weights, and stops early when the validation loss has not improved
for ``early_stopping_patience`` epochs. Checkpoints (see ``checkpoint.py``) are written every
``checkpoint_every`` steps and at each epoch's end; ``resume=True`` continues from the last one,
skipping the batches of the interrupted epoch that were already used, so that a resumed run in
deterministic mode ends with the same weights as an uninterrupted one.

Under ``torchrun`` (several processes), the model is wrapped in DistributedDataParallel, each rank
reads its own shard of the data, and rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from heplearn.data.dataset import Batch, trim_padding
from heplearn.training import checkpoint as ckpt
from heplearn.training.config import TrainingConfig
from heplearn.training.losses import LossFunction
from heplearn.training.optim import make_optimizer, make_scheduler

log = logging.getLogger(__name__)


class BatchSource(Protocol):
    def epoch_batches(self, epoch: int) -> Iterator[Batch]: ...

    def batches_per_epoch(self) -> int: ...


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
        return self.dataset.batches(self.batch_size, shuffle=self.shuffle, seed=self.seed, epoch=epoch,
                                    rank=self.rank, world_size=self.world_size)

    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.dataset) // self.world_size / self.batch_size)


@dataclass
class StreamSource:
    loader: Any  # a StreamLoader
    estimated_batches: int

    def epoch_batches(self, epoch: int) -> Iterator[Batch]:
        self.loader.set_epoch(epoch)
        return iter(self.loader)

    def batches_per_epoch(self) -> int:
        return self.estimated_batches


@dataclass
class Task:
    kind: str  # "classification" or "regression"
    num_outputs: int
    loss: LossFunction
    signal_index: int = 0


def distributed() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Trainer:
    def __init__(self, model: torch.nn.Module, config: TrainingConfig, task: Task, run_dir: Path | None,
                 progress: bool = True, on_batch: Callable[[Batch], None] | None = None) -> None:
        self.model = model
        self.config = config
        self.task = task
        self.run_dir = run_dir
        self.rank, self.world_size = distributed()
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main
        self.on_batch = on_batch
        self.network: torch.nn.Module = model
        if self.world_size > 1:
            self.network = torch.nn.parallel.DistributedDataParallel(model)
        if config.compile:
            self.network = torch.compile(self.network)  # type: ignore[assignment]
        self.history: list[dict[str, Any]] = []

    # -- the loop
    def fit(self, train: BatchSource, val: BatchSource | None, resume: bool = False) -> ckpt.TrainingState:
        config = self.config
        steps_per_epoch = min(train.batches_per_epoch(), config.max_steps_per_epoch or 10**12)
        optimizer = make_optimizer(self.model.parameters(), config)
        scheduler = make_scheduler(optimizer, config, max(1, steps_per_epoch * config.epochs))
        state = ckpt.TrainingState()
        checkpoints = self.run_dir / "checkpoints" if self.run_dir else None
        if resume and checkpoints and (last := ckpt.latest_checkpoint(checkpoints)):
            state = ckpt.load_checkpoint(last, self.model, optimizer, scheduler)
            log.info("resuming from %s (epoch %d, batch %d, step %d)", last.name, state.epoch, state.batch,
                     state.step)
        writer = self._tensorboard()
        while state.epoch < config.epochs and not state.finished:
            self.model.train()
            batches = train.epoch_batches(state.epoch)
            batches = itertools.islice(batches, state.batch, steps_per_epoch)  # skip what a resume already did
            bar = tqdm(total=steps_per_epoch, initial=state.batch, desc=f"epoch {state.epoch + 1}/{config.epochs}",
                       disable=not self.progress, unit="batch", dynamic_ncols=True, leave=False)
            started, jets, loss_sum, loss_count = time.perf_counter(), 0, 0.0, 0
            with self._join():
                for batch in batches:
                    loss = self._step(batch, optimizer, scheduler)
                    state.batch += 1
                    state.step += 1
                    jets += len(batch["label"])
                    loss_sum, loss_count = loss_sum + loss, loss_count + 1
                    bar.update()
                    bar.set_postfix(loss=f"{loss:.4f}", jets_s=f"{jets / (time.perf_counter() - started):.0f}")
                    if writer:
                        writer.add_scalar("train/loss_step", loss, state.step)
                    if config.checkpoint_every and state.step % config.checkpoint_every == 0 and self.is_main:
                        ckpt.save_checkpoint(checkpoints, self.model, optimizer, scheduler, state)  # type: ignore[arg-type]
            bar.close()
            seconds = time.perf_counter() - started
            record = {"epoch": state.epoch + 1, "step": state.step,
                      "train_loss": loss_sum / max(loss_count, 1), "jets_per_second": jets / max(seconds, 1e-9),
                      "learning_rate": scheduler.get_last_lr()[0]}
            if val is not None:
                record.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
            state = self._end_epoch(state, record)
            if self.is_main and checkpoints:
                ckpt.save_checkpoint(checkpoints, self.model, optimizer, scheduler, state)
            self._log(record, writer)
        if writer:
            writer.close()
        return state

    def _step(self, batch: Batch, optimizer: torch.optim.Optimizer, scheduler: Any) -> float:
        if self.on_batch:
            self.on_batch(batch)
        batch = trim_padding(batch)
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if self.config.mixed_precision
                    else contextlib.nullcontext())
        with autocast:
            output = self.network(batch)
        loss = self.task.loss(output, batch["label"], batch["weight"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.gradient_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.gradient_clip)
        optimizer.step()
        scheduler.step()
        return float(loss.detach())

    def _end_epoch(self, state: ckpt.TrainingState, record: dict[str, Any]) -> ckpt.TrainingState:
        monitored = record.get("val_loss", record["train_loss"])
        if monitored < state.best_val_loss:
            state.best_val_loss, state.best_epoch, state.epochs_without_improvement = monitored, state.epoch, 0
            if self.is_main and self.run_dir:
                ckpt.save_best(self.run_dir / "checkpoints", self.model)
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
    def predict(self, source: BatchSource) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw outputs, labels and weights over one pass of ``source``."""
        was_training = self.model.training
        self.model.eval()
        outputs, labels, weights = [], [], []
        for batch in source.epoch_batches(0):
            outputs.append(self.model(trim_padding(batch)).float().numpy())
            labels.append(batch["label"].numpy())
            weights.append(batch["weight"].numpy())
        self.model.train(was_training)
        return np.concatenate(outputs), np.concatenate(labels), np.concatenate(weights)

    def evaluate(self, source: BatchSource) -> dict[str, float]:
        outputs, labels, weights = self.predict(source)
        loss = float(self.task.loss(torch.from_numpy(outputs), torch.from_numpy(labels), torch.from_numpy(weights)))
        if self.task.kind == "regression":
            return {"loss": loss}
        return {"loss": loss, **classification_metrics(outputs, labels, weights, self.task.signal_index)}

    # -- bookkeeping
    def _log(self, record: dict[str, Any], writer: Any) -> None:
        self.history.append(record)
        log.info("epoch %d: %s", record["epoch"],
                 ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in {"epoch", "step"}))
        if not (self.is_main and self.run_dir):
            return
        with (self.run_dir / "metrics.jsonl").open("a") as stream:
            stream.write(json.dumps(record) + "\n")
        if writer:
            for key, value in record.items():
                if key not in {"epoch", "step"}:
                    writer.add_scalar(key.replace("_", "/", 1), value, record["epoch"])

    def _tensorboard(self) -> Any:
        if not (self.is_main and self.run_dir):
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def _join(self) -> contextlib.AbstractContextManager[Any]:
        """Under DDP, let ranks with fewer batches (streamed data) finish without hanging the others."""
        if self.world_size > 1:
            from torch.distributed.algorithms.join import Join

            return Join([self.network])  # type: ignore[list-item]
        return contextlib.nullcontext()


def softmax(outputs: np.ndarray) -> np.ndarray:
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def classification_metrics(outputs: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                           signal_index: int = 0) -> dict[str, float]:
    """Accuracy and AUC (signal class vs the rest; macro one-vs-rest AUC too for multiclass)."""
    probabilities = softmax(outputs)
    accuracy = float(np.average(probabilities.argmax(axis=1) == labels, weights=weights))
    metrics = {"accuracy": accuracy}
    is_signal = labels == signal_index
    if 0 < is_signal.sum() < len(labels):
        metrics["auc"] = float(roc_auc_score(is_signal, probabilities[:, signal_index], sample_weight=weights))
    present = np.unique(labels)
    if probabilities.shape[1] > 2 and len(present) == probabilities.shape[1]:
        metrics["auc_macro_ovr"] = float(roc_auc_score(labels, probabilities, multi_class="ovr",
                                                       sample_weight=weights))
    return metrics
