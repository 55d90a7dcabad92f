"""A training run from one config: the run directory, the data, the task, the model, the fit.

``train(config)`` works for every model name: torch networks go through ``fit`` (the trainer),
the classical classifiers (cuts, likelihood, BDT) are fitted on the per-jet input group. Either
way the run directory (``heplearn.runs``) holds everything needed to apply the model again.

The task comes from ``data.labels.type`` (``TASK_BUILDERS``): classification, reweighting,
summary_statistic (``training.bins`` outputs for the ``inferno`` loss), regression (quantile
regression with ``training.loss: quantile``) or none (a reconstruction of the per-jet group, for
autoencoders); its loss terms from ``training.loss``. The jets of ``data.variations`` (systematic
up/down samples) join the training and validation splits, marked by the observer ``variation``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from heplearn.data.config import DataConfig
from heplearn.data.files import atomic_path
from heplearn.data.in_memory import InMemoryJets, fit_preprocessing, load_arrays
from heplearn.data.jets import JetArrays
from heplearn.data.preprocessing import Preprocessing
from heplearn.data.stream import JetStream
from heplearn.data.stream_loader import stream_loader
from heplearn.errors import ConfigError, DataError
from heplearn.evaluation.metrics import classification_metrics
from heplearn.models import registry
from heplearn.run_config import RunConfig
from heplearn.runs import RunDirectory
from heplearn.tasks import Classification, Reconstruction, Regression, Reweighting, Task
from heplearn.trained_model import predict_classical, to_classical_labels
from heplearn.training import checkpoint as ckpt
from heplearn.training.losses import LOSS_TERMS, TermContext, build_terms
from heplearn.training.trainer import InMemorySource, StreamSource, Trainer, distributed, fit

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What ``train`` returns: the run directory and one record per epoch."""

    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)


def input_dims(data: DataConfig) -> dict[str, int]:
    """The size of each input group of ``data``: features per entry (channels for an image)."""
    return {name: group.size for name, group in data.inputs.items()}


def _classes(config: RunConfig, class_names: list[str], terms: list[Any]) -> Task:
    if len(class_names) < 2:
        raise ConfigError(f"data.labels.classes: classification needs at least two classes, got {class_names}")
    return Classification(class_names, terms)


def _reweighting(config: RunConfig, class_names: list[str], terms: list[Any]) -> Task:
    if len(class_names) != 2:
        raise ConfigError(f"data.labels.classes: reweighting tells two samples apart (target first), got {class_names}")
    return Reweighting(class_names, terms)


def _summary_statistic(config: RunConfig, class_names: list[str], terms: list[Any]) -> Task:
    from heplearn.methods.inferno import SummaryStatistic

    if len(class_names) < 2:
        raise ConfigError(
            f"data.labels.classes: a summary statistic separates the signal (first class) from "
            f"the others, got {class_names}"
        )
    return SummaryStatistic(config.training.bins, terms, class_names=class_names)


def _regression(config: RunConfig, class_names: list[str], terms: list[Any]) -> Task:
    quantile = isinstance(config.training.loss, list) and any(
        LOSS_TERMS.get(term.name, "training.loss").uses_quantiles for term in config.training.loss
    )
    return Regression(
        list(config.data.labels.targets), terms, quantiles=config.training.quantiles if quantile else None
    )


def _reconstruction(config: RunConfig, class_names: list[str], terms: list[Any]) -> Task:
    model = registry.model_class(config.model.name)
    # an image model (CICADA's autoencoder) rebuilds the image group, flattened; the others a per-jet group
    reads_image = "image" in getattr(model, "input_keys", ())
    group = "image" if reads_image else config.data.jet_group(config.model.name)
    if group not in config.data.inputs or (reads_image and config.data.inputs[group].image is None):
        raise ConfigError(
            f"model.name: {config.model.name} rebuilds an image: data.inputs needs a group 'image' "
            "with image settings (e.g. image: {kind: calorimeter})"
        )
    # a model whose outputs are more than the reconstruction (a VAE's latent) builds its own task
    build = getattr(model, "reconstruction_task", None)
    if build is not None:
        return build(config, group, terms)
    inputs = config.data.inputs[group]
    size = inputs.size * (math.prod(inputs.image.shape) if inputs.image is not None else 1)
    return Reconstruction(group, size, terms)


# data.labels.type -> the task it trains (built without terms first, then given them)
TASK_BUILDERS: dict[str, Callable[[RunConfig, list[str], list[Any]], Task]] = {
    "classification": _classes,
    "reweighting": _reweighting,
    "summary_statistic": _summary_statistic,
    "regression": _regression,
    "none": _reconstruction,
}


