"""Every model by name: the torch networks (trained by the trainer) and the classical classifiers."""

from __future__ import annotations

import importlib
import inspect
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
    "autoencoder": ("heplearn.models.autoencoder", "JetAutoencoder"),
    "vae": ("heplearn.models.vae", "EventVAE"),
    "cicada": ("heplearn.models.cicada", "CaloAutoencoder"),
}
CLASSICAL_MODELS: dict[str, tuple[str, str]] = {
    "cuts": ("heplearn.models.cuts", "RectangularCuts"),
    "likelihood": ("heplearn.models.likelihood", "ProjectiveLikelihood"),
    "bdt": ("heplearn.models.bdt", "BoostedDecisionTrees"),
}

# models whose implementation needs an extra (heplearn.optional.EXTRAS); imported lazily, so that their
# configs validate without it, and checked by ``check_installed`` where a model is about to be used
MODEL_EXTRAS: dict[str, str] = {"bdt": "bdt"}
MODEL_NEEDS: dict[str, str] = {"bdt": "the BDT (model: bdt)"}  # what the missing-extra error names


def model_names() -> list[str]:
    """Every model's name: the classical ones, then the networks."""
    return [*CLASSICAL_MODELS, *TORCH_MODELS]


def is_torch_model(name: str) -> bool:
    """Whether ``name`` is a torch network (trained by the trainer) rather than a classical model."""
    check_name(name)
    return name in TORCH_MODELS


def check_name(name: str) -> None:
    """Raise a ``ConfigError`` naming the known models unless ``name`` is one."""
    if name not in TORCH_MODELS and name not in CLASSICAL_MODELS:
        raise ConfigError(f"model.name: unknown model {name!r}; choose one of {', '.join(model_names())}")


def model_class(name: str) -> Any:
    """The class of model ``name`` (imported on first use)."""
    check_name(name)
    module, attribute = TORCH_MODELS.get(name) or CLASSICAL_MODELS[name]
    return getattr(importlib.import_module(module), attribute)


def check_installed(name: str) -> None:
    """Raise a ``MissingExtraError`` naming the ``pip install`` if model ``name`` needs an extra that is absent."""
    check_name(name)
    if name in MODEL_EXTRAS:
        from heplearn.optional import require_extra

        require_extra(MODEL_EXTRAS[name], MODEL_NEEDS.get(name, f"model {name}"))


def hyperparameter_names(name: str) -> tuple[str, ...]:
    """The hyper-parameters model ``name`` takes, by name.

    A network's are the fields of its ``Hyperparameters`` (what ``from_preset`` overrides); a
    classical model's are the arguments of its constructor (its scikit-learn parameters).

    Example:
    >>> hyperparameter_names("mlp")
    ('hidden', 'dropout', 'batch_norm', 'activation')
    """
    cls = model_class(name)
    if name in TORCH_MODELS:
        return tuple(cls.hyperparameter_names())
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # without self
    return tuple(parameter.name for parameter in parameters if parameter.kind in named)


def build_network(model: Any, data: Any, num_outputs: int) -> Any:
    """The torch network a ``ModelConfig`` names, for the input groups of a ``DataConfig``."""
    cls = model_class(model.name)
    dims = {name: group.size for name, group in data.inputs.items()}
    if "mask" in cls.input_keys and data.particle_length is None:
        raise ConfigError(
            f"model.name: {model.name} reads particles, but data.inputs has no group with "
            "a `length` (a per-particle group)"
        )
    return cls.from_preset(model.preset, num_outputs, dims, **model.hyperparameters)
