"""The trainer's extension points used for real: loss terms that read observers, tasks beyond
classification (reconstruction, reweighting), and named terms in the logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import awkward as ak
import numpy as np
import onnxruntime
import pytest
import torch
import yaml

from heplearn.data import io
from heplearn.data.jets import observer_key
from heplearn.errors import ConfigError
from heplearn.methods.decorrelation import distance_correlation
from heplearn.run_config import load_run_config
from heplearn.tasks import Batch, Classification, Task
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train
from heplearn.training.losses import LossTermBase, register_loss_term
from tests.conftest import make_jets

ROOT = Path(__file__).resolve().parents[2]


class MassRecorder(LossTermBase):
    """A zero-valued term that keeps the jet ids and masses of every training batch it sees."""

    name = "mass_recorder"
    tasks = (Classification,)
    needs = "classification"
    seen: ClassVar[list[tuple[np.ndarray, np.ndarray]]] = []

    def __call__(self, outputs: torch.Tensor, batch: Batch, task: Task) -> torch.Tensor:
        if torch.is_grad_enabled():
            MassRecorder.seen.append(
                (batch[observer_key("aux_id")].numpy().copy(), batch[observer_key("jet_sdmass")].numpy().copy())
            )
        return outputs.sum() * 0.0


register_loss_term(MassRecorder)


def write_jets(folder: Path, n: int = 900, seed: int = 5) -> tuple[Path, ak.Array]:
    jets = make_jets(n, seed=seed)
    jets = ak.with_field(jets, np.arange(n, dtype=np.int64), "aux_id")
    return io.write(jets, folder / "train.parquet", row_group_size=200), jets


def config_for(train_file: Path, **training: Any) -> dict[str, Any]:
    return {
        "data": {
            "train": str(train_file),
            "inputs": {"jet": {"variables": ["jet_pt", "jet_nparticles"]}},
            "labels": {"classes": ["label_top", "label_qcd"]},
            "observers": ["jet_sdmass", "aux_id"],
        },
        "model": {"name": "mlp", "preset": "small"},
        "training": {
            "epochs": 1,
            "batch_size": 64,
            "seed": 3,
            "threads": 1,
            "early_stopping_patience": None,
            "loss": [{"name": "cross_entropy"}, {"name": "mass_recorder", "weight": 0.5}],
            **training,
        },
    }


def test_loss_terms_are_validated_by_name_and_key(tmp_path: Path) -> None:
    train_file, _ = write_jets(tmp_path, 50)
    config = config_for(train_file)
    config["training"]["loss"] = [{"name": "cross_entropy"}, {"name": "disco", "weight": 10, "onn": "jet_sdmass"}]
    with pytest.raises(ConfigError, match=r"training\.loss\[1\]\.onn: unknown key"):
        load_run_config(config)
    config["training"]["loss"] = [{"name": "cross_entrpy"}]
    with pytest.raises(ConfigError, match="unknown loss term 'cross_entrpy'"):
        load_run_config(config)
    config["training"]["loss"] = "mse"
    with pytest.raises(ConfigError, match=r"mse needs data\.labels\.type: regression"):
        train(load_run_config(config), runs_dir=tmp_path / "runs", progress=False)
    config["training"]["step"] = {"name": "adversarial", "strenght": 3, "on": "jet_sdmass"}
    with pytest.raises(ConfigError, match=r"training\.step\.strenght: unknown key"):
        load_run_config(config)


@pytest.mark.parametrize(("streaming", "workers"), [(False, 0), (True, 0), (True, 2)])
def test_a_loss_term_reads_the_jet_mass_of_its_batch(tmp_path: Path, streaming: bool, workers: int) -> None:
    train_file, jets = write_jets(tmp_path)
    file_mass = ak.to_numpy(jets["jet_sdmass"])
    config = load_run_config(config_for(train_file, streaming=streaming, num_workers=workers, buffer_size=300))
    MassRecorder.seen.clear()
    result = train(config, name="recorded", runs_dir=tmp_path / "runs", progress=False)
    assert MassRecorder.seen, "the term was never called"
    ids = np.concatenate([ids for ids, _ in MassRecorder.seen])
    for batch_ids, masses in MassRecorder.seen:
        assert masses.dtype == np.float32
        np.testing.assert_array_equal(masses, file_mass[batch_ids])  # exactly the file's values
    assert sorted(ids.tolist()) == list(range(len(jets)))[: len(ids)] or len(set(ids.tolist())) == len(ids)
    assert len(set(ids.tolist())) >= len(jets) - 64  # one epoch: (almost) every jet, each once
    record = result.history[-1]
    assert {"train_loss", "train_loss_cross_entropy", "train_loss_mass_recorder"} <= set(record)
    assert record["train_loss"] == pytest.approx(record["train_loss_cross_entropy"], rel=1e-6)


DDP_RECORD = textwrap.dedent("""
    import json, os, sys
    from tests.training.test_engine import MassRecorder
    from heplearn.run_config import load_run_config
    from heplearn.training.from_config import train
    config = load_run_config(json.loads(sys.argv[1]))
    train(config, name="ddp", runs_dir=sys.argv[2], progress=False)
    seen = [[ids.tolist(), masses.tolist()] for ids, masses in MassRecorder.seen]
    with open(f"{sys.argv[3]}/rank{os.environ['RANK']}.json", "w") as stream:
        json.dump(seen, stream)
""")


# the streaming variant runs with -m slow (the CI budget); the in-memory one stays in CI
@pytest.mark.parametrize("streaming", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_loss_term_reads_the_jet_mass_under_ddp(tmp_path: Path, streaming: bool) -> None:
    train_file, jets = write_jets(tmp_path)
    file_mass = ak.to_numpy(jets["jet_sdmass"])
    script = tmp_path / "ddp_record.py"
    script.write_text(DDP_RECORD)
    config = json.dumps(config_for(train_file, streaming=streaming))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            config,
            str(tmp_path / "runs"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen_by_rank = []
    for rank in (0, 1):
        batches = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert batches
        for ids, masses in batches:
            np.testing.assert_array_equal(np.asarray(masses, np.float32), file_mass[np.asarray(ids)])
        seen_by_rank.append({i for ids, _ in batches for i in ids})
    assert not seen_by_rank[0] & seen_by_rank[1]  # the shards do not overlap


def test_disco_decorrelates_the_background_score_from_the_mass(tmp_path: Path) -> None:
    """The mass is the best input; with a strong DisCo term the background score stops following it."""
    train_file, _ = write_jets(tmp_path, 2000, seed=8)
    val_jets = ak.with_field(make_jets(1500, seed=9), np.arange(1500, dtype=np.int64), "aux_id")
    val_file = io.write(val_jets, tmp_path / "val.parquet")
    correlations = {}
    for strength in (0.0, 30.0):
        content = config_for(train_file, epochs=6, batch_size=256, learning_rate=3e-3)
        content["data"]["inputs"]["jet"]["variables"] = ["jet_sdmass", "jet_nparticles"]
        content["data"]["val"] = str(val_file)
        content["training"]["loss"] = [
            {"name": "cross_entropy"},
            {"name": "disco", "weight": strength, "on": "jet_sdmass"},
        ]
        result = train(load_run_config(content), name=f"disco{strength:g}", runs_dir=tmp_path / "runs", progress=False)
        assert "val_loss_disco" in result.history[-1]
        model = TrainedModel.load(result.run_dir)
        scores, arrays = model.predict_files([val_file])
        background = arrays.label == 1
        correlations[strength] = float(
            distance_correlation(
                torch.from_numpy(scores[background, 0].astype(np.float64)),
                torch.from_numpy(arrays.observers["jet_sdmass"][background].astype(np.float64)),
            )
        )
    assert correlations[0.0] > 0.1
    assert correlations[30.0] < 0.5 * correlations[0.0]


def test_an_autoencoder_trains_without_labels_and_exports_its_anomaly_score(tmp_path: Path) -> None:
    from heplearn.serving.export import export_run

    background = make_jets(1200, seed=12)
    background = background[ak.to_numpy(background["label_qcd"]) == 1]
    train_file = io.write(background, tmp_path / "qcd.parquet")
    mixed = make_jets(800, seed=13)
    mixed_file = io.write(mixed, tmp_path / "mixed.parquet")
    content = {
        "data": {
            "train": str(train_file),
            "test": str(mixed_file),
            "labels": {"type": "none"},
            "inputs": {"jet": {"variables": ["jet_sdmass", "jet_nparticles", "jet_pt"]}},
        },
        "model": {"name": "autoencoder", "preset": "small"},
        "training": {"epochs": 8, "batch_size": 64, "seed": 1, "threads": 1, "learning_rate": 3e-3},
    }
    result = train(load_run_config(content), name="ae", runs_dir=tmp_path / "runs", progress=False)
    info = json.loads((result.run_dir / "model.json").read_text())
    assert info["task"] == "reconstruction" and info["task_settings"] == {"group": "jet"}
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]

    model = TrainedModel.load(result.run_dir)
    scores, arrays = model.predict_files([mixed_file])
    assert scores.shape == (len(arrays), 1) and model.output_names == ["anomaly_score"]
    standardised = model.preprocessing.apply(arrays).inputs["jet"]
    with torch.inference_mode():
        rebuilt = model.network({"jet": torch.from_numpy(standardised)}).numpy()  # type: ignore[misc]
    np.testing.assert_allclose(scores[:, 0], ((rebuilt - standardised) ** 2).mean(axis=1), rtol=1e-5)
    # trained on QCD alone, the top jets (heavier, more particles) are the anomalies
    from sklearn.metrics import roc_auc_score

    assert not arrays.label.any()  # labels.type none: no labels are read
    assert roc_auc_score(ak.to_numpy(mixed["label_top"]), scores[:, 0]) > 0.8

    export = export_run(result.run_dir)
    session = onnxruntime.InferenceSession(str(export.onnx_path))
    assert [output.name for output in session.get_outputs()] == ["anomaly_score"]
    (onnx_scores,) = session.run(None, {"jet": arrays.inputs["jet"].astype(np.float32)})
    np.testing.assert_allclose(onnx_scores, scores, rtol=1e-4, atol=1e-6)


def write_reweighting_sample(path: Path, n: int, seed: int) -> Path:
    """Source x ~ N(0, 1) (label_source) and target x ~ N(0.5, 1) (label_target), equal numbers."""
    rng = np.random.default_rng(seed)
    is_target = np.arange(n) % 2 == 0
    x = rng.normal(size=n) + 0.5 * is_target
    table = ak.zip(
        {
            "jet_x": x.astype(np.float32),
            "jet_noise": rng.normal(size=n).astype(np.float32),
            "label_target": is_target.astype(np.int64),
            "label_source": (~is_target).astype(np.int64),
        }
    )
    return io.write(table, path)


def test_a_reweighting_task_outputs_the_density_ratio(tmp_path: Path) -> None:
    """w(x) = f/(1−f) must approach p_target/p_source = exp(0.5 x − 0.125) (Andreassen & Nachman)."""
    from heplearn.serving.export import export_run

    train_file = write_reweighting_sample(tmp_path / "train.parquet", 8000, 1)
    test_file = write_reweighting_sample(tmp_path / "test.parquet", 6000, 2)
    content = {
        "data": {
            "train": str(train_file),
            "val": str(test_file),
            "test": str(test_file),
            "labels": {"type": "reweighting", "classes": ["label_target", "label_source"]},
            "inputs": {"jet": {"variables": ["jet_x", "jet_noise"]}},
        },
        "model": {"name": "mlp", "preset": "small", "dropout": 0.0},
        "training": {"epochs": 6, "batch_size": 256, "seed": 2, "threads": 1, "learning_rate": 3e-3},
    }
    result = train(load_run_config(content), name="rw", runs_dir=tmp_path / "runs", progress=False)
    model = TrainedModel.load(result.run_dir)
    weights, arrays = model.predict_files([test_file])
    assert model.output_names == ["weight"] and weights.shape == (len(arrays), 1)
    x = arrays.inputs["jet"][:, 0].astype(np.float64)
    source = arrays.label == 1
    central = source & (np.abs(x) < 1.5)
    np.testing.assert_allclose(np.median(weights[central, 0] / np.exp(0.5 * x[central] - 0.125)), 1.0, atol=0.1)
    # the weighted source reproduces the target's mean of x (0.5) where the unweighted one has 0
    reweighted_mean = np.average(x[source], weights=weights[source, 0])
    assert reweighted_mean == pytest.approx(np.mean(x[~source]), abs=0.06)
    assert abs(np.mean(x[source])) < 0.06

    export = export_run(result.run_dir)
    session = onnxruntime.InferenceSession(str(export.onnx_path))
    assert [output.name for output in session.get_outputs()] == ["weights"]
    (onnx_weights,) = session.run(None, {"jet": arrays.inputs["jet"].astype(np.float32)})
    np.testing.assert_allclose(onnx_weights, weights, rtol=1e-4)


def test_resolved_config_records_the_terms(tmp_path: Path) -> None:
    train_file, _ = write_jets(tmp_path, 200)
    config = load_run_config(config_for(train_file, loss=[{"name": "cross_entropy"}]))
    result = train(config, name="terms", runs_dir=tmp_path / "runs", progress=False)
    resolved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert resolved["training"]["loss"] == [{"name": "cross_entropy", "weight": 1.0}]
    assert resolved["training"]["step"] == {"name": "single"}
