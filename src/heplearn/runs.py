"""The run directory: the contract between training, evaluation, serving and the methods.

One directory per training, the unit users pass around (DESIGN.md, "The run directory")::

    runs/<name>/config.yaml          resolved config + heplearn version + git hash
    runs/<name>/preprocessing.json   standardisation fitted on the training split
    runs/<name>/model.json           model name, hyper-parameters, inputs, classes, task; written last
    runs/<name>/model.safetensors    final weights (torch) | runs/<name>/model/ (classical)
    runs/<name>/metrics.jsonl        one line per epoch; tensorboard/ beside it
    runs/<name>/checkpoints/, train.log, model.onnx (after export), eval/<dataset>/

Every stage reads and writes runs through ``RunDirectory``; none imports another stage for it.
A run is finished once ``model.json`` exists (it is written after everything else).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from heplearn import __version__
from heplearn.config import yaml_problem
from heplearn.data.files import dumps, write_text_atomic
from heplearn.errors import ConfigError, DataError
from heplearn.run_config import RunConfig, load_run_config

CONFIG_FILE = "config.yaml"
PREPROCESSING_FILE = "preprocessing.json"
MODEL_INFO_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
CLASSICAL_MODEL_DIR = "model"
METRICS_FILE = "metrics.jsonl"
ONNX_FILE = "model.onnx"
CHECKPOINTS_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
LOG_FILE = "train.log"
EVAL_DIR = "eval"


@dataclass(frozen=True)
class RunDirectory:
    """The files of one run, by what they hold."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config_file(self) -> Path:
        """``config.yaml``: the resolved config, with the heplearn version and git hash."""
        return self.path / CONFIG_FILE

    @property
    def preprocessing_file(self) -> Path:
        """``preprocessing.json``: standardisation and feature definitions fitted on the training split."""
        return self.path / PREPROCESSING_FILE

    @property
    def model_info_file(self) -> Path:
        """``model.json``: the model's name, task, classes and outputs."""
        return self.path / MODEL_INFO_FILE

    @property
    def weights_file(self) -> Path:
        """``model.safetensors``: the trained network's weights."""
        return self.path / WEIGHTS_FILE

    def module_weights_file(self, module: str) -> Path:
        """The weights of one product module of the step strategy: ``model`` is ``model.safetensors``."""
        return self.weights_file if module == "model" else self.path / f"{module}.safetensors"

    @property
    def classical_model_dir(self) -> Path:
        """The folder of a classical model (BDT, cuts, likelihood), saved in its own format."""
        return self.path / CLASSICAL_MODEL_DIR

    @property
    def metrics_file(self) -> Path:
        """``metrics.jsonl``: one line per epoch (losses, AUC, throughput)."""
        return self.path / METRICS_FILE

    @property
    def onnx_file(self) -> Path:
        """``model.onnx``, written by ``heplearn export``."""
        return self.path / ONNX_FILE

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``: the last and the best checkpoint."""
        return self.path / CHECKPOINTS_DIR

    @property
    def tensorboard(self) -> Path:
        """``tensorboard/``: the TensorBoard event files."""
        return self.path / TENSORBOARD_DIR

    @property
    def log_file(self) -> Path:
        """``train.log``: the training's log."""
        return self.path / LOG_FILE

    def eval_dir(self, dataset: str) -> Path:
        """``eval/<dataset>/``: what ``heplearn evaluate`` writes for one dataset."""
        return self.path / EVAL_DIR / dataset

    # -- state
    def is_run(self) -> bool:
        """Whether training started here (a resolved config exists)."""
        return self.config_file.is_file()

    def is_finished(self) -> bool:
        """Whether training finished here (``model.json`` is written last)."""
        return self.model_info_file.is_file()

    def require_finished(self) -> None:
        """A ``DataError`` naming the directory unless it holds a finished run."""
        if not self.path.is_dir():
            raise DataError(f"{self.path}: no such run directory")
        if not self.is_finished():
            raise DataError(f"{self.path}: not a finished heplearn run (no {MODEL_INFO_FILE}); train it first")

    # -- readers
    def read_config(self) -> RunConfig:
        """The resolved config the run was trained with."""
        if not self.config_file.is_file():
            raise DataError(f"{self.path}: not a heplearn run directory (no {CONFIG_FILE})")
        try:
            content = yaml.safe_load(self.config_file.read_text())
        except yaml.YAMLError as error:
            raise DataError(f"{self.config_file}: not valid YAML: {yaml_problem(error)}") from None
        if not isinstance(content, dict):
            raise DataError(f"{self.config_file}: expected a mapping of config sections")
        content.pop("provenance", None)
        return load_run_config(content)

    def read_model_info(self) -> dict[str, Any]:
        """``model.json`` of a finished run: model name, hyper-parameters, inputs, classes, task."""
        self.require_finished()
        return self.read_json(MODEL_INFO_FILE, "a finished heplearn run")

    def read_json(self, name: str, what: str) -> dict[str, Any]:
        """The JSON object in file ``name`` of the run (``what`` says which kind of run writes it)."""
        path = self.path / name
        if not path.is_file():
            raise DataError(f"{self.path}: not {what} (no {name})")
        try:
            content = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise DataError(f"{path}: cannot read it ({error})") from None
        if not isinstance(content, dict):
            raise DataError(f"{path}: expected a JSON object")
        return content

    def read_finished(self) -> tuple[RunConfig, dict[str, Any]]:
        """The config and ``model.json`` of a finished run; an unfinished one is a ``DataError``."""
        info = self.read_model_info()
        return self.read_config(), info

    def read_history(self) -> list[dict[str, Any]]:
        """The per-epoch records of ``metrics.jsonl`` (empty when absent)."""
        if not self.metrics_file.is_file():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    # -- writers
    def write_config(self, config: RunConfig, extra_provenance: dict[str, str] | None = None) -> None:
        """``config.yaml``: every default filled in, with the versions that made the run."""
        content = config.model_dump(mode="json")
        content["provenance"] = {"heplearn_version": __version__, "git_hash": git_hash(), **(extra_provenance or {})}
        write_text_atomic(self.config_file, yaml.safe_dump(content, sort_keys=False))

    def write_model_info(self, content: dict[str, Any]) -> None:
        """``model.json``, the mark of a finished run: write it after everything else."""
        write_text_atomic(self.model_info_file, dumps({**content, "heplearn_version": __version__}, indent=2))

    def append_history(self, record: dict[str, Any]) -> None:
        """One epoch's record, as a line of ``metrics.jsonl``."""
        with self.metrics_file.open("a") as stream:
            stream.write(dumps(record) + "\n")  # strict JSON: a NaN loss is null

    @classmethod
    def create(cls, runs_dir: str | os.PathLike[str], name: str | None, stem: str) -> RunDirectory:
        """A new run directory ``runs_dir/name`` (default: ``stem`` and the time, made unique)."""
        if name is None:
            base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
            name = next(
                candidate
                for candidate in (base, *(f"{base}-{i}" for i in range(2, 10_000)))
                if not (Path(runs_dir) / candidate).exists()
            )
        run = cls(Path(runs_dir) / name)
        if run.is_finished():
            raise ConfigError(f"{run.path}: a finished run exists already; choose another --name or --resume it")
        run.path.mkdir(parents=True, exist_ok=True)
        return run


def git_hash() -> str:
    """The commit of the working tree heplearn runs from ("unknown" outside git)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
