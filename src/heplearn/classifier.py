"""The notebook interface: any model by name, scikit-learn style, on in-memory jets.

    data = heplearn.DataConfig(...)  # or heplearn.load_data_config("configs/top_qcd_data.yaml")
    train, val, test = (heplearn.load_jets(data.files(s), data) for s in ("train", "val", "test"))
    bdt = heplearn.Classifier("bdt", n_estimators=300).fit(train, val)
    probabilities = bdt.predict_proba(test)
    pnet = heplearn.Classifier("particlenet", preset="small", epochs=5).fit(train, val)

Keyword arguments that are training settings (``epochs``, ``batch_size``, ``learning_rate``, ...)
go to the trainer; every other one is a hyper-parameter of the model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

import numpy as np
from safetensors.torch import save_file

from heplearn.data.dataset import InMemoryJets
from heplearn.data.preprocessing import Preprocessing
from heplearn.errors import HeplearnError
from heplearn.models import registry
from heplearn.run_config import ModelConfig, RunConfig, TrainingConfig
from heplearn.runs import RunDirectory
from heplearn.tasks import Classification
from heplearn.trained import TrainedModel
from heplearn.training.checkpoint import model_weights
from heplearn.training.run import check_config, fit_classical, fit_torch, make_task, model_info
from heplearn.training.trainer import InMemorySource


class NotFittedError(HeplearnError):
    """``predict_proba`` or ``save`` before ``fit``."""


class Classifier:
    def __init__(self, name: str, preset: str = "paper", **parameters: Any) -> None:
        registry.check_name(name)
        training_keys = set(TrainingConfig.model_fields)
        self.name = name
        self.preset = preset
        self.training = {k: v for k, v in parameters.items() if k in training_keys}
        self.hyperparameters = {k: v for k, v in parameters.items() if k not in training_keys}
        self.trained: TrainedModel | None = None
        self.history: list[dict[str, Any]] = []

    def _config(self, train: InMemoryJets) -> RunConfig:
        model = {"name": self.name, **({"preset": self.preset} if registry.is_torch_model(self.name) else {}),
                 **self.hyperparameters}
        return RunConfig(data=train.config, model=ModelConfig(**model), training=TrainingConfig(**self.training))

    def fit(self, train: InMemoryJets, val: InMemoryJets | None = None, progress: bool = False) -> Self:
        """Train on ``train`` (unstandardised, from ``load_jets``), validating on ``val``."""
        config = self._config(train)
        check_config(config)
        preprocessing = Preprocessing.fit(train.arrays, config.data, train.class_names)
        if registry.is_torch_model(self.name):
            task = make_task(config, train.class_names, train.arrays.label, train.arrays.weight)
            train_source = InMemorySource(InMemoryJets(train.arrays, train.class_names, preprocessing),
                                          config.training.batch_size, True, config.training.seed)
            val_source = None
            if val is not None:
                val_source = InMemorySource(InMemoryJets(val.arrays, val.class_names, preprocessing),
                                            max(config.training.batch_size, 1024), False, 0)
            network, trainer = fit_torch(config, task, train_source, val_source, None, progress)
            network.eval()
            self.history = trainer.history
            self.trained = TrainedModel(config, task, preprocessing, network=network)
        else:
            model, record = fit_classical(config, train.arrays, val.arrays if val is not None else None)
            self.history = [record]
            self.trained = TrainedModel(config, Classification(train.class_names), preprocessing, classical=model)
        return self

    def _fitted(self) -> TrainedModel:
        if self.trained is None:
            raise NotFittedError(f"Classifier({self.name!r}) is not fitted yet: call fit(train, val) first")
        return self.trained

    def predict_proba(self, data: InMemoryJets) -> np.ndarray:
        return self._fitted().predict(data.arrays)

    def predict(self, data: InMemoryJets) -> np.ndarray:
        return self.predict_proba(data).argmax(axis=1)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write a run directory that ``heplearn evaluate``/``export`` and ``load`` understand."""
        trained = self._fitted()
        run = RunDirectory(Path(directory))
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(trained.config)
        trained.preprocessing.save(run.preprocessing_file)
        if trained.network is not None:
            save_file(model_weights(trained.network), run.weights_file)
        else:
            trained.classical.save(run.classical_model_dir)
        run.write_model_info(model_info(trained.config, trained.task))
        return run.path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Classifier:
        trained = TrainedModel.load(directory)
        classifier = cls(trained.name, trained.config.model.preset)
        classifier.trained = trained
        return classifier


def load_jets(files: list[str] | list[Path], config: Any) -> InMemoryJets:
    """The jets of ``files`` as the data config describes them (unstandardised), for ``Classifier``."""
    from heplearn.data.config import DataConfig, load_data_config
    from heplearn.data.dataset import load_arrays

    data = config if isinstance(config, DataConfig) else load_data_config(config)
    arrays, class_names = load_arrays(files, data)
    return InMemoryJets(arrays, class_names, None, data)
