"""The VAE of the trigger anomaly detectors: its loss terms' known answers, padding, and the
Gaussian benchmark (background N(0, I₂₀), anomalies shifted or wider) through the engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from sklearn.metrics import roc_auc_score

from heplearn.data import io
from heplearn.data.jets import JetArrays
from heplearn.errors import ConfigError
from heplearn.methods.anomaly import anomaly_run_config, vae_loss
from heplearn.models.vae import EventVAE
from heplearn.run_config import load_run_config
from heplearn.tasks import VariationalReconstruction, kl_divergence
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train

FEATURES = 20


def test_kl_is_zero_at_the_prior_and_half_the_dimension_at_unit_shift() -> None:
    for d in (1, 3, 13):
        zeros = torch.zeros(4, d, dtype=torch.float64)
        assert torch.equal(kl_divergence(zeros, zeros), torch.zeros(4, dtype=torch.float64))
        # μ = 1, σ = 1: −½ Σ (1 + 0 − 1 − 1) = d/2
        torch.testing.assert_close(
            kl_divergence(torch.ones(4, d, dtype=torch.float64), zeros), torch.full((4,), d / 2, dtype=torch.float64)
        )
    # one dimension, μ = 0, σ² = e: −½ (1 + 1 − e) = (e − 2)/2
    torch.testing.assert_close(
        kl_divergence(torch.zeros(1, 1), torch.ones(1, 1)), torch.tensor([(np.e - 2) / 2], dtype=torch.float32)
    )


def packed(mu: torch.Tensor, log_variance: torch.Tensor, rebuilt: torch.Tensor) -> torch.Tensor:
    return torch.cat([mu, log_variance, rebuilt], dim=-1)


def test_the_loss_is_one_minus_beta_mse_plus_beta_kl_and_ignores_padding() -> None:
    generator = torch.Generator().manual_seed(3)
    task = VariationalReconstruction("jet", 6, 2, pad_value=0.0)
    target = torch.randn(5, 6, generator=generator)
    target[:, 3:] = 0.0  # the second object (pT, η, φ) is an empty, zero-padded slot
    rebuilt = torch.randn(5, 6, generator=generator)
    mu, log_variance = torch.randn(5, 2, generator=generator), torch.randn(5, 2, generator=generator)
    batch = {"jet": target, "weight": torch.ones(5)}
    beta = 0.3
    mse = ((rebuilt[:, :3] - target[:, :3]) ** 2).sum(-1).mean()
    kl = kl_divergence(mu, log_variance).mean()
    torch.testing.assert_close(
        vae_loss(task, packed(mu, log_variance, rebuilt), batch, beta), (1 - beta) * mse + beta * kl
    )
    # whatever the decoder writes into the padded slots, loss and MSE score stay the same
    garbage = rebuilt.clone()
    garbage[:, 3:] = 1e3
    torch.testing.assert_close(
        vae_loss(task, packed(mu, log_variance, garbage), batch, beta), (1 - beta) * mse + beta * kl
    )
    score = VariationalReconstruction("jet", 6, 2, score="mse", pad_value=0.0).postprocess(
        packed(mu, log_variance, garbage), batch
    )
    torch.testing.assert_close(score[:, 0], ((rebuilt[:, :3] - target[:, :3]) ** 2).mean(-1))
    latent = VariationalReconstruction("jet", 6, 2).postprocess(packed(mu, log_variance, garbage), batch)
    torch.testing.assert_close(latent[:, 0], (mu**2).sum(-1))


def gaussian_arrays(n: int, rng: np.random.Generator, anomaly: str | None = None) -> np.ndarray:
    """Background N(0, I₂₀); anomalies shifted by +3 in two coordinates, or with 4 × the variance."""
    x = rng.normal(size=(n, FEATURES))
    if anomaly == "shift":
        x[:, :2] += 3.0
    elif anomaly == "variance":
        x *= 2.0
    return x.astype(np.float32)


def write_table(path: Path, x: np.ndarray) -> Path:
    import awkward as ak

    return io.write(ak.zip({f"x{i}": np.ascontiguousarray(x[:, i]) for i in range(FEATURES)}), path)


@pytest.fixture(scope="module")
def gaussian_vae(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A VAE (β = 0.2, latent 12) trained through ``heplearn.train`` on 6000 background events.

    On isotropic noise every latent direction costs as much KL as it saves in MSE; β = 0.5 leaves
    most of them collapsed (Σμ² AUC ≈ 0.85 on the ×4 variance), β = 0.2 keeps about half of them
    active, and with k active directions the ideal Σμ² AUC is P(F(k, k) > 1/4): 0.896 for k = 4,
    0.942 for k = 6. The shift in two of twenty coordinates is seen by the MSE; a latent score
    sees it only in the active directions' share of it (AUC ≈ 0.7 here)."""
    folder = tmp_path_factory.mktemp("vae")
    rng = np.random.default_rng(7)
    train_file = write_table(folder / "train.parquet", gaussian_arrays(6000, rng))
    val_file = write_table(folder / "val.parquet", gaussian_arrays(1000, rng))
    tests = {
        "background": gaussian_arrays(2000, rng),
        "shift": gaussian_arrays(2000, rng, "shift"),
        "variance": gaussian_arrays(2000, rng, "variance"),
    }
    config = anomaly_run_config(
        str(train_file),
        [f"x{i}" for i in range(FEATURES)],
        val=str(val_file),
        test=str(val_file),
        beta=0.2,
        latent=12,
        score="latent_norm",
        training={
            "epochs": 20,
            "batch_size": 128,
            "seed": 1,
            "threads": 1,
            "learning_rate": 3e-3,
            "early_stopping_patience": None,
        },
    )
    run = train(load_run_config(config), name="vae", runs_dir=folder / "runs", progress=False).run_dir
    return run, tests


