"""The search space of ``heplearn tune``: which keys of a run config vary, over which values.

A YAML file names the figure to optimise and, for each dotted key of the run config (the keys
of ``--set``: ``training.learning_rate``, ``model.hidden``, ``data.inputs.particles.length``), a
float or integer range (optionally logarithmic, optionally stepped) or a list of choices::

    metric: val_auc            # a key of the epochs' records (metrics.jsonl); default val_loss
    direction: maximize        # default minimize
    parameters:
      training.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      training.batch_size: {type: int, low: 64, high: 512, step: 64}
      model.hidden: {type: categorical, choices: [[64, 64], [128, 64, 32]]}

Every key and every end of every range is checked against the run config before any trial
runs (``check_space``): an unknown key, an empty range or a value the config refuses is a
``ConfigError`` naming the key.
"""

from __future__ import annotations

import copy
import json
import math
import os
from typing import Any, Literal

import numpy as np
import pydantic

from heplearn.config import StrictModel, apply_overrides, read_yaml, validate
from heplearn.errors import ConfigError, HeplearnError
from heplearn.models import registry
from heplearn.run_config import RunConfig, load_run_config

SAMPLERS = ("tpe", "nsga2", "random", "grid")
# the values Optuna stores for a categorical parameter as they are; others are stored as JSON text
_PLAIN = (type(None), bool, int, float, str)


