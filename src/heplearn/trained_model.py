"""A trained model ready to apply: a network (or classical model), its preprocessing and its task.

``TrainedModel.load(run_dir)`` rebuilds the network from ``model.json`` and the weights from
``model.safetensors`` (or the classical model from ``model/``), with the standardisation of
``preprocessing.json``; ``predict`` gives what the task makes of the outputs (class
probabilities, regression outputs, weights, an anomaly score) for raw, unstandardised arrays,
exactly as training saw them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from heplearn.data.batches import to_batch, trim_padding
from heplearn.data.in_memory import load_arrays
from heplearn.data.jets import JetArrays
from heplearn.data.preprocessing import Preprocessing
from heplearn.errors import DataError
from heplearn.models import registry
from heplearn.run_config import RunConfig
from heplearn.runs import RunDirectory
from heplearn.tasks import Classification, Task, task_from_info


@dataclass
class TrainedModel:
    """A model plus its preprocessing and task, applied to raw arrays."""

    config: RunConfig
    task: Task
    preprocessing: Preprocessing
    network: torch.nn.Module | None = None
    classical: Any = None
    run_dir: Path | None = None

    @property
    def name(self) -> str:
        """The model's name in the zoo."""
        return self.config.model.name

    @property
    def class_names(self) -> list[str]:
        """The classes of a classifier (empty for other tasks)."""
        return list(getattr(self.task, "class_names", []))

    @property
    def is_classifier(self) -> bool:
        """Whether the run's task is a classification."""
        return isinstance(self.task, Classification)

    @property
    def output_names(self) -> list[str]:
        """The names of the model's outputs (classes, targets or quantiles)."""
        return self.task.output_names

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> TrainedModel:
        """The model of a finished run directory; a missing or unfinished one is a ``DataError``."""
        run = RunDirectory(Path(run_dir))
        config, info = run.read_finished()
        task = task_from_info(info, str(run.model_info_file))
        preprocessing = Preprocessing.load(run.preprocessing_file)
        if registry.is_torch_model(config.model.name):
            network = registry.build_network(config.model, config.data, task.num_outputs)
            if not run.weights_file.is_file():
                raise DataError(f"{run.weights_file}: no such weights file")
            network.load_state_dict(load_file(run.weights_file))
            network.eval()
            return cls(config, task, preprocessing, network=network, run_dir=run.path)
        model = registry.model_class(config.model.name).load(run.classical_model_dir)
        return cls(config, task, preprocessing, classical=model, run_dir=run.path)

    def predict(self, arrays: JetArrays, batch_size: int = 4096) -> np.ndarray:
        """The task's outputs ``(n, len(output_names))`` for raw arrays of ``n`` jets."""
        if self.classical is not None:
            features = arrays.inputs[self.config.data.jet_group(self.name)]
            return predict_classical(self.classical, features)
        assert self.network is not None
        scaled = self.preprocessing.apply(arrays)
        self.network.eval()
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(scaled), batch_size):
                batch = trim_padding(to_batch(scaled.take(slice(start, start + batch_size))))
                outputs.append(self.task.postprocess(self.network(batch).float(), batch).numpy())
        return np.concatenate(outputs) if outputs else np.empty((0, len(self.output_names)), np.float32)

    def predict_files(self, files: Sequence[str | os.PathLike[str]]) -> tuple[np.ndarray, JetArrays]:
        """Predictions for every jet of ``files`` passing the run's selection, with its raw arrays."""
        arrays, _ = load_arrays(files, self.config.data)
        return self.predict(arrays), arrays


def predict_classical(model: Any, features: np.ndarray) -> np.ndarray:
    """Class probabilities in heplearn's class order.

    The classical models take class 1 as the signal; heplearn's signal is the first class, so
    binary labels are flipped on the way in (``to_classical_labels``) and the columns back here.
    """
    probabilities = model.predict_proba(features)
    return probabilities[:, ::-1] if probabilities.shape[1] == 2 else probabilities


def to_classical_labels(labels: np.ndarray) -> np.ndarray:
    """heplearn's binary labels (signal = 0) as the classical models take them (signal = 1)."""
    return 1 - labels if labels.max(initial=0) <= 1 else labels
