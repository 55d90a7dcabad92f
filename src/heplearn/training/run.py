"""A training run from one config: the run directory, the data, the model, the fit.

``train(config)`` works for every model name: torch networks go through the ``Trainer``, the
classical classifiers (cuts, likelihood, BDT) are fitted on the per-jet input group. Either way
the run directory of DESIGN.md holds everything needed to apply the model again::

    runs/<name>/config.yaml          resolved config + heplearn version + git hash
    runs/<name>/preprocessing.json   standardisation fitted on the training split
    runs/<name>/model.json           model name, hyper-parameters, inputs, classes, task
    runs/<name>/model.safetensors    final weights (torch) | runs/<name>/model/ (classical)
    runs/<name>/metrics.jsonl, tensorboard/, checkpoints/, train.log
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

from heplearn import __version__
from heplearn.data.config import DataConfig
from heplearn.data.dataset import InMemoryJets, JetStream, fit_preprocessing, load_arrays, stream_loader
from heplearn.data.files import atomic_path, write_text_atomic
from heplearn.data.preprocessing import Preprocessing
from heplearn.data.transform import JetArrays
from heplearn.errors import ConfigError, DataError
from heplearn.models import registry
from heplearn.training import checkpoint as ckpt
from heplearn.training import losses
from heplearn.training.config import RunConfig
from heplearn.training.trainer import InMemorySource, StreamSource, Task, Trainer, distributed

log = logging.getLogger(__name__)
MODEL_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)


def git_hash() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def new_run_dir(config: RunConfig, name: str | None, runs_dir: str | os.PathLike[str]) -> Path:
    if name is None:  # a fresh directory named after the model and the time
        stem = f"{config.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        name = next(candidate for candidate in (stem, *(f"{stem}-{i}" for i in range(2, 10_000)))
                    if not (Path(runs_dir) / candidate).exists())
    run_dir = Path(runs_dir) / name
    if (run_dir / MODEL_FILE).exists():
        raise ConfigError(f"{run_dir}: a finished run exists already; choose another --name or --resume it")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_resolved_config(config: RunConfig, run_dir: Path) -> None:
    content = config.model_dump(mode="json")
    content["provenance"] = {"heplearn_version": __version__, "git_hash": git_hash(),
                             "torch_version": str(torch.__version__)}
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(content, sort_keys=False))


def read_run_config(run_dir: Path) -> RunConfig:
    from heplearn.training.config import load_run_config

    path = run_dir / "config.yaml"
    if not path.is_file():
        raise DataError(f"{run_dir}: not a heplearn run directory (no config.yaml)")
    content = yaml.safe_load(path.read_text())
    content.pop("provenance", None)
    return load_run_config(content)


def read_finished_run(run_dir: str | os.PathLike[str]) -> tuple[RunConfig, dict[str, Any]]:
    """The config and ``model.json`` of a finished run; an unfinished one is a ``DataError``."""
    run_dir = Path(run_dir)
    if not (run_dir / MODEL_FILE).is_file():
        raise DataError(f"{run_dir}: not a finished heplearn run (no {MODEL_FILE}); train it first")
    return read_run_config(run_dir), json.loads((run_dir / MODEL_FILE).read_text())


def input_dims(data: DataConfig) -> dict[str, int]:
    return {name: group.size for name, group in data.inputs.items()}


def make_task(config: RunConfig, class_names: list[str], train_labels: np.ndarray, train_weights: np.ndarray) -> Task:
    training = config.training
    if config.data.labels.type == "regression":
        targets = len(config.data.labels.targets)
        loss_name = "mse" if training.loss == "auto" else training.loss
        if loss_name == "cross_entropy":
            raise ConfigError("training.loss: cross_entropy needs data.labels.type: classification")
        if loss_name == "quantile":
            return Task("regression", targets * len(training.quantiles), losses.quantile(training.quantiles))
        return Task("regression", targets, losses.mse if loss_name == "mse" else losses.huber)
    if training.loss not in {"auto", "cross_entropy"}:
        raise ConfigError(f"training.loss: {training.loss} needs data.labels.type: regression")
    classes = len(class_names)
    if classes < 2:
        raise ConfigError(f"data.labels.classes: classification needs at least two classes, got {class_names}")
    class_weights = None
    if training.class_weights == "balanced":
        totals = np.bincount(train_labels, weights=train_weights, minlength=classes)
        if (totals <= 0).any():
            raise DataError(f"the training split has no jets of class {class_names[int(np.argmin(totals))]!r}")
        class_weights = torch.tensor(totals.sum() / (classes * totals), dtype=torch.float32)
    elif isinstance(training.class_weights, list):
        if len(training.class_weights) != classes:
            raise ConfigError(f"training.class_weights: {len(training.class_weights)} values for {classes} classes "
                              f"({', '.join(class_names)})")
        class_weights = torch.tensor(training.class_weights, dtype=torch.float32)
    return Task("classification", classes, losses.cross_entropy(class_weights))


def build_torch_model(config: RunConfig, num_outputs: int) -> torch.nn.Module:
    cls = registry.model_class(config.model.name)
    dims = input_dims(config.data)
    if "mask" in cls.input_keys and config.data.particle_length is None:
        raise ConfigError(f"model.name: {config.model.name} reads particles, but data.inputs has no group with "
                          "a `length` (a per-particle group)")
    return cls.from_preset(config.model.preset, num_outputs, dims, **config.model.hyperparameters)


def check_config(config: RunConfig) -> None:
    """Everything that can be checked before reading data: the model and its inputs."""
    registry.check_name(config.model.name)
    if registry.is_torch_model(config.model.name):
        build_torch_model(config, 2)  # builds on the meta device would be nicer; models are small on CPU
    else:
        jet_group(config.data, config.model.name)
        if config.data.labels.type == "regression":
            raise ConfigError(f"model.name: {config.model.name} is a classifier; data.labels.type is regression")


def jet_group(data: DataConfig, model_name: str) -> str:
    groups = [name for name, group in data.inputs.items() if not group.per_particle]
    if "jet" in groups:
        return "jet"
    if len(groups) == 1:
        return groups[0]
    raise ConfigError(f"model.name: {model_name} reads jet-level features: data.inputs needs a group 'jet' "
                      "without `length`")


def train(
    config: RunConfig,
    name: str | None = None,
    runs_dir: str | os.PathLike[str] = "runs",
    resume: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_batch: Any = None,
) -> RunResult:
    """Train the model a run config describes; returns the run directory and the epoch metrics."""
    check_config(config)
    init_distributed()
    rank, world_size = distributed()
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").is_file():
            raise DataError(f"{run_dir}: nothing to resume (no config.yaml)")
    elif rank == 0:
        run_dir = new_run_dir(config, name, runs_dir)
        write_resolved_config(config, run_dir)
    if world_size > 1:  # every rank learns rank 0's run directory
        shared = [str(run_dir) if rank == 0 else None]
        torch.distributed.broadcast_object_list(shared, src=0)
        run_dir = Path(str(shared[0]))
    if not registry.is_torch_model(config.model.name):
        # the classical models read one per-jet group: do not pad particles they never look at
        group = jet_group(config.data, config.model.name)
        config = config.model_copy(update={"data": config.data.model_copy(
            update={"inputs": {group: config.data.inputs[group]}})})
    _seed_everything(config.training.seed, config.training.deterministic)
    if config.training.threads:
        torch.set_num_threads(config.training.threads)
    handler = _log_to(run_dir / "train.log") if rank == 0 else None
    try:
        preprocessing_path = run_dir / "preprocessing.json"
        if resume is not None and preprocessing_path.is_file():
            preprocessing = Preprocessing.load(preprocessing_path)
        else:
            preprocessing = fit_preprocessing(config.data)
            if rank == 0:
                preprocessing.save(preprocessing_path)
        if registry.is_torch_model(config.model.name):
            history = _train_torch(config, run_dir, preprocessing, resume is not None, progress, on_batch)
        else:
            history = _train_classical(config, run_dir, preprocessing)
    finally:
        if handler:
            logging.getLogger("heplearn").removeHandler(handler)
            handler.close()
    return RunResult(run_dir, history)


def _train_torch(config: RunConfig, run_dir: Path, preprocessing: Preprocessing, resume: bool, progress: bool,
                 on_batch: Any) -> list[dict[str, Any]]:
    training = config.training
    rank, world_size = distributed()
    train_files = config.data.files("train")
    if training.streaming:
        stream = JetStream(train_files, config.data, preprocessing, training.batch_size, shuffle=True,
                           seed=training.seed, buffer_size=training.buffer_size, rank=rank, world_size=world_size)
        total = sum(len(piece) for piece in stream.pieces)
        train_source: Any = StreamSource(stream_loader(stream, training.num_workers),
                                         max(1, total // world_size // training.batch_size))
        sample, _ = load_arrays(train_files, config.data, config.data.standardization_jets)
        labels, weights = sample.label, sample.weight
    else:
        train_set = InMemoryJets.from_files(train_files, config.data, preprocessing)
        train_source = InMemorySource(train_set, training.batch_size, True, training.seed, rank, world_size)
        labels, weights = train_set.arrays.label, train_set.arrays.weight
    val_source = None
    if config.data.val:
        val_set = InMemoryJets.from_files(config.data.files("val"), config.data, preprocessing)
        val_source = InMemorySource(val_set, max(training.batch_size, 1024), False, 0)
    task = make_task(config, preprocessing.class_names, labels, weights)
    write_model_json(run_dir, config, task, preprocessing.class_names, rank)
    try:
        model, trainer = fit_torch(config, task, train_source, val_source, run_dir, progress, on_batch, resume)
    finally:
        if isinstance(train_source, StreamSource):
            train_source.loader.close()  # its worker processes
    if rank == 0:
        best = run_dir / "checkpoints" / ckpt.BEST / WEIGHTS_FILE
        weights = ckpt.load_weights(best) if val_source is not None and best.is_file() else ckpt.model_weights(model)
        with atomic_path(run_dir / WEIGHTS_FILE) as temporary:
            save_file(weights, temporary)
    return _read_history(run_dir) if rank == 0 else trainer.history


def fit_torch(config: RunConfig, task: Task, train_source: Any, val_source: Any, run_dir: Path | None,
              progress: bool = True, on_batch: Any = None, resume: bool = False) -> tuple[torch.nn.Module, Trainer]:
    """Build the network a config names and train it; the same initial weights on every rank."""
    torch.manual_seed(config.training.seed)
    model = build_torch_model(config, task.num_outputs)
    log.info("model %s (%s preset): %d parameters", config.model.name, config.model.preset,
             sum(p.numel() for p in model.parameters()))
    trainer = Trainer(model, config.training, task, run_dir, progress, on_batch)
    state = trainer.fit(train_source, val_source, resume=resume)
    log.info("finished after %d epochs; best epoch %d", state.epoch, state.best_epoch + 1)
    return model, trainer


def fit_classical(config: RunConfig, train: JetArrays, val: JetArrays | None) -> tuple[Any, dict[str, Any]]:
    """Fit a cuts / likelihood / BDT model on the per-jet input group; returns it and its metrics.

    The classical models take class 1 as the signal; heplearn's signal is the first class, so
    binary labels are flipped on the way in (and ``predict_classical`` flips the columns back).
    """
    from heplearn.training.trainer import classification_metrics

    group = jet_group(config.data, config.model.name)
    model = registry.model_class(config.model.name)(**config.model.hyperparameters)
    fit_arguments: dict[str, Any] = {"feature_names": config.data.inputs[group].variables}
    if val is not None:
        fit_arguments.update(X_val=val.inputs[group], y_val=_to_classical(val.label), w_val=val.weight)
    started = time.perf_counter()
    model.fit(train.inputs[group], _to_classical(train.label), train.weight, **fit_arguments)
    record: dict[str, Any] = {"epoch": 1, "train_seconds": time.perf_counter() - started}
    if val is not None:
        probabilities = predict_classical(model, val.inputs[group])
        metrics = classification_metrics(np.log(np.clip(probabilities, 1e-12, 1)), val.label, val.weight)
        record.update({f"val_{k}": v for k, v in metrics.items()})
    return model, record


def _to_classical(labels: np.ndarray) -> np.ndarray:
    return 1 - labels if labels.max(initial=0) <= 1 else labels


def predict_classical(model: Any, features: np.ndarray) -> np.ndarray:
    """Class probabilities in heplearn's class order (see ``fit_classical``)."""
    probabilities = model.predict_proba(features)
    return probabilities[:, ::-1] if probabilities.shape[1] == 2 else probabilities


