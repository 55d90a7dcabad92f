"""A trained model ready to apply: loaded from a run directory (no pickle) or fresh from a fit.

``TrainedModel.load(run_dir)`` rebuilds the network from ``model.json`` and the weights from
``model.safetensors`` (or the classical model from ``model/``), with the standardisation of
``preprocessing.json``; ``predict`` gives class probabilities (or regression outputs) for raw,
unstandardised arrays, exactly as training saw them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from heplearn.data.dataset import load_arrays, to_batch, trim_padding
from heplearn.data.preprocessing import Preprocessing
from heplearn.data.transform import JetArrays
from heplearn.models import registry
from heplearn.training.checkpoint import load_weights
from heplearn.training.config import RunConfig
from heplearn.training.trainer import softmax


@dataclass
class TrainedModel:
    config: RunConfig
    class_names: list[str]
    task: str  # "classification" | "regression"
    preprocessing: Preprocessing
    network: torch.nn.Module | None = None
    classical: Any = None
    run_dir: Path | None = None

    @property
    def name(self) -> str:
        return self.config.model.name

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> TrainedModel:
        from heplearn.training.run import WEIGHTS_FILE, build_torch_model, read_finished_run

        run_dir = Path(run_dir)
        config, info = read_finished_run(run_dir)
        preprocessing = Preprocessing.load(run_dir / "preprocessing.json")
        if registry.is_torch_model(config.model.name):
            network = build_torch_model(config, int(info["num_outputs"]))
            network.load_state_dict(load_weights(run_dir / WEIGHTS_FILE))
            network.eval()
            return cls(config, info["class_names"], info["task"], preprocessing, network=network, run_dir=run_dir)
        model = registry.model_class(config.model.name).load(run_dir / "model")
        return cls(config, info["class_names"], info["task"], preprocessing, classical=model, run_dir=run_dir)

    def predict(self, arrays: JetArrays, batch_size: int = 4096) -> np.ndarray:
        """Probabilities ``(n, classes)`` (or regression outputs) for raw arrays of ``n`` jets."""
        if self.classical is not None:
            from heplearn.training.run import jet_group, predict_classical

            return predict_classical(self.classical, arrays.inputs[jet_group(self.config.data, self.name)])
        assert self.network is not None
        scaled = self.preprocessing.apply(arrays)
        self.network.eval()
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(scaled), batch_size):
                batch = trim_padding(to_batch(scaled.take(slice(start, start + batch_size))))
                outputs.append(self.network(batch).float().numpy())
        result = np.concatenate(outputs) if outputs else np.empty((0, len(self.class_names)))
        return softmax(result) if self.task == "classification" else result

    def predict_files(self, files: Sequence[str | os.PathLike[str]]) -> tuple[np.ndarray, JetArrays]:
        """Predictions for every jet of ``files`` passing the run's selection, with its raw arrays."""
        arrays, _ = load_arrays(files, self.config.data)
        return self.predict(arrays), arrays
