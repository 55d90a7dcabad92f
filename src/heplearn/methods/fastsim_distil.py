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
  cross, so few Euler steps follow them;
- ``adversarial``: the one-step regression plus a conditional GAN term (``AdversarialDistillationStep``).
  The regression alone learns the mean of what the teacher makes of each noise, E[x₁ | x₀], and
  the mean of several placements of a prong is no prong: the one-step students lose the top jets'
  three-prong structure that their teacher has. A discriminator that tells the teacher's jets from
  the student's, at the same conditions, penalises exactly that (Kang et al. arXiv:2405.05967,
  "Diffusion2GAN": distillation as paired translation, a regression loss plus a conditional GAN).

The student has the teacher's network and starts from its weights, or from an earlier one-step
student's (``student``: the adversarial term is then a fine-tuning of it); only the time sampling
differs (``start``, t = 0 only, for ``one_step`` and ``adversarial``). It is saved as an ordinary
fastsim run directory, with ``distillation.json`` naming the teacher and how its pairs were made.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from typing_extensions import override

from heplearn.config import StrictModel
from heplearn.errors import ConfigError
from heplearn.methods.fastsim import (
    Discriminator,
    FastSim,
    FlowMatchingJets,
    build_network,
    default_training,
    draw_conditions,
    fit_generator,
    per_jet_squared_error,
    update_average,
    update_discriminator,
)
from heplearn.tasks import Batch
from heplearn.training.losses import weighted_mean
from heplearn.training.steps import StepContext, StepStrategy, autocast, optimise, register_step_strategy

