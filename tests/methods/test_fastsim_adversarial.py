"""Adversarial distillation of a flow-matching jet generator (``fastsim_distil``'s ``adversarial``
mode): with no GAN term it is the one-step regression; with it, the student keeps a spread that
the regression averages away; its refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.methods import fastsim
from heplearn.methods.fastsim_distil import TeacherPairs, adversarial_training, distil_fastsim, teacher_pairs
from tests.conftest import make_jets
from tests.methods.test_fastsim_training import TINY, DecayFlow
from tests.test_cli import run

SMALL_DISCRIMINATOR = {"hidden": 16, "layers": 1, "attention": 1, "pair_bias": 4}


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> fastsim.JetClouds:
    path = io.write(make_jets(200, seed=31), tmp_path_factory.mktemp("fastsim_adversarial") / "jets.parquet")
    return fastsim.load_clouds([path], num_particles=6)


@pytest.fixture(scope="module")
def teacher(clouds: fastsim.JetClouds) -> fastsim.FastSim:
    """A flow-matching teacher (v = −x) of the tiny network, with the real network's weights."""
    scaling = fastsim.CloudScaling.fit(clouds)
    torch.manual_seed(0)
    return fastsim.FastSim("flow_matching", DecayFlow(scaling.condition_size, **TINY), scaling, dict(TINY))


def _training(epochs: int, weight: float, **discriminator: int) -> object:
    training = adversarial_training(epochs=epochs, batch_size=50, learning_rate=3e-3, ema=None, weight=weight)
    step = training.step.model_copy(update=discriminator or SMALL_DISCRIMINATOR)
    return training.model_copy(update={"step": step})


def test_without_the_gan_term_it_is_the_one_step_regression(teacher: fastsim.FastSim) -> None:
    pairs = teacher_pairs(teacher, 100, steps=2, seed=4)
    regression = fastsim.default_training("flow_matching", epochs=3, batch_size=50, learning_rate=3e-3)
    plain = distil_fastsim(teacher, pairs, "one_step", training=regression, validation_fraction=0.0)
    adversarial = distil_fastsim(teacher, pairs, "adversarial", training=_training(3, 0.0), validation_fraction=0.0)
    assert adversarial.hyperparameters["time_sampling"] == "start"
    changed = 0
    for name, value in plain.network.state_dict().items():
        torch.testing.assert_close(adversarial.network.state_dict()[name], value, rtol=1e-4, atol=1e-6)
        changed += int(not torch.equal(value, teacher.network.state_dict()[name]))
    assert changed > 0  # both trained, to the same weights


def test_the_gan_term_keeps_the_spread_that_the_regression_averages_away(teacher: fastsim.FastSim) -> None:
    """Jets whose particles sit at ±1.5 (a random sign, independent of the noise): the regression's
    best one-step map is their mean, 0, for every noise; the discriminator sees the difference, and
    x₀ ↦ 1.5 sign(x₀) is a one-step map that fools it. It costs 2.25 more of the regression than the
    mean does, against at most ½ weight of the GAN term: a weight of 10 makes it the better map."""
    pairs = teacher_pairs(teacher, 200, steps=1, seed=5)
    rng = np.random.default_rng(6)
    signs = rng.choice([-1.5, 1.5], size=pairs.clouds.shape) + 0.1 * rng.standard_normal(pairs.clouds.shape)
    bimodal = dataclasses.replace(pairs, clouds=(signs * pairs.mask[..., None]).astype(np.float32))
    spreads = {}
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        student = distil_fastsim(
            teacher, bimodal, "adversarial", training=_training(30, weight), validation_fraction=0.0
        )
        made = student.generate(pairs.condition, pairs.mask, 1, solver="euler", noise=pairs.noise)[pairs.mask]
        spreads[weight] = float(np.abs(made).mean())
    # the regression collapses towards 0 (measured: mean |x| 0.12); the GAN term pushes the particles
    # out towards the modes at ±1.5 (0.89 after these 30 epochs)
    assert spreads[0.0] < 0.3, spreads
    assert spreads[10.0] > 0.6, spreads


