"""heplearn: machine learning for collider physics, from simulated events to a physics result."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from heplearn._lazy import lazy_api

try:
    __version__ = version("heplearn")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# The public API, imported on first use so that `import heplearn` (and the CLI) stays fast:
# the notebook interface, the configs, and the entry point of every stage of the chain (generation's is
# heplearn.generate.generate: the subpackage holds the name ``generate``).
_MODULES = {
    "heplearn.classifier": ["Classifier", "load_jets"],
    "heplearn.trained_model": ["TrainedModel"],
    "heplearn.training.from_config": ["train"],
    "heplearn.run_config": ["load_run_config"],
    "heplearn.data.config": ["load_data_config", "DataConfig"],
    "heplearn.errors": ["HeplearnError"],
    "heplearn.evaluation.evaluate": ["evaluate_run"],
    "heplearn.evaluation.compare": ["compare_runs"],
    "heplearn.serving.export": ["export_run"],
    "heplearn.serving.predict": ["predict_files"],
    "heplearn.serving.server": ["serve"],
    "heplearn.stats.fitting": ["fit_inputs"],
    "heplearn.analysis.engine": ["run_analysis"],
}
__all__ = [  # noqa: RUF022 - the version first, then the API in reading order
    "__version__",
    "Classifier",
    "load_jets",
    "TrainedModel",
    "train",
    "load_run_config",
    "load_data_config",
    "DataConfig",
    "HeplearnError",
    "evaluate_run",
    "compare_runs",
    "export_run",
    "predict_files",
    "serve",
    "fit_inputs",
    "run_analysis",
]
__getattr__, _api_names = lazy_api(__name__, _MODULES)


def __dir__() -> list[str]:
    return ["__version__", *_api_names()]