def make_task(
    config: RunConfig,
    class_names: list[str],
    train_labels: np.ndarray | None = None,
    train_weights: np.ndarray | None = None,
    train_observers: dict[str, np.ndarray] | None = None,
) -> Task:
    """The task ``data.labels.type`` names, with the loss terms of ``training.loss``."""
    build = TASK_BUILDERS[config.data.labels.type]
    task = build(config, class_names, [])
    specs = config.training.loss
    if specs == "auto":
        from heplearn.run_config import LossTermConfig

        specs = [LossTermConfig(name=task.default_loss)]
    task.terms = build_terms(
        specs, task, TermContext(config.training, train_labels, train_weights, train_observers, config.data)
    )
    return task


def check_config(config: RunConfig) -> None:
    """Everything that can be checked before reading data: the model, its inputs and the task."""
    registry.check_name(config.model.name)
    if config.data.variations and config.training.streaming:
        raise ConfigError("data.variations: the varied samples are read into memory; set training.streaming: false")
    if registry.is_torch_model(config.model.name):
        registry.build_network(config.model, config.data, 2)
        # the task's own checks (placeholder classes: the real ones come with the data)
        TASK_BUILDERS[config.data.labels.type](config, ["first", "second"], [])
    else:
        config.data.jet_group(config.model.name)
        if not config.data.labels.has_classes:
            raise ConfigError(
                f"model.name: {config.model.name} is a classifier; data.labels.type is {config.data.labels.type}"
            )