def test_adversarial_distillation_refuses_bad_students_and_settings(
    teacher: fastsim.FastSim, clouds: fastsim.JetClouds
) -> None:
    pairs: TeacherPairs = teacher_pairs(teacher, 20, steps=1, seed=7)
    with pytest.raises(ConfigError, match="the initial student must be a one-step student"):
        distil_fastsim(teacher, pairs, "adversarial", training=_training(1, 0.1), student=teacher)
    with pytest.raises(ConfigError, match="only one-step modes"):
        distil_fastsim(teacher, pairs, "reflow", student=teacher)
    wide = fastsim.FastSim(
        "flow_matching",
        fastsim.FlowMatchingJets(teacher.scaling.condition_size, hidden=8, global_size=8, layers=1),
        teacher.scaling,
        {"hidden": 8, "global_size": 8, "layers": 1, "time_sampling": "start"},
    )
    with pytest.raises(ConfigError, match=r"the initial student's network .* is not the teacher's"):
        distil_fastsim(teacher, pairs, "adversarial", training=_training(1, 0.1), student=wide)
    one_step = {**teacher.hyperparameters, "time_sampling": "start"}
    longer = fastsim.FastSim(
        "flow_matching",
        fastsim.build_network("flow_matching", teacher.scaling.condition_size, one_step),
        dataclasses.replace(teacher.scaling, num_particles=8),
        one_step,
    )
    with pytest.raises(
        ConfigError,
        match=r"initial student makes qcd, top jets of 8 particles \(detector profiles particle\), the teacher .* of 6",
    ):
        distil_fastsim(teacher, pairs, "adversarial", training=_training(1, 0.1), student=longer)
    with pytest.raises(ConfigError, match="weight >= 0"):
        distil_fastsim(teacher, pairs, "adversarial", training=_training(1, -1.0))
    with pytest.raises(ConfigError, match="adversarial_distillation trains a one-step flow-matching student"):
        distil_fastsim(teacher, pairs, "reflow", training=_training(1, 0.1))


def test_distil_cli_fine_tunes_a_student_adversarially_and_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = io.write(make_jets(40, seed=32), tmp_path / "jets.parquet")
    common = ["--runs-dir", str(tmp_path), "--epochs", "1", "--no-progress"]
    train = ["fastsim", "train", "--train", str(path), "--particles", "6", "--hidden", "8", "--layers", "1"]
    code, _, err = run([*train, "--attention", "1", "--name", "fm", *common], capsys)
    assert code == 0, err
    distil = ["fastsim", "distil", str(tmp_path / "fm"), "--pairs", "20", "--steps", "2", *common]
    code, _, err = run([*distil, "--name", "one"], capsys)
    assert code == 0, err
    adversarial = [*distil, "--mode", "adversarial", "--student", str(tmp_path / "one")]
    code, out, err = run([*adversarial, "--adversarial-weight", "0.2", "--name", "gan"], capsys)
    assert code == 0 and "sample it with --steps 1 --solver euler" in out, err
    record = json.loads((tmp_path / "gan" / "distillation.json").read_text())
    assert record["mode"] == "adversarial" and record["adversarial_weight"] == 0.2
    assert record["student"] == str(tmp_path / "one")
    logged = json.loads((tmp_path / "gan" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"train_regression", "train_adversarial", "train_discriminator_loss"} <= set(logged)
    output = tmp_path / "gan.parquet"
    code, _, err = run(["fastsim", "sample", str(tmp_path / "gan"), "-o", str(output), "--jets", "4"], capsys)
    assert code == 0 and len(io.read(output)) == 8, err
    # refused before any pair is made: a student that is the teacher itself, a negative weight
    code, _, err = run([*distil, "--mode", "adversarial", "--student", str(tmp_path / "fm"), "--name", "b1"], capsys)
    assert code == 2 and "the initial student must be a one-step student" in err and not (tmp_path / "b1").exists()
    assert len(err.strip().splitlines()) == 1, err
    code, _, err = run([*distil, "--mode", "adversarial", "--adversarial-weight", "-1", "--name", "b2"], capsys)
    assert code == 2 and "--adversarial-weight: must be 0 or more, got -1.0" in err and not (tmp_path / "b2").exists()
    code, _, err = run([*distil, "--mode", "reflow", "--student", str(tmp_path / "one"), "--name", "b3"], capsys)
    assert code == 2 and "only one-step modes" in err and not (tmp_path / "b3").exists()