class ParameterSpec(StrictModel):
    """One varied key: a float or int range (``low``..``high``, ``log``, ``step``) or ``choices``.

    ``grid_points`` says how many values a continuous float range gets under the grid sampler
    (evenly spaced, logarithmically when ``log``); a stepped range is enumerated by its step.
    """

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = pydantic.Field(default=None, gt=0)
    choices: list[Any] | None = None
    grid_points: int | None = pydantic.Field(default=None, ge=2)

    def check(self, key: str) -> None:
        """The range or choices make sense on their own (an empty range, a log range through 0...)."""
        where = f"search space {key}"
        if self.type == "categorical":
            if not self.choices:
                raise ConfigError(f"{where}: a categorical parameter needs a non-empty list of choices")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ConfigError(f"{where}: a categorical parameter takes choices, not low/high/log/step")
            return
        if self.choices is not None:
            raise ConfigError(f"{where}: a {self.type} parameter takes low and high, not choices")
        if self.low is None or self.high is None:
            raise ConfigError(f"{where}: a {self.type} parameter needs low and high")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ConfigError(f"{where}: low and high must be finite, got [{self.low}, {self.high}]")
        if self.low >= self.high:
            raise ConfigError(f"{where}: empty range [{self.low}, {self.high}] (low must be below high)")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: a log range must be above 0, got low {self.low}")
        if self.log and self.step is not None:
            raise ConfigError(f"{where}: give log or step, not both")
        if self.type == "int":
            for name, value in (("low", self.low), ("high", self.high), ("step", self.step)):
                if value is not None and not float(value).is_integer():
                    raise ConfigError(f"{where}: an int parameter needs an integer {name}, got {value}")
        if self.step is not None and self.step > self.high - self.low:
            raise ConfigError(f"{where}: step {self.step} is wider than the range [{self.low}, {self.high}]")

    def ends(self) -> list[Any]:
        """The values that bound the space (both ends of a range, every choice): what the config must accept."""
        if self.type == "categorical":
            return list(self.choices or [])
        low, high = self.low, self.high
        assert low is not None and high is not None
        if self.type == "int":
            return [int(low), int(high)]
        return [float(low), float(high)]

    def suggest(self, trial: Any, key: str) -> Any:
        """This parameter's value for an Optuna trial (categorical choices that are lists come back as lists)."""
        if self.type == "categorical":
            labels = [choice_label(choice) for choice in self.choices or []]
            label = trial.suggest_categorical(key, labels)
            return (self.choices or [])[labels.index(label)]
        assert self.low is not None and self.high is not None
        if self.type == "int":
            return trial.suggest_int(key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(key, self.low, self.high, step=self.step, log=self.log)

    def grid(self, key: str) -> list[Any]:
        """The values the grid sampler visits (stored form: categorical lists as JSON text)."""
        if self.type == "categorical":
            return [choice_label(choice) for choice in self.choices or []]
        low, high = self.low, self.high
        assert low is not None and high is not None
        if self.type == "int":
            if self.log and self.grid_points:
                values = np.unique(np.round(np.geomspace(low, high, self.grid_points)).astype(int))
                return [int(value) for value in values]
            return list(range(int(low), int(high) + 1, int(self.step or 1)))
        if self.step is not None:
            count = math.floor((high - low) / self.step + 1e-9) + 1
            return [float(low + index * self.step) for index in range(count)]
        if self.grid_points is None:
            raise ConfigError(f"search space {key}: the grid sampler needs a step or grid_points for a float range")
        spaced = np.geomspace(low, high, self.grid_points) if self.log else np.linspace(low, high, self.grid_points)
        return [float(value) for value in spaced]


def choice_label(choice: Any) -> Any:
    """How Optuna stores a choice: plain values as they are, lists and mappings as JSON text."""
    return choice if isinstance(choice, _PLAIN) else json.dumps(choice)


class SearchSpace(StrictModel):
    """The search-space file: the metric, its direction and the varied keys."""

    metric: str = "val_loss"
    direction: Literal["minimize", "maximize"] = "minimize"
    parameters: dict[str, ParameterSpec]


def load_space(source: str | os.PathLike[str] | dict[str, Any]) -> SearchSpace:
    """A ``SearchSpace`` from a YAML file or dict (keys checked on their own, not yet against a config)."""
    content = dict(source) if isinstance(source, dict) else read_yaml(source)
    space = validate(SearchSpace, content, "")
    if not space.parameters:
        raise ConfigError("parameters: the search space names no parameter")
    for key, spec in space.parameters.items():
        spec.check(key)
    return space


def config_with(base: dict[str, Any], values: dict[str, Any]) -> RunConfig:
    """The run config ``base`` (a dict, as read from YAML) with the space's ``values`` set."""
    content = copy.deepcopy(base)
    for key, value in values.items():
        apply_overrides(content, [f"{key}=null"])  # makes the sections on the way (or names a parent that is none)
        node = content
        for part in key.split(".")[:-1]:
            node = node[part]
        node[key.split(".")[-1]] = value
    return load_run_config(content)


def check_space(space: SearchSpace, base: dict[str, Any], sampler: str = "tpe") -> None:
    """Everything about ``space`` that can fail, checked before any trial: keys, ranges, the sampler's needs.

    Each key must be one the run config knows (a field of ``data`` or ``training``, or one of
    the model's hyper-parameters), and both ends of its range (every choice) must give a valid
    config; the grid sampler needs a finite grid.
    """
    from heplearn.training.from_config import check_config

    if sampler not in SAMPLERS:
        raise ConfigError(f"--sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    config = load_run_config(base)
    model_name = config.model.name
    known_model_keys = {"preset", *registry.hyperparameter_names(model_name)}
    for key, spec in space.parameters.items():
        parts = key.split(".")
        if len(parts) < 2 or parts[0] not in RunConfig.model_fields:
            raise ConfigError(
                f"search space {key}: not a key of a run config (give section.key, e.g. "
                "training.learning_rate or model.<hyper-parameter>)"
            )
        if parts[0] == "model":
            if parts[1] == "name":
                raise ConfigError(
                    f"search space {key}: the model cannot vary within a study (its hyper-parameters "
                    "differ); run one study per model"
                )
            if parts[1] not in known_model_keys:
                raise ConfigError(
                    f"search space {key}: unknown key: {model_name} has no hyper-parameter "
                    f"{parts[1]!r} (known: {', '.join(sorted(known_model_keys))})"
                )
        for value in spec.ends():
            try:
                check_config(config_with(base, {key: value}))
            except HeplearnError as error:
                raise ConfigError(f"search space {key} = {value!r}: {error}") from None
            except (TypeError, ValueError) as error:  # a network refusing the value in its constructor
                raise ConfigError(f"search space {key} = {value!r}: {error}") from None
        if sampler == "grid":
            spec.grid(key)
    if space.metric.startswith("val_") and not config.data.val:
        raise ConfigError(
            f"metric {space.metric}: the run config has no validation split (data.val); give one or "
            "optimise a train_ metric"
        )


def grid_of(space: SearchSpace) -> dict[str, list[Any]]:
    """The grid sampler's search space: every key's values."""
    return {key: spec.grid(key) for key, spec in space.parameters.items()}


def grid_size(space: SearchSpace) -> int:
    """How many points the grid has."""
    return math.prod(len(values) for values in grid_of(space).values())