#: How the student learns from the teacher's pairs, with the time sampling of each mode's student.
_STUDENT_TIMES = {"one_step": "start", "reflow": "uniform", "adversarial": "start"}
DISTILLATION_MODES = tuple(_STUDENT_TIMES)

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
    ``progress``: a progress bar). A teacher of several detector profiles gets them in equal shares."""
    if teacher.kind != "flow_matching":
        raise ConfigError(f"fastsim distil: the teacher must be a flow-matching generator, not {teacher.kind!r}")
    if not isinstance(teacher.network, FlowMatchingJets) or teacher.network.time_sampling == "start":
        raise ConfigError("fastsim distil: the teacher is itself a one-step student; distil its own teacher")
    if jets_per_class < 1:
        raise ConfigError(f"fastsim distil: at least one pair per class is needed, got {jets_per_class}")
    scaling = teacher.scaling
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    shares = np.diff(np.linspace(0, jets_per_class, len(scaling.detectors) + 1).round().astype(int))
    draws = [
        draw_conditions(scaling, dict.fromkeys(scaling.class_names, int(share)), None, rng, detector)
        for detector, share in zip(scaling.detectors, shares, strict=True)
    ]
    mask = np.concatenate([draw.mask for draw in draws])
    condition = np.concatenate([draw.condition for draw in draws])
    noise = rng.standard_normal((*mask.shape, teacher.network.features)).astype(np.float32)
    noise *= mask[..., None]
    clouds = teacher.generate(condition, mask, steps, solver=solver, noise=noise, progress=progress)
    label = np.concatenate([draw.label for draw in draws])
    return TeacherPairs(noise, clouds, mask, condition, label, list(scaling.class_names))


class AdversarialDistillationSettings(StrictModel):
    """``training.step: {name: adversarial_distillation, ...}``: the weight of the GAN term beside the
    regression, the discriminator's network and learning rate, and the student's weight average."""

    weight: float = 0.2
    hidden: int = 64
    layers: int = 3
    attention: int = 2
    pair_bias: int = 16
    learning_rate: float | None = None
    discriminator_steps: int = 1
    ema: float | None = 0.999


class AdversarialDistillationStep(StepStrategy):
    """One-step distillation with a conditional GAN term (Kang et al. arXiv:2405.05967).

    A batch holds the teacher's pairs: its noise x₀ (``noise``), its jet x₁ (``particles``), the
    condition and mask. The student's jet is x̂ = x₀ + v(x₀, 0 | c). The discriminator D(x, c) sees
    the teacher's x₁ as real and x̂ as fake, at the same condition and mask, with the least-squares
    losses of ``GanStep``; the student minimises

        ‖x̂ − x₁‖² (mean over real particles and features, the ``one_step`` objective)
        + weight · ½ (D(x̂, c) − 1)².

    ``loss`` is that sum; ``regression``, ``adversarial`` and ``discriminator_loss`` are logged beside
    it. With ``ema``, the module ``ema`` holds the moving average of the student's weights, which
    ``fit_generator`` keeps as the generator."""

    name = "adversarial_distillation"
    Settings = AdversarialDistillationSettings

    def __init__(self, context: StepContext, settings: AdversarialDistillationSettings) -> None:
        super().__init__()
        model = context.model
        if not isinstance(model, FlowMatchingJets) or model.time_sampling != "start":
            raise ConfigError("training.step: adversarial_distillation trains a one-step flow-matching student")
        if settings.weight < 0 or settings.discriminator_steps < 1:
            raise ConfigError(
                "training.step: adversarial_distillation needs weight >= 0 and discriminator_steps >= 1, got "
                f"{settings.weight} and {settings.discriminator_steps}"
            )
        if settings.ema is not None and not 0.0 < settings.ema < 1.0:
            raise ConfigError(f"training.step.ema: the EMA decay must lie in (0, 1), got {settings.ema}")
        self.training, self.settings, self.student = context.training, settings, model
        discriminator = Discriminator(
            model.condition_size,
            settings.hidden,
            16,
            settings.layers,
            model.features,
            attention=settings.attention,
            pair_bias=settings.pair_bias,
        )
        self.discriminator = context.wrap(discriminator)
        discriminator_training = context.training.model_copy(
            update={"learning_rate": settings.learning_rate or context.training.learning_rate}
        )
        self.add_module("model", model, context.training, context.total_steps)
        self.add_module(
            "discriminator", discriminator, discriminator_training, context.total_steps * settings.discriminator_steps
        )
        if settings.ema is not None:
            self.modules["ema"] = copy.deepcopy(model).requires_grad_(False)

    def _student_jets(self, noise: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        start = torch.zeros(len(noise), dtype=noise.dtype)
        return (noise + self.student.velocity_at(noise, start, condition, mask)) * mask.unsqueeze(-1).to(noise.dtype)

    @override
    def step(self, batch: Batch, step_index: int) -> dict[str, float]:
        teacher, condition, mask = batch["particles"].float(), batch["jet"].float(), batch["mask"]
        noise = batch["noise"].float()
        discriminator_loss = torch.zeros(())
        for _ in range(self.settings.discriminator_steps):
            with torch.no_grad(), autocast(self.training):
                fake = self._student_jets(noise, condition, mask)
            discriminator_loss = update_discriminator(
                self, self.discriminator, teacher, fake, condition, mask, self.training.gradient_clip
            )
        with autocast(self.training):
            fake = self._student_jets(noise, condition, mask)
        regression = weighted_mean(per_jet_squared_error(fake, teacher, mask), batch["weight"])
        adversarial = torch.zeros(())
        if self.settings.weight:
            adversarial = 0.5 * (self.discriminator(fake, condition, mask) - 1).square().mean()
        loss = regression + self.settings.weight * adversarial
        optimise(
            loss, self.modules["model"], self.optimizers["model"], self.schedulers["model"], self.training.gradient_clip
        )
        if self.settings.ema is not None:
            update_average(self.modules["ema"], self.modules["model"], self.settings.ema, step_index)
        return {
            "loss": float(loss.detach()),
            "regression": float(regression.detach()),
            "adversarial": float(adversarial.detach()),
            "discriminator_loss": float(discriminator_loss.detach()),
        }


register_step_strategy(AdversarialDistillationStep)


def adversarial_training(
    epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 3e-4,
    ema: float | None = 0.999,
    weight: float = AdversarialDistillationSettings().weight,
) -> Any:
    """The training settings of ``adversarial`` distillation: ``default_training``'s, with the
    ``adversarial_distillation`` step (``weight``: the GAN term's, ``ema``: the student's average)."""
    from heplearn.run_config import StepConfig

    training = default_training("flow_matching", epochs, batch_size, learning_rate)
    return training.model_copy(
        update={
            "step": StepConfig.model_validate({"name": AdversarialDistillationStep.name, "weight": weight, "ema": ema})
        }
    )


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
    student: FastSim | None = None,
) -> FastSim:
    """A student of ``teacher`` trained on ``pairs`` (``mode``: ``one_step``, ``reflow`` or
    ``adversarial``, see the module), starting from the teacher's weights or from ``student``'s (a
    one-step student of the same network); saved to ``run_dir`` with ``distillation.json``
    (``provenance`` plus the mode and the number of pairs). The validation pairs measure the regression."""
    from heplearn.data.files import write_json

    if mode not in DISTILLATION_MODES:
        raise ConfigError(f"fastsim distil: unknown mode {mode!r}; choose one of {', '.join(DISTILLATION_MODES)}")
    if not 0 <= validation_fraction < 1:
        raise ConfigError(f"fastsim distil: the validation fraction must be in [0, 1), got {validation_fraction}")
    hyper = student_hyperparameters(teacher, mode)
    if student is not None:
        check_student(student, teacher, mode)
    network = build_network("flow_matching", teacher.scaling.condition_size, hyper)
    network.load_state_dict((student or teacher).network.state_dict())
    order = np.random.default_rng(seed).permutation(len(pairs))
    held = round(validation_fraction * len(pairs))
    validation = pairs.arrays(np.sort(order[:held])) if held else None
    if training is None:
        if mode == "adversarial":
            training = adversarial_training()
        else:
            training = default_training("flow_matching", epochs=10, ema=0.999)
    torch.manual_seed(seed)
    fit_generator(
        network, pairs.arrays(np.sort(order[held:])), pairs.class_names, training, validation, run_dir, seed, progress
    )
    distilled = FastSim("flow_matching", network, teacher.scaling, hyper)
    if run_dir is not None:
        distilled.save(run_dir)
        write_json(Path(run_dir) / DISTILLATION_FILE, {**(provenance or {}), "mode": mode, "pairs": len(pairs)})
    return distilled


def student_hyperparameters(teacher: FastSim, mode: str) -> dict[str, Any]:
    """The hyper-parameters of ``teacher``'s student in ``mode``: its network, the mode's time sampling."""
    hyper = dict(teacher.hyperparameters)
    hyper.pop("ot_coupling", None)  # the pairs are coupled by the teacher's ODE
    hyper["time_sampling"] = _STUDENT_TIMES[mode]
    return hyper


def check_student(student: FastSim, teacher: FastSim, mode: str) -> None:
    """A ConfigError unless ``student`` can start a ``mode`` distillation of ``teacher``: a one-step
    mode, a one-step student of the teacher's network, classes and particles."""
    if _STUDENT_TIMES.get(mode) != "start":
        raise ConfigError("fastsim distil: only one-step modes (one_step, adversarial) start from a student")
    if student.kind != "flow_matching" or student.hyperparameters.get("time_sampling") != "start":
        raise ConfigError("fastsim distil: the initial student must be a one-step student (fastsim distil)")
    expected = student_hyperparameters(teacher, mode)
    found = {key: value for key, value in student.hyperparameters.items() if key != "ot_coupling"}
    if found != expected:
        raise ConfigError(f"fastsim distil: the initial student's network {found} is not the teacher's {expected}")
    if (
        student.scaling.class_names != teacher.scaling.class_names
        or student.scaling.num_particles != teacher.scaling.num_particles
        or student.scaling.detectors != teacher.scaling.detectors
    ):
        raise ConfigError(
            f"fastsim distil: the initial student makes {', '.join(student.scaling.class_names)} jets of "
            f"{student.scaling.num_particles} particles (detector profiles {', '.join(student.scaling.detectors)}), "
            f"the teacher {', '.join(teacher.scaling.class_names)} of {teacher.scaling.num_particles} "
            f"({', '.join(teacher.scaling.detectors)})"
        )
