"""Every model by name: the torch networks (trained by the trainer) and the classical classifiers."""

from __future__ import annotations

import importlib
from typing import Any

from heplearn.errors import ConfigError

# name -> (module, class); imported on first use so that `heplearn --help` stays fast.
TORCH_MODELS: dict[str, tuple[str, str]] = {
    "mlp": ("heplearn.models.mlp", "JetMLP"),
    "pfn": ("heplearn.models.deepsets", "ParticleFlowNetwork"),
    "efn": ("heplearn.models.deepsets", "EnergyFlowNetwork"),
    "particlenet": ("heplearn.models.particlenet", "ParticleNet"),
    "part": ("heplearn.models.part", "ParticleTransformer"),
    "cnn": ("heplearn.models.cnn", "JetImageCNN"),
    "rnn": ("heplearn.models.rnn", "ParticleRNN"),
}
CLASSICAL_MODELS: dict[str, tuple[str, str]] = {
    "cuts": ("heplearn.models.cuts", "RectangularCuts"),
    "likelihood": ("heplearn.models.likelihood", "ProjectiveLikelihood"),
    "bdt": ("heplearn.models.bdt", "BoostedDecisionTrees"),
}


def model_names() -> list[str]:
    return [*CLASSICAL_MODELS, *TORCH_MODELS]


def is_torch_model(name: str) -> bool:
    check_name(name)
    return name in TORCH_MODELS


def check_name(name: str) -> None:
    if name not in TORCH_MODELS and name not in CLASSICAL_MODELS:
        raise ConfigError(f"model.name: unknown model {name!r}; choose one of {', '.join(model_names())}")


def model_class(name: str) -> Any:
    check_name(name)
    module, attribute = TORCH_MODELS.get(name) or CLASSICAL_MODELS[name]
    return getattr(importlib.import_module(module), attribute)
