"""The run config's sections, where training code has always found them (see ``heplearn.run_config``)."""

from heplearn.run_config import LossTermConfig, ModelConfig, RunConfig, StepConfig, TrainingConfig, load_run_config

__all__ = ["LossTermConfig", "ModelConfig", "RunConfig", "StepConfig", "TrainingConfig", "load_run_config"]