def _train_classical(config: RunConfig, run_dir: Path, preprocessing: Preprocessing) -> list[dict[str, Any]]:
    train_arrays, class_names = load_arrays(config.data.files("train"), config.data)
    val_arrays = load_arrays(config.data.files("val"), config.data)[0] if config.data.val else None
    model, record = fit_classical(config, train_arrays, val_arrays)
    model.save(run_dir / "model")
    task = Task("classification", len(class_names), losses.cross_entropy())
    write_model_json(run_dir, config, task, class_names, 0, extra={"feature_group": jet_group(config.data,
                                                                                              config.model.name)})
    with (run_dir / "metrics.jsonl").open("a") as stream:
        stream.write(json.dumps(record) + "\n")
    log.info("%s: %s", config.model.name, record)
    return [record]


def write_model_json(run_dir: Path, config: RunConfig, task: Task, class_names: list[str], rank: int,
                      extra: dict[str, Any] | None = None) -> None:
    if rank != 0:
        return
    content = {"name": config.model.name, "preset": config.model.preset,
               "hyperparameters": config.model.hyperparameters, "input_dims": input_dims(config.data),
               "task": task.kind, "num_outputs": task.num_outputs, "class_names": class_names,
               "heplearn_version": __version__, **(extra or {})}
    write_text_atomic(run_dir / MODEL_FILE, json.dumps(content, indent=2))


def _read_history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []


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
