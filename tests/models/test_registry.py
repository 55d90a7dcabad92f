"""The registry is the one list of models: every model class of the package is in it, by its name.

The model suites (``test_common.py``, ``test_particle_models.py``, the facade round trip in
``tests/test_api.py``) take their cases from the registry; discovering the classes by walking the
package (as scikit-learn's ``all_estimators`` does) makes sure no model escapes the registry.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import heplearn.models
from heplearn.errors import ConfigError
from heplearn.models import registry
from heplearn.models.base import JetClassifier
from heplearn.models.nn_base import ParticleModel


def discovered_models() -> dict[str, type]:
    """Every public, concrete model class defined in ``heplearn.models``, by qualified name."""
    found: dict[str, type] = {}
    for module_info in pkgutil.iter_modules(heplearn.models.__path__, "heplearn.models."):
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            is_model = issubclass(cls, JetClassifier | ParticleModel) and cls not in (JetClassifier, ParticleModel)
            public = not cls.__name__.startswith("_")  # private bases, as _DeepSets, are not models
            if is_model and public and cls.__module__ == module.__name__ and not inspect.isabstract(cls):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_model_class_of_the_package_is_registered() -> None:
    registered = {
        f"{module}.{attribute}"
        for module, attribute in (*registry.TORCH_MODELS.values(), *registry.CLASSICAL_MODELS.values())
    }
    assert set(discovered_models()) == registered


@pytest.mark.parametrize("name", registry.model_names())
def test_names_classes_and_hyperparameters_agree(name: str) -> None:
    cls = registry.model_class(name)
    assert issubclass(cls, ParticleModel if registry.is_torch_model(name) else JetClassifier)
    if registry.is_torch_model(name):
        assert cls.name == name
        assert registry.hyperparameter_names(name) == cls.hyperparameter_names()
    else:
        assert set(registry.hyperparameter_names(name)) == set(cls().get_params())


def test_an_unknown_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        registry.hyperparameter_names("nope")
