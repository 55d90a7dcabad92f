"""Distillation of flow-matching jet generators (heplearn.methods.fastsim_distil) and the flow's time
sampling: known answers on a teacher whose ODE is solved analytically, the CLI and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.methods import fastsim
from heplearn.methods.fastsim_distil import distil_fastsim, teacher_pairs
from tests.conftest import make_jets
from tests.methods.test_fastsim_training import TINY, DecayFlow
from tests.test_cli import run

DECAY_FIVE_MIDPOINT = (1 - 0.2 + 0.02) ** 5


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> fastsim.JetClouds:
    path = io.write(make_jets(200, seed=21), tmp_path_factory.mktemp("fastsim_distil") / "jets.parquet")
    return fastsim.load_clouds([path], num_particles=10)


def _decay_teacher(clouds: fastsim.JetClouds) -> fastsim.FastSim:
    """A teacher whose velocity is v(x, t) = −x: its ODE map is linear and known in closed form."""
    scaling = fastsim.CloudScaling.fit(clouds)
    torch.manual_seed(0)
    return fastsim.FastSim("flow_matching", DecayFlow(scaling.condition_size, **TINY), scaling, dict(TINY))


def _student_end(student: fastsim.FastSim, pairs_seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The student's clouds from fresh noise (``steps`` Euler steps) and the teacher's exact answer."""
    draws = fastsim.draw_conditions(student.scaling, {"top": 100}, None, np.random.default_rng(pairs_seed))
    noise = np.random.default_rng(pairs_seed + 1).standard_normal((*draws.mask.shape, 3)).astype(np.float32)
    noise *= draws.mask[..., None]
    end = student.generate(draws.condition, draws.mask, steps, solver="euler", noise=noise)
    return end[draws.mask], DECAY_FIVE_MIDPOINT * noise[draws.mask]


def test_teacher_pairs_are_the_teachers_ode_map_of_their_noise(clouds: fastsim.JetClouds) -> None:
    teacher = _decay_teacher(clouds)
    pairs = teacher_pairs(teacher, 50, steps=5, solver="midpoint", seed=3)
    assert len(pairs) == 50 * len(clouds.class_names) and pairs.class_names == clouds.class_names
    assert np.bincount(pairs.label).tolist() == [50] * len(clouds.class_names)
    padding = ~pairs.mask
    assert padding.any() and not pairs.noise[padding].any() and not pairs.clouds[padding].any()
    np.testing.assert_allclose(pairs.clouds, DECAY_FIVE_MIDPOINT * pairs.noise, rtol=1e-5, atol=1e-6)
    real = pairs.noise[pairs.mask]
    assert abs(real.mean()) < 0.05 and real.std() == pytest.approx(1.0, abs=0.05)  # N(0, I) noise
    # the same seed gives the same pairs; the conditions are those sample_jets would draw
    again = teacher_pairs(teacher, 50, steps=5, solver="midpoint", seed=3)
    np.testing.assert_array_equal(again.noise, pairs.noise)
    draws = fastsim.draw_conditions(
        teacher.scaling, dict.fromkeys(clouds.class_names, 50), None, np.random.default_rng(3)
    )
    np.testing.assert_array_equal(draws.condition, pairs.condition)


def test_one_step_student_learns_the_teachers_five_step_map(clouds: fastsim.JetClouds) -> None:
    teacher = _decay_teacher(clouds)
    pairs = teacher_pairs(teacher, 400, steps=5, solver="midpoint", seed=1)
    training = fastsim.default_training("flow_matching", epochs=40, batch_size=50, learning_rate=3e-3)
    student = distil_fastsim(teacher, pairs, "one_step", training=training)
    assert student.hyperparameters["time_sampling"] == "start"
    end, exact = _student_end(student, 7, 1)
    error = np.sqrt(np.mean((end - exact) ** 2)) / np.sqrt(np.mean(exact**2))
    # the teacher's own single Euler step lands at x0 (1 - 1) = 0: 100 % off; the student is within 10 %
    assert error < 0.1, error
    with pytest.raises(ConfigError, match="distilled to one Euler step; 2 euler steps are not defined"):
        student.generate(pairs.condition[:3], pairs.mask[:3], 2, solver="euler")
    with pytest.raises(ConfigError, match="one-step student"):
        teacher_pairs(student, 10)


def test_reflow_student_follows_straight_paths_in_two_euler_steps(clouds: fastsim.JetClouds) -> None:
    teacher = _decay_teacher(clouds)
    pairs = teacher_pairs(teacher, 400, steps=5, solver="midpoint", seed=2)
    training = fastsim.default_training("flow_matching", epochs=40, batch_size=50, learning_rate=3e-3)
    student = distil_fastsim(teacher, pairs, "reflow", training=training, validation_fraction=0.0)
    assert student.hyperparameters["time_sampling"] == "uniform"
    end, exact = _student_end(student, 8, 2)
    error = np.sqrt(np.mean((end - exact) ** 2)) / np.sqrt(np.mean(exact**2))
    # the teacher's two Euler steps give x0 / 4 instead of 0.371 x0 (33 % off); the straightened flow is within 10 %
    assert error < 0.1, error