def train(
    config: RunConfig,
    name: str | None = None,
    runs_dir: str | os.PathLike[str] = "runs",
    resume: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_batch: Any = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train the model a run config describes; returns the run directory and the epoch metrics.

    ``on_epoch`` receives each epoch's record once it is written (a classical model's one record
    once the run is finished); it may raise to stop the training (``heplearn tune`` prunes so).
    """
    check_config(config)
    registry.check_installed(config.model.name)  # a missing extra (the BDT's xgboost) before any file is read
    init_distributed()
    rank, world_size = distributed()
    created = False
    if resume is not None:
        run = RunDirectory(Path(resume))
        if not run.is_run():
            raise DataError(f"{run.path}: nothing to resume (no config.yaml)")
        if run.is_finished():
            raise ConfigError(
                f"{run.path}: the run is finished ({run.model_info_file.name} exists); resuming "
                "would train it again: train a new run (--name), or evaluate/export this one"
            )
    elif rank == 0:
        run = RunDirectory.create(runs_dir, name, config.model.name)
        created = True
        run.write_config(config, {"torch_version": str(torch.__version__)})
    if world_size > 1:  # every rank learns rank 0's run directory
        shared = [str(run.path) if rank == 0 else None]
        torch.distributed.broadcast_object_list(shared, src=0)
        run = RunDirectory(Path(str(shared[0])))
    if not registry.is_torch_model(config.model.name):
        # the classical models read one per-jet group: do not pad particles they never look at
        group = config.data.jet_group(config.model.name)
        config = config.model_copy(
            update={"data": config.data.model_copy(update={"inputs": {group: config.data.inputs[group]}})}
        )
    _seed_everything(config.training.seed, config.training.deterministic)
    if config.training.threads:
        torch.set_num_threads(config.training.threads)
    handler = _log_to(run.log_file) if rank == 0 else None
    try:
        if resume is not None and run.preprocessing_file.is_file():
            preprocessing = Preprocessing.load(run.preprocessing_file)
        else:
            preprocessing = fit_preprocessing(config.data)
            if rank == 0:
                preprocessing.save(run.preprocessing_file)
        if registry.is_torch_model(config.model.name):
            history = _train_torch(config, run, preprocessing, resume is not None, progress, on_batch, on_epoch)
        else:
            history = _train_classical(config, run, preprocessing)
            if on_epoch:
                for record in history:
                    on_epoch(record)
    except BaseException:
        if created:
            _remove_if_unresumable(run)
        raise
    finally:
        if handler:
            logging.getLogger("heplearn").removeHandler(handler)
            handler.close()
    return RunResult(run.path, history)


def _remove_if_unresumable(run: RunDirectory) -> None:
    """After a failed fresh training: remove its run directory unless a checkpoint makes it resumable.

    A run with checkpoints stays for ``--resume``; without ``model.json`` it is never taken
    for a finished one (``RunDirectory.is_finished``), and ``RunDirectory.create`` refuses its name.
    """
    if run.is_finished() or (run.checkpoints.is_dir() and any(run.checkpoints.iterdir())):
        return
    shutil.rmtree(run.path, ignore_errors=True)


def _train_torch(
    config: RunConfig,
    run: RunDirectory,
    preprocessing: Preprocessing,
    resume: bool,
    progress: bool,
    on_batch: Any,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    training = config.training
    rank, world_size = distributed()
    train_files = config.data.files("train")
    if training.streaming:
        stream = JetStream(
            train_files,
            config.data,
            preprocessing,
            training.batch_size,
            shuffle=True,
            seed=training.seed,
            buffer_size=training.buffer_size,
            rank=rank,
            world_size=world_size,
        )
        total = sum(len(piece) for piece in stream.pieces)
        train_source: Any = StreamSource(
            stream_loader(stream, training.num_workers), max(1, total // world_size // training.batch_size)
        )
        sample, _ = load_arrays(train_files, config.data, config.data.standardization_jets)
        labels, weights, observers = sample.label, sample.weight, sample.observers
    else:
        train_set = InMemoryJets.from_split(config.data, "train", preprocessing)
        train_source = InMemorySource(train_set, training.batch_size, True, training.seed, rank, world_size)
        labels, weights, observers = train_set.arrays.label, train_set.arrays.weight, train_set.arrays.observers
    val_source = None
    if config.data.val:
        val_set = InMemoryJets.from_split(config.data, "val", preprocessing)
        val_source = InMemorySource(val_set, max(training.batch_size, 1024), False, 0)
    task = make_task(config, preprocessing.class_names, labels, weights, observers)
    try:
        _, trainer = fit_torch(
            config, task, train_source, val_source, run.path, progress, on_batch, resume, preprocessing, on_epoch
        )
    finally:
        if isinstance(train_source, StreamSource):
            train_source.loader.close()  # its worker processes
    if rank != 0:
        return trainer.history
    assert trainer.strategy is not None
    for module_name, module in trainer.strategy.product_modules().items():  # the best epoch's, with validation
        best = run.checkpoints / ckpt.BEST / f"{module_name}.safetensors"
        state: dict[str, torch.Tensor] = (
            ckpt.load_weights(best) if val_source is not None and best.is_file() else ckpt.model_weights(module)
        )
        with atomic_path(run.module_weights_file(module_name)) as temporary:
            save_file(state, temporary)
    run.write_model_info(model_info(config, task))
    return run.read_history()


def fit_torch(
    config: RunConfig,
    task: Task,
    train_source: Any,
    val_source: Any,
    run_dir: Path | None,
    progress: bool = True,
    on_batch: Any = None,
    resume: bool = False,
    preprocessing: Preprocessing | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[torch.nn.Module, Trainer]:
    """Build the network a config names and ``fit`` it; the same initial weights on every rank."""
    torch.manual_seed(config.training.seed)
    model = registry.build_network(config.model, config.data, task.num_outputs)
    log.info(
        "model %s (%s preset): %d parameters",
        config.model.name,
        config.model.preset,
        sum(p.numel() for p in model.parameters()),
    )
    result = fit(
        model,
        task,
        train_source,
        val_source,
        config.training,
        run_dir=run_dir,
        progress=progress,
        on_batch=on_batch,
        resume=resume,
        data=config.data,
        preprocessing=preprocessing,
        on_epoch=on_epoch,
    )
    return model, result.trainer


def fit_classical(config: RunConfig, train: JetArrays, val: JetArrays | None) -> tuple[Any, dict[str, Any]]:
    """Fit a cuts / likelihood / BDT model on the per-jet input group; returns it and its metrics.

    The classical models take class 1 as the signal; heplearn's signal is the first class, so
    binary labels are flipped on the way in (and ``predict_classical`` flips the columns back).
    """
    group = config.data.jet_group(config.model.name)
    model = registry.model_class(config.model.name)(**config.model.hyperparameters)
    fit_arguments: dict[str, Any] = {"feature_names": config.data.inputs[group].variables}
    if val is not None:
        fit_arguments.update(X_val=val.inputs[group], y_val=to_classical_labels(val.label), w_val=val.weight)
    started = time.perf_counter()
    model.fit(train.inputs[group], to_classical_labels(train.label), train.weight, **fit_arguments)
    record: dict[str, Any] = {"epoch": 1, "train_seconds": time.perf_counter() - started}
    if val is not None:
        probabilities = predict_classical(model, val.inputs[group])
        metrics = classification_metrics(np.log(np.clip(probabilities, 1e-12, 1)), val.label, val.weight)
        record.update({f"val_{k}": v for k, v in metrics.items()})
    return model, record


def _train_classical(config: RunConfig, run: RunDirectory, preprocessing: Preprocessing) -> list[dict[str, Any]]:
    train_arrays, class_names = load_arrays(config.data.files("train"), config.data)
    val_arrays = load_arrays(config.data.files("val"), config.data)[0] if config.data.val else None
    model, record = fit_classical(config, train_arrays, val_arrays)
    model.save(run.classical_model_dir)
    run.append_history(record)
    run.write_model_info(
        model_info(config, Classification(class_names), {"feature_group": config.data.jet_group(config.model.name)})
    )
    log.info("%s: %s", config.model.name, record)
    return [record]


def model_info(config: RunConfig, task: Task, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``model.json``: the model, its inputs and its task."""
    return {
        "name": config.model.name,
        "preset": config.model.preset,
        "hyperparameters": config.model.hyperparameters,
        "input_dims": input_dims(config.data),
        "class_names": list(getattr(task, "class_names", [])),
        **task.info(),
        **(extra or {}),
    }


def init_distributed() -> None:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on GPUs)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)


def _seed_everything(seed: int, deterministic: bool) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds the global state third-party code draws from
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)


def _log_to(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("heplearn")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler
