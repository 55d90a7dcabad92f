"""CICADA: whole-event calorimeter-region images from NanoAOD objects, and the convolutional
autoencoder trained on them through the engine, which scores a localized-energy anomaly higher."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from heplearn.data import io
from heplearn.data.config import DataConfig
from heplearn.data.in_memory import load_arrays
from heplearn.errors import ConfigError, DataError
from heplearn.features.images import calorimeter_images
from heplearn.run_config import load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train


def test_objects_land_in_their_regions_and_phi_wraps() -> None:
    eta = np.array([[0.01, 0.01, -2.9, 3.2, 0.5]])
    phi = np.array([[0.01, 0.02, np.pi, 0.0, -np.pi]])
    et = np.array([[10.0, 5.0, 7.0, 100.0, 3.0]])
    image = calorimeter_images(eta, phi, et)
    assert image.shape == (1, 1, 18, 14)
    assert image[0, 0, 9, 7] == 15.0  # η = 0⁺, φ = 0⁺: the region just above the middle in both, summed
    assert image[0, 0, 0, 0] == 7.0  # φ = π is φ = −π: the first row
    assert image[0, 0, 0, 8] == 3.0  # η = 0.5: 3.5 regions of 6/14 from −3
    assert image.sum() == 25.0  # |η| = 3.2 lies beyond the regions
    masked = calorimeter_images(eta, phi, et, mask=np.array([[True, False, True, True, True]]))
    assert masked[0, 0, 9, 7] == 10.0
    with pytest.raises(DataError, match="2-D arrays"):
        calorimeter_images(eta[0], phi[0], et[0])
    with pytest.raises(ConfigError, match="regions"):
        calorimeter_images(eta, phi, et, regions=(0, 14))


def events(n: int, rng: np.random.Generator, anomalous: bool = False) -> ak.Array:
    """Back-to-back dijets with soft extra jets; the anomaly adds a 600 GeV photon in one region."""
    leading = 300 + rng.exponential(100, n)
    phi1 = rng.uniform(-np.pi, np.pi, n)
    soft = rng.integers(0, 3, n)
    jets_pt, jets_eta, jets_phi = [], [], []
    for i in range(n):
        pt = [leading[i], leading[i] * rng.uniform(0.8, 1.0), *rng.uniform(30, 60, soft[i])]
        eta = [*rng.normal(0, 1, 2), *rng.uniform(-2.5, 2.5, soft[i])]
        phi = [
            phi1[i],
            np.angle(np.exp(1j * (phi1[i] + np.pi + rng.normal(0, 0.1)))),
            *rng.uniform(-np.pi, np.pi, soft[i]),
        ]
        jets_pt.append(pt)
        jets_eta.append(eta)
        jets_phi.append(phi)
    photons = [1 if anomalous else 0] * n
    counts = np.asarray(photons)
    return ak.Array(
        {
            "Jet_pt": jets_pt,
            "Jet_eta": jets_eta,
            "Jet_phi": jets_phi,
            "Photon_pt": ak.unflatten(np.full(counts.sum(), 600.0), counts),
            "Photon_eta": ak.unflatten(rng.uniform(-2.4, 2.4, counts.sum()), counts),
            "Photon_phi": ak.unflatten(rng.uniform(-np.pi, np.pi, counts.sum()), counts),
        }
    )


def data_config(files: dict[str, str]) -> dict[str, object]:
    image = {"kind": "calorimeter", "collections": ["Jet", "Photon"]}
    return {**files, "labels": {"type": "none"}, "inputs": {"image": {"image": image}}}


def test_the_data_layer_builds_the_event_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    sample = events(20, rng, anomalous=True)
    path = io.write(sample, tmp_path / "events.parquet")
    arrays, _ = load_arrays([path], DataConfig.model_validate(data_config({"train": str(path)})))
    image = arrays.inputs["image"]
    assert image.shape == (20, 1, 18, 14)
    inside = [np.abs(np.asarray(sample[f"{c}_eta"][i])) < 3 for c in ("Jet", "Photon") for i in [0]]
    total = sum(
        float(np.asarray(sample[f"{c}_pt"][0])[mask].sum()) for c, mask in zip(("Jet", "Photon"), inside, strict=True)
    )
    assert image[0].sum() == pytest.approx(total / 100.0, rel=1e-5)  # ET in units of 100 GeV


def test_the_autoencoder_scores_a_localized_deposit_higher(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    train_file = io.write(events(1500, rng), tmp_path / "train.parquet")
    config = {
        "data": data_config({"train": str(train_file)}),
        "model": {"name": "cicada", "preset": "small"},
        "training": {
            "epochs": 4,
            "batch_size": 64,
            "seed": 1,
            "threads": 1,
            "learning_rate": 3e-3,
            "early_stopping_patience": None,
        },
    }
    run = train(load_run_config(config), name="cicada", runs_dir=tmp_path / "runs", progress=False).run_dir
    model = TrainedModel.load(run)
    scores = []
    for anomalous in (False, True):
        path = io.write(events(500, rng, anomalous), tmp_path / f"test_{anomalous}.parquet")
        scores.append(model.predict_files([path])[0][:, 0])
    auc = roc_auc_score(np.r_[np.zeros(500), np.ones(500)], np.r_[scores[0], scores[1]])
    assert auc > 0.9, auc


def test_a_cicada_run_needs_an_image_group(tmp_path: Path) -> None:
    config = {
        "data": {"train": "x.parquet", "labels": {"type": "none"}, "inputs": {"jet": {"variables": ["a"]}}},
        "model": {"name": "cicada"},
    }
    with pytest.raises(ConfigError, match="add a 'image' input group"):
        train(load_run_config(config), runs_dir=tmp_path, progress=False)
    config["data"]["inputs"] = {"image": {"variables": ["a"]}}  # type: ignore[index]
    with pytest.raises(ConfigError, match="with image settings"):
        train(load_run_config(config), runs_dir=tmp_path, progress=False)
