"""Event generation: Pythia 8 process cards, the parallel driver, the parametric detector (and its
profiles), Pythia variations, FastJet clustering and substructure, tracks and secondary vertices,
NanoAOD-layout event samples, and the analytic Neyman–Pearson toy.

    from heplearn.generate import generate
    summary = generate(["top", "qcd"], 10_000, "data/top-vs-qcd", seed=1, workers=2)

Names are loaded on first use, so importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from heplearn.generate.chunk import generate_jets
    from heplearn.generate.detector import DETECTOR_PROFILES, DetectorConfig, apply_detector, load_detector
    from heplearn.generate.driver import GenerationSummary, generate
    from heplearn.generate.event_driver import generate_events_sample
    from heplearn.generate.nanoaod import EVENT_PROCESSES, EventOptions, generate_events
    from heplearn.generate.processes import PROCESSES, GeneratorOptions, ProcessCard, get_card
    from heplearn.generate.substructure import jet_nsubjettiness, jet_sdmass, substructure_fields
    from heplearn.generate.toy import ToyModel, generate_toy, write_toy
    from heplearn.generate.variations import VARIATIONS

_EXPORTS = {
    "generate": "driver",
    "GenerationSummary": "driver",
    "generate_jets": "chunk",
    "GeneratorOptions": "processes",
    "ProcessCard": "processes",
    "PROCESSES": "processes",
    "get_card": "processes",
    "DetectorConfig": "detector",
    "DETECTOR_PROFILES": "detector",
    "apply_detector": "detector",
    "load_detector": "detector",
    "generate_events_sample": "event_driver",
    "EVENT_PROCESSES": "nanoaod",
    "EventOptions": "nanoaod",
    "generate_events": "nanoaod",
    "VARIATIONS": "variations",
    "jet_sdmass": "substructure",
    "jet_nsubjettiness": "substructure",
    "substructure_fields": "substructure",
    "generate_toy": "toy",
    "write_toy": "toy",
    "ToyModel": "toy",
}

__all__ = [
    "DETECTOR_PROFILES",
    "EVENT_PROCESSES",
    "PROCESSES",
    "VARIATIONS",
    "DetectorConfig",
    "EventOptions",
    "GenerationSummary",
    "GeneratorOptions",
    "ProcessCard",
    "ToyModel",
    "apply_detector",
    "generate",
    "generate_events",
    "generate_events_sample",
    "generate_jets",
    "generate_toy",
    "get_card",
    "jet_nsubjettiness",
    "jet_sdmass",
    "load_detector",
    "substructure_fields",
    "write_toy",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'heplearn.generate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"heplearn.generate.{module}"), name)


def __dir__() -> list[str]:
    return __all__