def scores_of(run: Path, score: str, x: np.ndarray) -> np.ndarray:
    model = TrainedModel.load(run)
    assert isinstance(model.task, VariationalReconstruction)
    model.task.score_name = score
    arrays = JetArrays({"jet": x}, None, np.zeros(len(x), np.int64), np.ones(len(x), np.float32))
    return model.predict(arrays)[:, 0]


@pytest.mark.parametrize(
    ("score", "anomaly"), [("mse", "shift"), ("mse", "variance"), ("latent_norm", "variance"), ("kl", "variance")]
)
def test_a_vae_on_gaussian_background_finds_the_anomalies(
    gaussian_vae: tuple[Path, dict[str, np.ndarray]], score: str, anomaly: str
) -> None:
    run, tests = gaussian_vae
    background, signal = scores_of(run, score, tests["background"]), scores_of(run, score, tests[anomaly])
    auc = roc_auc_score(np.r_[np.zeros(len(background)), np.ones(len(signal))], np.r_[background, signal])
    assert auc > 0.9, f"{score} on {anomaly}: AUC {auc:.3f}"


def test_the_run_records_its_task_and_trains_both_terms(gaussian_vae: tuple[Path, dict[str, np.ndarray]]) -> None:
    run, _ = gaussian_vae
    info = json.loads((run / "model.json").read_text())
    assert info["task"] == "variational_reconstruction"
    assert info["task_settings"] == {"group": "jet", "latent": 12, "score": "latent_norm", "pad_value": None}
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"train_loss_reconstruction_mse", "train_loss_kl", "val_loss_kl"} <= set(history[-1])
    assert history[-1]["val_loss"] < history[0]["val_loss"]


def test_the_exported_latent_score_holds_the_encoder_alone(gaussian_vae: tuple[Path, dict[str, np.ndarray]]) -> None:
    from heplearn.serving.export import export_run

    run, tests = gaussian_vae
    export = export_run(run)
    session = onnxruntime.InferenceSession(str(export.onnx_path))
    assert [output.name for output in session.get_outputs()] == ["anomaly_score"]
    x = tests["shift"][:300]
    (onnx_scores,) = session.run(None, {"jet": x})
    np.testing.assert_allclose(onnx_scores[:, 0], scores_of(run, "latent_norm", x), rtol=1e-4, atol=1e-5)
    # the encoder's weights only: 20 → 32 → 16 → 2·12 (the preset "paper" widths); no decoder weights
    model = TrainedModel.load(run)
    assert isinstance(model.network, EventVAE)
    encoder = sum(parameter.numel() for parameter in model.network.encoder.parameters())
    graph = onnx.load(str(export.onnx_path)).graph
    stored = sum(int(np.prod(tensor.dims)) for tensor in graph.initializer)
    decoder = sum(parameter.numel() for parameter in model.network.decoder.parameters())
    # beside the encoder, only the standardisation constants (a few per input): not the decoder
    assert encoder <= stored < encoder + 5 * FEATURES < encoder + decoder


def test_bad_vae_settings_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no encoder exported for it"):
        anomaly_run_config("x.parquet", ["x0"], model="autoencoder", score="latent_norm")
    with pytest.raises(ConfigError, match="β must lie in"):
        anomaly_run_config("x.parquet", ["x0"], beta=1.5)
    config = anomaly_run_config("x.parquet", ["x0"])
    config["training"]["loss"] = "auto"
    with pytest.raises(ConfigError, match="a vae trains on"):
        train(load_run_config(config), runs_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="unknown score"):
        EventVAE(5, {"jet": 3}, score="mean")
