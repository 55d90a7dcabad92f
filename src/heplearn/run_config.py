"""The run config: ``data`` (see ``heplearn.data.config``), ``model`` and ``training`` sections.

One YAML file describes a run; any key can be overridden from the command line
(``--set training.epochs=5``). Every default is filled in and written to the run's
``config.yaml``, so the run directory says exactly how its model was made.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import pydantic

from heplearn.config import StrictModel, apply_overrides, read_yaml, validate
from heplearn.data.config import DataConfig


class ModelConfig(pydantic.BaseModel):
    """``name`` and ``preset``; every other key is a hyper-parameter of that model."""

    model_config = pydantic.ConfigDict(extra="allow")
    name: str
    preset: str = "paper"

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class LossTermConfig(pydantic.BaseModel):
    """One term of ``training.loss``: its ``name``, its ``weight`` and its own settings."""

    model_config = pydantic.ConfigDict(extra="allow")
    name: str
    weight: float = 1.0

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class StepConfig(pydantic.BaseModel):
    """``training.step``: the step strategy's ``name`` and its own settings."""

    model_config = pydantic.ConfigDict(extra="allow")
    name: str = "single"

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TrainingConfig(StrictModel):
    epochs: int = pydantic.Field(default=20, ge=1)
    batch_size: int = pydantic.Field(default=256, ge=1)
    optimizer: Literal["adamw", "radam"] = "adamw"
    lookahead: bool = False
    learning_rate: float = pydantic.Field(default=1e-3, gt=0)
    weight_decay: float = pydantic.Field(default=0.01, ge=0)
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"
    warmup_fraction: float = pydantic.Field(default=0.05, ge=0, lt=1)
    gradient_clip: float | None = pydantic.Field(default=1.0, gt=0)
    mixed_precision: bool = False
    compile: bool = False
    early_stopping_patience: int | None = pydantic.Field(default=5, ge=1)
    class_weights: Literal["balanced"] | list[float] | None = None
    loss: Literal["auto"] | list[LossTermConfig] = "auto"
    step: StepConfig = StepConfig()
    quantiles: list[float] = [0.16, 0.5, 0.84]
    seed: int = 0
    deterministic: bool = False
    checkpoint_every: int | None = pydantic.Field(default=None, ge=1)
    streaming: bool = False
    num_workers: int = pydantic.Field(default=0, ge=0)
    buffer_size: int = pydantic.Field(default=50_000, ge=1)
    max_steps_per_epoch: int | None = pydantic.Field(default=None, ge=1)
    threads: int | None = pydantic.Field(default=None, ge=1)

    @pydantic.field_validator("loss", mode="before")
    @classmethod
    def _one_term_by_name(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "auto":
            return [{"name": value}]
        return value

    @pydantic.field_validator("loss", mode="after")
    @classmethod
    def _known_terms(cls, value: Any) -> Any:
        from heplearn.training.losses import check_term_settings

        if isinstance(value, list):
            for index, term in enumerate(value):
                check_term_settings(term.name, term.settings, f"training.loss[{index}]")
        return value

    @pydantic.field_validator("step", mode="after")
    @classmethod
    def _known_step(cls, value: StepConfig) -> StepConfig:
        from heplearn.training.steps import check_step_settings

        check_step_settings(value.name, value.settings, "training.step")
        return value


class RunConfig(StrictModel):
    data: DataConfig
    model: ModelConfig
    training: TrainingConfig = TrainingConfig()


def load_run_config(source: str | os.PathLike[str] | dict[str, Any], overrides: list[str] | None = None) -> RunConfig:
    """A checked ``RunConfig`` from a YAML file or dict, after ``key=value`` overrides.

    ``data`` may be the path of a data config (relative to the run config's folder).
    """
    content = dict(source) if isinstance(source, dict) else read_yaml(source)
    if isinstance(content.get("data"), str):  # a data config of its own, as in weaver-core
        base = Path(source).parent if not isinstance(source, dict) else Path()
        content["data"] = read_yaml(base / content["data"])
    apply_overrides(content, overrides or [])
    config = validate(RunConfig, content, "")
    _ = config.data.expressions  # parse every expression now: a forbidden name fails here
    return config
