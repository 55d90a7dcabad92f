"""Learning to pivot (arXiv:1611.01046): the classifier's update works against the adversary, and the
trained tagger's background score depends less on the mass."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

from heplearn.data import io
from heplearn.data.jets import observer_key
from heplearn.methods.decorrelation import AdversarialStep, AdversarySettings, distance_correlation, log_odds
from heplearn.models import registry
from heplearn.run_config import LossTermConfig, TrainingConfig, load_run_config
from heplearn.tasks import Classification
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train
from heplearn.training.losses import TermContext, build_terms
from heplearn.training.steps import StepContext
from tests.conftest import make_jets


def toy_batch(n: int, seed: int) -> dict[str, torch.Tensor]:
    """The mass is both the best input and the observer the adversary predicts."""
    generator = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 2, (n,), generator=generator)
    mass = 80 + 60 * (1 - label).float() + 25 * torch.randn(n, generator=generator)
    other = (1 - label).float() + torch.randn(n, generator=generator)
    return {
        "jet": torch.stack([(mass - 110) / 30, other], dim=1),
        "label": label,
        "weight": torch.ones(n),
        observer_key("jet_sdmass"): mass,
    }


def test_the_classifier_update_increases_the_adversary_loss() -> None:
    torch.manual_seed(0)
    training = TrainingConfig(learning_rate=1e-2, gradient_clip=None, schedule="constant", warmup_fraction=0.0)
    task = Classification(["signal", "background"])
    task.terms = build_terms([LossTermConfig(name="cross_entropy")], task, TermContext(training))
    model = registry.model_class("mlp").from_preset("small", 2, {"jet": 2}, dropout=0.0, batch_norm=False)
    strategy = AdversarialStep(
        StepContext(model, task, training, 1000, lambda module: module),
        AdversarySettings(on="jet_sdmass", strength=50.0, bins=5, learning_rate=1e-2),
    )
    batch = toy_batch(2048, 1)
    for step in range(40):  # the classifier learns the mass, then the adversary learns to read it back
        strategy.classifier_step(batch, 0.0)
        if step >= 20:
            strategy.adversary_step(batch)
    with torch.no_grad():
        before = float(strategy.adversary_loss(model(batch), batch))
    assert before < np.log(5) - 0.05  # the adversary sees the mass in the score (prior: log 5 for 5 bins)
    strategy.classifier_step(batch, 50.0)
    with torch.no_grad():
        after = float(strategy.adversary_loss(model(batch), batch))
    assert after > before  # the gradient of −λ·L_r pushes f to hide the mass


def test_the_adversary_decorrelates_the_background_score(tmp_path: Path) -> None:
    jets = make_jets(2500, seed=31)
    train_file = io.write(jets, tmp_path / "train.parquet")
    val_jets = make_jets(1500, seed=32)
    val_file = io.write(val_jets, tmp_path / "val.parquet")
    correlations = {}
    for name, step in (
        ("plain", {"name": "single"}),
        (
            "pivot",
            {
                "name": "adversarial",
                "on": "jet_sdmass",
                "strength": 10.0,
                "bins": 8,
                "adversary_steps": 3,
                "pretrain_steps": 20,
                "learning_rate": 3e-3,
            },
        ),
    ):
        config = load_run_config(
            {
                "data": {
                    "train": str(train_file),
                    "val": str(val_file),
                    "observers": ["jet_sdmass"],
                    "inputs": {"jet": {"variables": ["jet_sdmass", "jet_nparticles"]}},
                    "labels": {"classes": ["label_top", "label_qcd"]},
                },
                "model": {"name": "mlp", "preset": "small"},
                "training": {
                    "epochs": 6,
                    "batch_size": 256,
                    "seed": 2,
                    "threads": 1,
                    "learning_rate": 3e-3,
                    "early_stopping_patience": None,
                    "step": step,
                },
            }
        )
        result = train(config, name=name, runs_dir=tmp_path / "runs", progress=False)
        scores, arrays = TrainedModel.load(result.run_dir).predict_files([val_file])
        background = arrays.label == 1
        correlations[name] = float(
            distance_correlation(
                torch.from_numpy(scores[background, 0].astype(np.float64)),
                torch.from_numpy(ak.to_numpy(val_jets["jet_sdmass"])[background].astype(np.float64)),
            )
        )
        if name == "pivot":
            assert "train_adversary_loss" in result.history[-1]
    assert correlations["plain"] > 0.1
    assert correlations["pivot"] < 0.5 * correlations["plain"]


def test_log_odds_is_exact_where_the_probability_rounds_to_0_or_1() -> None:
    task = Classification(["signal", "background", "other"])
    outputs = torch.tensor([[0.0, 1.0, -1.0], [-200.0, 0.0, 0.0], [200.0, 0.0, 0.0]])
    odds = log_odds(outputs, task)
    p = torch.softmax(outputs.double(), dim=-1)[0, 0]
    assert float(odds[0]) == pytest.approx(float(torch.log(p / (1 - p))), abs=1e-6)
    assert odds[1:].tolist() == pytest.approx([-200 - np.log(2), 200 - np.log(2)])  # logit(p) would be ±inf


def test_the_validation_loss_is_the_games_value() -> None:
    torch.manual_seed(0)
    training = TrainingConfig(learning_rate=1e-2, gradient_clip=None, schedule="constant", warmup_fraction=0.0)
    task = Classification(["signal", "background"])
    model = registry.model_class("mlp").from_preset("small", 2, {"jet": 2}, dropout=0.0, batch_norm=False)
    settings = AdversarySettings(on="jet_sdmass", strength=7.0, bins=6)
    strategy = AdversarialStep(StepContext(model, task, training, 100, lambda module: module), settings)
    batch = toy_batch(1024, 3)
    with torch.no_grad():
        outputs = model(batch)
    figures = strategy.validation_figures(outputs, batch, {"loss": 0.4, "accuracy": 0.8})
    with torch.no_grad():
        adversary_loss = float(strategy.adversary_loss(outputs, batch))
    assert figures["adversary_loss"] == pytest.approx(adversary_loss)
    assert figures["classifier_loss"] == 0.4 and figures["accuracy"] == 0.8
    assert figures["loss"] == pytest.approx(0.4 + 7.0 * (np.log(6) - adversary_loss))  # L_f + λ(ln K − L_r)
