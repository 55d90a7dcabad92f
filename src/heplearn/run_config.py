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

    model_config = pydantic.ConfigDict(extra="allow", use_attribute_docstrings=True)
    name: str
    """The model's name in the zoo (``pfn``, ``particlenet``, ``part``, ``bdt``, ...)."""
    preset: str = "paper"
    """A named set of hyper-parameters: ``paper`` (the published model), ``lite``, ``small``."""

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The model's hyper-parameters: every key of ``model`` other than ``name`` and ``preset``."""
        return dict(self.model_extra or {})


class LossTermConfig(pydantic.BaseModel):
    """One term of ``training.loss``: its ``name``, its ``weight`` and its own settings."""

    model_config = pydantic.ConfigDict(extra="allow", use_attribute_docstrings=True)
    name: str
    """The loss term (``cross_entropy``, ``quantile``, ``disco``, ...)."""
    weight: float = 1.0
    """Its weight in the total loss."""

    @property
    def settings(self) -> dict[str, Any]:
        """The term's own settings: every key other than ``name`` and ``weight``."""
        return dict(self.model_extra or {})


class StepConfig(pydantic.BaseModel):
    """``training.step``: the step strategy's ``name`` and its own settings."""

    model_config = pydantic.ConfigDict(extra="allow", use_attribute_docstrings=True)
    name: str = "single"
    """The step strategy (``single``, or a second network's: ``adversary``, ``domain``, ...)."""

    @property
    def settings(self) -> dict[str, Any]:
        """The strategy's own settings: every key other than ``name``."""
        return dict(self.model_extra or {})


class TrainingConfig(StrictModel):
    """The ``training`` section: the optimiser, schedule, epochs, batches, seeds, checkpoints and streaming."""

    epochs: int = pydantic.Field(default=20, ge=1)
    """Passes over the training data."""
    batch_size: int = pydantic.Field(default=256, ge=1)
    """Jets per step."""
    optimizer: Literal["adamw", "radam"] = "adamw"
    """AdamW or RAdam."""
    lookahead: bool = False
    """Wrap the optimiser in Lookahead (RAdam + Lookahead is weaver-core's Ranger)."""
    learning_rate: float = pydantic.Field(default=1e-3, gt=0)
    """Peak learning rate."""
    weight_decay: float = pydantic.Field(default=0.01, ge=0)
    """Decoupled weight decay."""
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"
    """Learning-rate schedule after the warm-up: cosine decay, one-cycle (linear to 1%) or constant."""
    warmup_fraction: float = pydantic.Field(default=0.05, ge=0, lt=1)
    """Fraction of all steps with a linear warm-up."""
    gradient_clip: float | None = pydantic.Field(default=1.0, gt=0)
    """Clip the gradient norm to this (none: no clipping)."""
    mixed_precision: bool = False
    """bfloat16 autocast on the CPU."""
    compile: bool = False
    """``torch.compile`` the network."""
    early_stopping_patience: int | None = pydantic.Field(default=5, ge=1)
    """Stop after this many epochs without a better validation loss (none: never)."""
    class_weights: Literal["balanced"] | list[float] | None = None
    """``balanced`` (Σw equal per class) or one weight per class."""
    loss: Literal["auto"] | list[LossTermConfig] = "auto"
    """``auto`` (the task's default) or a list of named, weighted loss terms."""
    step: StepConfig = StepConfig()
    """The step strategy and its settings."""
    quantiles: list[float] = [0.16, 0.5, 0.84]
    """Quantiles a ``quantile`` regression predicts."""
    bins: int = pydantic.Field(default=10, ge=2)
    """Bins of a ``summary_statistic`` task: its outputs, the learned histogram ``inferno`` fits."""
    seed: int = 0
    """Seed of the weights, the shuffling and every random draw."""
    deterministic: bool = False
    """Deterministic algorithms: a resumed run ends with the same weights as an uninterrupted one."""
    checkpoint_every: int | None = pydantic.Field(default=None, ge=1)
    """Write a checkpoint every this many steps (and at each epoch's end)."""
    streaming: bool = False
    """Stream the files instead of loading them into memory."""
    num_workers: int = pydantic.Field(default=0, ge=0)
    """DataLoader worker processes of a streaming run."""
    buffer_size: int = pydantic.Field(default=50_000, ge=1)
    """Jets in the streaming shuffle buffer."""
    max_steps_per_epoch: int | None = pydantic.Field(default=None, ge=1)
    """Cap on the steps of one epoch (short epochs on big samples; none: the whole split)."""
    threads: int | None = pydantic.Field(default=None, ge=1)
    """torch's CPU threads (none: torch's default)."""

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
    """A whole run config: ``data``, ``model`` and ``training``."""

    data: DataConfig
    """What to read and how to make batches."""
    model: ModelConfig
    """Which model, with which hyper-parameters."""
    training: TrainingConfig = TrainingConfig()
    """How to train."""


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
