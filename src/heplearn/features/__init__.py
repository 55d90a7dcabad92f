"""Representations of jets: per-particle features, pairwise features and jet images.

Names are imported on first use (``heplearn._lazy``).
"""

from __future__ import annotations

from heplearn._lazy import lazy_api

__getattr__, __dir__ = lazy_api(
    __name__,
    {
        "heplearn.features.images": ["jet_images", "calorimeter_images"],
        "heplearn.features.particles": ["FlatParticles", "VariableTable", "wrap_phi"],
    },
)
__all__ = ["FlatParticles", "VariableTable", "calorimeter_images", "jet_images", "wrap_phi"]
