"""Domain adaptation: the reversal layer's exact gradient, its schedule, and a tagger that stops
relying on a feature that simulation and data disagree on (arXiv:1409.7495)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.methods.domain import join_batches, reversal_schedule, reverse_gradient
from heplearn.run_config import RunConfig, load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train


def test_the_reversal_layer_is_the_identity_with_a_reversed_gradient() -> None:
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    c = torch.randn(7, 3, dtype=torch.float64)
    reversed_x = reverse_gradient(x, 0.3)
    torch.testing.assert_close(reversed_x, x, rtol=0, atol=0)
    (reversed_x * c).sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, -0.3 * c, rtol=0, atol=0)


def test_the_reversal_schedule() -> None:
    assert reversal_schedule(0.0) == 0.0
    assert reversal_schedule(1.0, strength=2.0) == pytest.approx(2 * (2 / (1 + np.exp(-10)) - 1))
    assert reversal_schedule(0.1) == pytest.approx(2 / (1 + np.exp(-1)) - 1)


def shifted_sample(path: Path, n: int, seed: int, shift: float) -> Path:
    """x1 separates the classes in both domains; x2 does in simulation, but data shift it by ``shift``.

    On data, a tagger using x1 alone is right for Φ(1) = 84% of the events; one that trusts x2 less.
    """
    rng = np.random.default_rng(seed)
    signal = rng.integers(0, 2, n)
    x1 = np.where(signal == 1, 1.0, -1.0) + rng.normal(size=n)
    x2 = 1.2 * signal + shift + 0.6 * rng.normal(size=n)
    return io.write(
        ak.zip(
            {
                "jet_x1": x1.astype(np.float32),
                "jet_x2": x2.astype(np.float32),
                "label_sig": signal.astype(np.int64),
                "label_bkg": (1 - signal).astype(np.int64),
            }
        ),
        path,
    )


def toy_config(source: Path, step: dict[str, Any], epochs: int, batch_norm: bool) -> RunConfig:
    """The small MLP on the toy's (x1, x2), trained on ``source`` with the step ``step``."""
    return load_run_config(
        {
            "data": {
                "train": str(source),
                "inputs": {"jet": {"variables": ["jet_x1", "jet_x2"]}},
                "labels": {"classes": ["label_sig", "label_bkg"]},
            },
            "model": {"name": "mlp", "preset": "small", "dropout": 0.0, "batch_norm": batch_norm},
            "training": {
                "epochs": epochs,
                "batch_size": 128,
                "seed": 3,
                "threads": 1,
                "learning_rate": 3e-3,
                "step": step,
            },
        }
    )


def test_the_adapted_tagger_ignores_what_the_domains_disagree_on(tmp_path: Path) -> None:
    source = shifted_sample(tmp_path / "simulation.parquet", 6000, 1, 0.0)
    target = shifted_sample(tmp_path / "data.parquet", 6000, 2, 1.5)
    target_test = shifted_sample(tmp_path / "data_test.parquet", 4000, 3, 1.5)
    source_test = shifted_sample(tmp_path / "simulation_test.parquet", 4000, 4, 0.0)
    results = {}
    for name, step in (
        ("plain", {"name": "single"}),
        ("adapted", {"name": "domain_adversarial", "target": str(target), "strength": 30.0}),
    ):
        config = toy_config(source, step, epochs=6, batch_norm=False)
        result = train(config, name=name, runs_dir=tmp_path / "runs", progress=False)
        model = TrainedModel.load(result.run_dir)
        data_scores, data_arrays = model.predict_files([target_test])
        simulation_scores, _ = model.predict_files([source_test])
        accuracy = float(np.mean((data_scores[:, 0] > 0.5) == (data_arrays.label == 0)))
        domain = np.r_[np.zeros(len(simulation_scores)), np.ones(len(data_scores))]
        auc = roc_auc_score(domain, np.r_[simulation_scores[:, 0], data_scores[:, 0]])
        results[name] = (accuracy, max(auc, 1 - auc))
        if name == "adapted":
            assert {"train_domain_loss", "train_reversal"} <= set(result.history[-1])
    assert results["plain"][1] > 0.7  # the plain tagger's score tells simulation from data (measured: 0.75)
    assert results["adapted"][1] < 0.6  # the adapted one's hardly does (0.54)
    assert results["adapted"][0] > results["plain"][0] + 0.1  # and it is right more often on data (0.84 vs 0.67)


def test_joined_batches_pad_the_particle_axis() -> None:
    first = {"particles": torch.ones(2, 3, 4), "mask": torch.ones(2, 3, dtype=torch.bool), "label": torch.zeros(2)}
    second = {"particles": torch.ones(5, 6, 4), "mask": torch.ones(5, 6, dtype=torch.bool), "label": torch.ones(5)}
    joined, size = join_batches(first, {**second, "observer:jet_pt": torch.ones(5)})
    assert size == 2 and set(joined) == {"particles", "mask", "label"}  # only the keys both hold
    assert joined["particles"].shape == (7, 6, 4) and joined["mask"].shape == (7, 6)
    assert not joined["mask"][:2, 3:].any() and joined["mask"][2:].all()  # padding is never a particle
    assert torch.all(joined["particles"][:2, 3:] == 0)
    with pytest.raises(ValueError, match="particles"):
        join_batches(first, {**second, "particles": torch.ones(5, 6, 3)})


def test_the_domain_head_sees_the_shift_through_batch_normalisation(tmp_path: Path) -> None:
    """With the reversal off, the head must learn to tell the domains apart from a batch-normalised
    MLP's representation. Source and target passed separately, each normalised by its own batch
    statistics, would hide the shift of x2 (1.5 σ of the target) and hold the domain loss at ln 2."""
    source = shifted_sample(tmp_path / "simulation.parquet", 3000, 1, 0.0)
    target = shifted_sample(tmp_path / "data.parquet", 3000, 2, 1.5)
    step = {"name": "domain_adversarial", "target": str(target), "strength": 0.0}
    config = toy_config(source, step, epochs=2, batch_norm=True)
    history = train(config, name="bn", runs_dir=tmp_path / "runs", progress=False).history
    # x2 alone separates the domains with AUC Φ(1.5/(√2·√(0.6² + 0.36))) ≈ 0.9: a loss far below ln 2 = 0.693
    assert history[-1]["train_domain_loss"] < 0.6


def test_a_target_sample_is_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"training\.step\.target"):
        load_run_config(
            {
                "data": {"inputs": {"jet": {"variables": ["jet_x1"]}}},
                "model": {"name": "mlp"},
                "training": {"step": {"name": "domain_adversarial"}},
            }
        )