def test_time_sampling_draws_and_bad_names() -> None:
    torch.manual_seed(0)
    logit = fastsim.FlowMatchingJets(condition_size=2, time_sampling="logit_normal", **TINY).draw_time(
        200_000, torch.float64
    )
    assert float(logit.min()) > 0 and float(logit.max()) < 1
    assert float(logit.median()) == pytest.approx(0.5, abs=0.005)
    # σ(N(0, 1)) lies below σ(-1) with probability Φ(-1) = 0.1587
    assert float((logit < torch.sigmoid(torch.tensor(-1.0))).double().mean()) == pytest.approx(0.1587, abs=0.003)
    uniform = fastsim.FlowMatchingJets(condition_size=2, **TINY).draw_time(200_000, torch.float64)
    assert float((uniform < 0.25).double().mean()) == pytest.approx(0.25, abs=0.003)
    start = fastsim.FlowMatchingJets(condition_size=2, time_sampling="start", **TINY).draw_time(10, torch.float64)
    assert not start.any()
    with pytest.raises(ConfigError, match="unknown time sampling 'cosine'; choose one of uniform, logit_normal, start"):
        fastsim.FlowMatchingJets(condition_size=2, time_sampling="cosine", **TINY)


def test_distil_cli_makes_a_one_step_run_and_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = io.write(make_jets(60, seed=22), tmp_path / "jets.parquet")
    arguments = ["--train", str(path), "--particles", "8", "--epochs", "1", "--hidden", "8", "--layers", "1"]
    code, _, err = run(
        [
            "fastsim",
            "train",
            *arguments,
            "--time-sampling",
            "logit_normal",
            "--name",
            "fm",
            "--runs-dir",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 0, err
    assert fastsim.load_fastsim(tmp_path / "fm").hyperparameters["time_sampling"] == "logit_normal"
    code, _, err = run(
        ["fastsim", "train", *arguments, "--time-sampling", "start", "--name", "bad", "--runs-dir", str(tmp_path)],
        capsys,
    )
    assert (
        code == 2 and "--time-sampling: uniform or logit_normal, not 'start'" in err and not (tmp_path / "bad").exists()
    )
    code, _, err = run(
        ["fastsim", "train", *arguments, "--pair-bias", "1", "--name", "nb", "--runs-dir", str(tmp_path)], capsys
    )
    assert code == 2 and "the pair bias is a part of the attention blocks" in err and not (tmp_path / "nb").exists()
    code, _, err = run(
        [
            "fastsim",
            "train",
            *arguments,
            "--attention",
            "1",
            "--pair-bias",
            "4",
            "--name",
            "pb",
            "--runs-dir",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 0 and fastsim.load_fastsim(tmp_path / "pb").hyperparameters["pair_bias"] == 4, err
    distil = ["fastsim", "distil", str(tmp_path / "fm"), "--pairs", "30", "--epochs", "1", "--runs-dir", str(tmp_path)]
    code, out, err = run([*distil, "--name", "fm1", "--steps", "2", "--no-progress"], capsys)
    assert code == 0, err
    assert "sample it with --steps 1 --solver euler" in out
    record = json.loads((tmp_path / "fm1" / "distillation.json").read_text())
    assert record == {
        "teacher": str(tmp_path / "fm"),
        "steps": 2,
        "solver": "midpoint",
        "seed": 0,
        "mode": "one_step",
        "pairs": 60,
    }
    output = tmp_path / "one.parquet"
    code, out, err = run(["fastsim", "sample", str(tmp_path / "fm1"), "-o", str(output), "--jets", "5"], capsys)
    assert code == 0 and len(io.read(output)) == 10, err  # 5 per class; the one Euler step is the default sampler
    bad_output = tmp_path / "bad.parquet"
    code, _, err = run(["fastsim", "sample", str(tmp_path / "fm1"), "-o", str(bad_output), "--steps", "3"], capsys)
    assert code == 2 and "distilled to one Euler step" in err and len(err.strip().splitlines()) == 1, err
    assert not bad_output.exists()
    code, _, err = run([*distil, "--name", "fm2", "--mode", "consistency"], capsys)
    assert (
        code == 2
        and "--mode: one of one_step, reflow, adversarial, not 'consistency'" in err
        and not (tmp_path / "fm2").exists()
    )
    code, _, err = run([*distil, "--name", "fm3", "--pairs", "0"], capsys)
    assert code == 2 and "at least one pair per class is needed, got 0" in err and not (tmp_path / "fm3").exists()
    vae_jets = fastsim.load_clouds([path], num_particles=8)
    training = fastsim.default_training("vae", epochs=1, batch_size=30)
    fastsim.train_fastsim(vae_jets, "vae", hyperparameters=TINY, training=training, run_dir=tmp_path / "vae")
    code, _, err = run(
        ["fastsim", "distil", str(tmp_path / "vae"), "--name", "fm4", "--runs-dir", str(tmp_path)], capsys
    )
    assert code == 2 and "the teacher must be a flow-matching generator, not 'vae'" in err
