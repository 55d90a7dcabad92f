"""Distillation of a flow-matching jet generator to fewer network passes.

A trained flow (the teacher, ``heplearn.methods.fastsim``) maps noise x₀ to a jet x₁ = ODE(x₀ | c)
deterministically: its sampler is an ordinary differential equation. Sampling it well takes 5
midpoint steps (10 network passes); with the self-attention blocks that give the jets their prongs,
that is most of the cost of a generated jet. Distillation trains a student on the teacher's own
pairs (x₀, x₁), drawn at the conditions ``sample_jets`` draws:

- ``one_step``: the student's one Euler step x₀ + v(x₀, 0 | c) is regressed on x₁ (knowledge
  distillation of an ODE sampler, Luhman & Luhman arXiv:2101.02388): one network pass per jet;
- ``reflow``: the student learns flow matching on the straight lines between the coupled pairs
  (rectified flow, Liu, Gong & Liu arXiv:2209.03003, "2-rectified flow"); the lines no longer
  cross, so few Euler steps follow them.

The student has the teacher's network and starts from its weights; only the time sampling differs
(``start``, t = 0 only, for ``one_step``). It is saved as an ordinary fastsim run directory, with
``distillation.json`` naming the teacher and how its pairs were made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from heplearn.errors import ConfigError
from heplearn.methods.fastsim import (
    FastSim,
    FlowMatchingJets,
    build_network,
    default_training,
    draw_conditions,
    fit_generator,
)

#: How the student learns from the teacher's pairs.
DISTILLATION_MODES = ("one_step", "reflow")

DISTILLATION_FILE = "distillation.json"


@dataclass
class TeacherPairs:
    """The teacher's noise and jets (standardised coordinates), with their conditions."""

    noise: np.ndarray  # (jets, N, 3), zero on padding
    clouds: np.ndarray  # (jets, N, 3): ODE(noise), zero on padding
    mask: np.ndarray
    condition: np.ndarray
    label: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.label)

    def arrays(self, index: np.ndarray | slice = slice(None)) -> Any:
        """The engine's ``JetArrays`` of the pairs at ``index``: the jets as ``particles`` (the
        target), the condition as ``jet`` and the noise as ``noise``."""
        from heplearn.data.jets import JetArrays

        return JetArrays(
            {"particles": self.clouds[index], "jet": self.condition[index], "noise": self.noise[index]},
            self.mask[index],
            self.label[index].astype(np.int64),
            np.ones(len(self.label[index]), np.float32),
        )


def teacher_pairs(
    teacher: FastSim,
    jets_per_class: int,
    *,
    steps: int = 5,
    solver: str = "midpoint",
    seed: int = 0,
    progress: bool = False,
) -> TeacherPairs:
    """``jets_per_class`` jets of every class of ``teacher`` from noise drawn here, by the teacher's ODE
    with ``steps`` steps of ``solver`` (its pT, η and multiplicity drawn as ``sample_jets`` draws them;
    ``progress``: a progress bar)."""
    if teacher.kind != "flow_matching":
        raise ConfigError(f"fastsim distil: the teacher must be a flow-matching generator, not {teacher.kind!r}")
    if not isinstance(teacher.network, FlowMatchingJets) or teacher.network.time_sampling == "start":
        raise ConfigError("fastsim distil: the teacher is itself a one-step student; distil its own teacher")
    if jets_per_class < 1:
        raise ConfigError(f"fastsim distil: at least one pair per class is needed, got {jets_per_class}")
    scaling = teacher.scaling
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    draws = draw_conditions(scaling, dict.fromkeys(scaling.class_names, jets_per_class), None, rng)
    noise = rng.standard_normal((*draws.mask.shape, teacher.network.features)).astype(np.float32)
    noise *= draws.mask[..., None]
    clouds = teacher.generate(draws.condition, draws.mask, steps, solver=solver, noise=noise, progress=progress)
    return TeacherPairs(noise, clouds, draws.mask, draws.condition, draws.label, list(scaling.class_names))


def distil_fastsim(
    teacher: FastSim,
    pairs: TeacherPairs,
    mode: str = "one_step",
    *,
    training: Any = None,
    validation_fraction: float = 0.05,
    run_dir: str | os.PathLike[str] | None = None,
    provenance: dict[str, Any] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> FastSim:
    """A student of ``teacher`` trained on ``pairs`` (``mode``: ``one_step`` or ``reflow``, see the
    module), starting from the teacher's weights; saved to ``run_dir`` with ``distillation.json``
    (``provenance`` plus the mode and the number of pairs)."""
    from heplearn.data.files import write_json

    if mode not in DISTILLATION_MODES:
        raise ConfigError(f"fastsim distil: unknown mode {mode!r}; choose one of {', '.join(DISTILLATION_MODES)}")
    if not 0 <= validation_fraction < 1:
        raise ConfigError(f"fastsim distil: the validation fraction must be in [0, 1), got {validation_fraction}")
    hyper = dict(teacher.hyperparameters)
    hyper.pop("ot_coupling", None)  # the pairs are coupled by the teacher's ODE
    hyper["time_sampling"] = "start" if mode == "one_step" else "uniform"
    network = build_network("flow_matching", teacher.scaling.condition_size, hyper)
    network.load_state_dict(teacher.network.state_dict())
    order = np.random.default_rng(seed).permutation(len(pairs))
    held = round(validation_fraction * len(pairs))
    validation = pairs.arrays(np.sort(order[:held])) if held else None
    torch.manual_seed(seed)
    fit_generator(
        network,
        pairs.arrays(np.sort(order[held:])),
        pairs.class_names,
        training or default_training("flow_matching", epochs=10, ema=0.999),
        validation,
        run_dir,
        seed,
        progress,
    )
    student = FastSim("flow_matching", network, teacher.scaling, hyper)
    if run_dir is not None:
        student.save(run_dir)
        write_json(Path(run_dir) / DISTILLATION_FILE, {**(provenance or {}), "mode": mode, "pairs": len(pairs)})
    return student
