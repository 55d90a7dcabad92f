"""The model zoo: one module per architecture, found through ``heplearn.models.registry``.

    from heplearn.models import model_names, model_class
    model_names()            # ['cuts', 'likelihood', 'bdt', 'mlp', 'pfn', ...]
    model_class("part")      # ParticleTransformer

Names are imported on first use (``heplearn._lazy``): listing the zoo imports no architecture.
"""

from __future__ import annotations

from heplearn._lazy import lazy_api

__getattr__, __dir__ = lazy_api(
    __name__,
    {
        "heplearn.models.registry": [
            "model_names",
            "model_class",
            "is_torch_model",
            "hyperparameter_names",
            "build_network",
        ],
    },
)
__all__ = ["build_network", "hyperparameter_names", "is_torch_model", "model_class", "model_names"]
