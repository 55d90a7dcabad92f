"""The analysis config: one YAML file from the samples to the fit, validated like the run configs.

```yaml
name: top_fraction
output: analysis/top_fraction           # relative to the working directory
generation: {workers: 2}                # how to generate (not part of any output's key)
samples:                                # jets per process; split given: one labelled mixture
  training: {processes: [top, qcd], jets: 2000, split: [0.7, 0.15, 0.15], seed: 1}
  templates: {processes: [top, qcd], jets: 1500, seed: 2}           # no split: one file per process
  fsr_up: {processes: [top, qcd], jets: 1000, seed: 3, variation: fsr-up}
  fsr_down: {processes: [top, qcd], jets: 1000, seed: 3, variation: fsr-down}
pseudo_data: {jets: 3000, fractions: {top: 0.1, qcd: 0.9}, seed: 4}  # the hidden truth
training: training                      # the sample the models train and are evaluated on
models:
  bdt: {config: top_qcd_bdt.yaml, set: {model.n_estimators: 200}}   # relative to this file
  cuts: {config: top_qcd_cuts.yaml, export: false}                 # scored by the torch engine
evaluation: {importance: false}
fit: {signal: top, background: qcd, templates: templates, systematics: {fsr: {up: fsr_up, down: fsr_down}}}
```

A sample may name existing files instead of ``jets`` (``files: {train: ..., val: ..., test: ...}``
for a split sample, ``files: {top: ..., qcd: ...}`` for one file per process); their key is then
the SHA-256 of their bytes. Every typo is a ``ConfigError`` that names the key.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import pydantic

from heplearn.config import StrictModel, apply_overrides, read_yaml, validate
from heplearn.errors import ConfigError

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
SPLITS = ("train", "val", "test")


def _check_name(name: str, where: str) -> None:
    if not NAME.match(name):
        raise ValueError(f"{where} {name!r}: use lower-case letters, digits and _ (it names folders and rules)")


def _generate_options() -> set[str]:
    """The option names of ``heplearn generate`` (``pt_min``, ``radius``, ...), to check ``generator`` keys."""
    from heplearn.generate.cli import generate_command

    handled = {
        "processes",
        "output",
        "jets",
        "workers",
        "seed",
        "split",
        "variation",
        "detector",
        "pythia",
        "progress",
        "events",
        "scheduler",
    }
    return set(inspect.signature(generate_command).parameters) - handled


class GenerationSettings(StrictModel):
    """How samples are made; none of this changes the jets (each chunk is seeded), so it keys nothing."""

    workers: int = pydantic.Field(default=1, ge=1)
    chunk_size: int | None = pydantic.Field(default=None, ge=1)


class _Generated(StrictModel):
    """What a generated sample shares: its seed and generator settings, or existing ``files``."""

    files: dict[str, str] | None = None
    seed: int = 0
    variation: str | None = None
    detector: str | None = None
    pythia: dict[str, str | int | float] = {}
    generator: dict[str, str | int | float | bool] = {}

    @pydantic.field_validator("generator")
    @classmethod
    def _known_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - _generate_options())
        if unknown:
            raise ValueError(
                f"unknown generator option(s) {', '.join(unknown)}; choose from "
                f"{', '.join(sorted(_generate_options()))}"
            )
        return value


class SampleConfig(_Generated):
    """Jets of some processes: generated (``jets`` per process) or existing ``files``."""

    processes: list[str] = pydantic.Field(min_length=1)
    jets: int | None = pydantic.Field(default=None, ge=1)
    split: tuple[float, float, float] | None = None

    @pydantic.model_validator(mode="after")
    def _jets_or_files(self) -> SampleConfig:
        if (self.jets is None) == (self.files is None):
            raise ValueError("give either jets (to generate) or files (existing ones), not both")
        if self.split is not None and (any(f < 0 for f in self.split) or abs(sum(self.split) - 1) > 1e-6):
            raise ValueError(f"split {list(self.split)}: three fractions >= 0 that sum to 1")
        if self.files is not None:
            expected = set(SPLITS) if self.split is not None else set(self.processes)
            if set(self.files) != expected:
                what = "the splits train, val, test" if self.split is not None else "one file per process"
                raise ValueError(
                    f"files: give {what} ({', '.join(sorted(expected))}), got {', '.join(sorted(self.files))}"
                )
        return self

    def jets_per_process(self) -> dict[str, int]:
        """Jets to generate of each process."""
        assert self.jets is not None
        return dict.fromkeys(self.processes, self.jets)


class PseudoDataConfig(_Generated):
    """The "data": ``jets`` in all, mixed from processes at the given ``fractions`` (the hidden truth)."""

    jets: int | None = pydantic.Field(default=None, ge=2)
    fractions: dict[str, float] = pydantic.Field(min_length=1)

    @pydantic.model_validator(mode="after")
    def _fractions(self) -> PseudoDataConfig:
        if (self.jets is None) == (self.files is None):
            raise ValueError("give either jets (to generate) or files (existing ones, one per process)")
        if any(f < 0 for f in self.fractions.values()) or abs(sum(self.fractions.values()) - 1) > 1e-6:
            raise ValueError(f"fractions {self.fractions}: values >= 0 that sum to 1")
        if self.files is not None and set(self.files) != set(self.fractions):
            raise ValueError(f"files: give one file per process of fractions ({', '.join(sorted(self.fractions))})")
        return self

    @property
    def processes(self) -> list[str]:
        """The processes mixed, in the order of ``fractions``."""
        return list(self.fractions)

    def jets_per_process(self) -> dict[str, int]:
        """Jets of each process: the fractions of ``jets``, rounded (their sum is ``jets``)."""
        assert self.jets is not None
        names = list(self.fractions)
        counts = {name: round(self.fractions[name] * self.jets) for name in names[:-1]}
        counts[names[-1]] = self.jets - sum(counts.values())
        return counts


class ModelEntry(StrictModel):
    """A run config of ``configs/`` (or any), with ``set`` overrides as ``heplearn train --set`` takes them."""

    config: str
    set: dict[str, Any] = {}
    export: bool = True  # ONNX (then predicted by onnxruntime); false: predicted by the torch engine


class EvaluationSettings(StrictModel):
    """What ``heplearn evaluate`` adds beyond the metrics (each costs time)."""

    importance: bool = False
    overtraining: bool = True
    label: str | None = None


class SystematicSamples(StrictModel):
    """The per-process samples of a variation: +1σ, and −1σ when there is one (else the +1σ is mirrored)."""

    up: str
    down: str | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        return {"up": value} if isinstance(value, str) else value

    @property
    def samples(self) -> list[str]:
        """The sample names, +1σ first."""
        return [self.up] if self.down is None else [self.up, self.down]


class FitConfig(StrictModel):
    """The template fit of the pseudo-data: the signal fraction with systematic variations."""

    signal: str
    background: str
    templates: str
    systematics: dict[str, SystematicSamples] = {}  # name -> {up: sample, down: sample} (or the +1σ sample alone)
    bins: int = pydantic.Field(default=20, ge=1)
    low: float = 0.0
    high: float = 1.0
    expected_fraction: float | None = None
    background_uncertainty: float | None = None
    lumi_uncertainty: float = pydantic.Field(default=0.0, ge=0)
    mc_statistics: Literal["staterror", "shapesys", "none"] = "staterror"
    unbinned: bool = True
    limit: bool = True
    scan_2d: bool = True
    scan_points: int = pydantic.Field(default=21, ge=5)


class AnalysisConfig(StrictModel):
    """The whole analysis; ``base`` (not a key of the file) is the folder model configs are relative to."""

    name: str
    output: str = "analysis"
    generation: GenerationSettings = GenerationSettings()
    samples: dict[str, SampleConfig] = pydantic.Field(min_length=1)
    pseudo_data: PseudoDataConfig
    training: str
    models: dict[str, ModelEntry] = pydantic.Field(min_length=1)
    evaluation: EvaluationSettings = EvaluationSettings()
    fit: FitConfig
    base: str = pydantic.Field(default=".", exclude=True)

    @pydantic.model_validator(mode="after")
    def _references(self) -> AnalysisConfig:
        for name in self.samples:
            _check_name(name, "samples:")
        for name in self.models:
            _check_name(name, "models:")
        if "pseudo_data" in self.samples:
            raise ValueError("samples: 'pseudo_data' is the name of the pseudo-data; choose another")
        training = self.samples.get(self.training)
        if training is None:
            raise ValueError(f"training: {self.training!r} is not a sample ({', '.join(self.samples)})")
        if training.split is None:
            raise ValueError(f"training: sample {self.training!r} needs a split (train, val, test fractions)")
        fit = self.fit
        variations = [
            (f"systematics.{name}", sample) for name, pair in fit.systematics.items() for sample in pair.samples
        ]
        for role, sample_name in [("templates", fit.templates), *variations]:
            sample = self.samples.get(sample_name)
            if sample is None:
                raise ValueError(f"fit.{role}: {sample_name!r} is not a sample ({', '.join(self.samples)})")
            if sample.split is not None:
                raise ValueError(
                    f"fit.{role}: sample {sample_name!r} has a split; templates come one file per "
                    "process (leave split out)"
                )
            missing = {fit.signal, fit.background} - set(sample.processes)
            if missing and role == "templates":
                raise ValueError(f"fit.templates: sample {sample_name!r} lacks {', '.join(sorted(missing))}")
            if not {fit.signal, fit.background} & set(sample.processes):
                raise ValueError(f"fit.{role}: sample {sample_name!r} has neither {fit.signal} nor {fit.background}")
        if fit.signal not in self.pseudo_data.fractions:
            raise ValueError(f"fit.signal: {fit.signal!r} is not a process of pseudo_data.fractions")
        self._distinct_jets()
        return self

    def _distinct_jets(self) -> None:
        """Two generated samples of one process with the same seed and settings would hold the same jets."""
        seen: dict[tuple[str, str], str] = {}
        generated: list[tuple[str, _Generated, list[str]]] = [
            (f"samples.{name}", sample, sample.processes) for name, sample in self.samples.items()
        ]
        generated.append(("pseudo_data", self.pseudo_data, self.pseudo_data.processes))
        for where, sample, processes in generated:
            if sample.files is not None:
                continue
            settings = json.dumps(
                [sample.seed, sample.variation, sample.detector, sample.pythia, sample.generator], sort_keys=True
            )
            for process in processes:
                other = seen.setdefault((process, settings), where)
                if other != where:
                    raise ValueError(
                        f"{where}: its {process} jets would be those of {other} (same seed and "
                        "settings); give it another seed"
                    )

    def model_config_path(self, name: str) -> Path:
        """The run config of model ``name``, relative to the analysis file's folder."""
        return Path(self.base) / self.models[name].config


def load_analysis_config(source: str | os.PathLike[str], overrides: list[str] | None = None) -> AnalysisConfig:
    """A checked ``AnalysisConfig`` from a YAML file, after ``key=value`` overrides (``--set``)."""
    content = read_yaml(source)
    apply_overrides(content, overrides or [])
    if "base" in content:
        raise ConfigError(f"{source}: base: unknown key")
    content["base"] = str(Path(source).resolve().parent)
    try:
        config = validate(AnalysisConfig, content, "")
    except ConfigError as error:  # pydantic's "Value error, " adds nothing: each message names its key
        raise ConfigError(f"{source}: " + str(error).replace("Value error, ", "").removeprefix(": ")) from None
    for name in config.models:
        path = config.model_config_path(name)
        if not path.is_file():
            raise ConfigError(f"models.{name}.config: {path}: no such run config")
    return config


__all__ = [
    "AnalysisConfig",
    "EvaluationSettings",
    "FitConfig",
    "GenerationSettings",
    "ModelEntry",
    "PseudoDataConfig",
    "SampleConfig",
    "SystematicSamples",
    "load_analysis_config",
]
