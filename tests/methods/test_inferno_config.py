"""INFERNO from a run config: ``data.labels.type: summary_statistic``, the up/down samples of each
nuisance in ``data.variations``, the ``inferno`` term's settings in ``training.loss``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import torch
import yaml

from heplearn.data import io
from heplearn.data.config import VARIATION_OBSERVER
from heplearn.data.in_memory import InMemoryJets, load_with_variations
from heplearn.data.preprocessing import Preprocessing
from heplearn.errors import ConfigError
from heplearn.methods.inferno import InfernoSettings, NuisanceSettings, variation_codes
from heplearn.run_config import load_run_config
from heplearn.runs import RunDirectory
from heplearn.stats.templates import run_observable
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import make_task
from heplearn.training.trainer import InMemorySource, Trainer
from tests.test_cli import run

BINS = 4


def write_sample(path: Path, signal: int, background: int, shift: float, seed: int) -> Path:
    """Signal N((0, 0), I), background N((2 + shift, 0), diag(5, 9)) (the INFERNO toy's first two
    features, arXiv:1806.04743 section 5); ``shift`` is the nuisance r."""
    rng = np.random.default_rng(seed)
    x0 = np.concatenate([rng.normal(0, 1, signal), rng.normal(2 + shift, np.sqrt(5), background)])
    x1 = np.concatenate([rng.normal(0, 1, signal), rng.normal(0, 3, background)])
    is_signal = np.repeat([1, 0], [signal, background])
    jets = ak.zip(
        {
            "x0": x0.astype(np.float32),
            "x1": x1.astype(np.float32),
            "label_signal": is_signal,
            "label_background": 1 - is_signal,
        },
        depth_limit=1,
    )
    return io.write(jets, path, {"seed": seed})


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("inferno_samples")
    files = {}
    for split, (signal, background, seed) in {"train": (300, 600, 1), "val": (150, 300, 2)}.items():
        nominal = write_sample(folder / f"nominal_{split}.parquet", signal, background, 0.0, seed)
        files[f"nominal_{split}"] = str(nominal)
        for side, shift in (("up", 0.5), ("down", -0.5)):  # a background-only systematic
            files[f"{side}_{split}"] = str(
                write_sample(
                    folder / f"{side}_{split}.parquet",
                    0,
                    background // 2,
                    shift,
                    seed + 10 * (1 if side == "up" else 2),
                )
            )
    return files


def config_dict(samples: dict[str, str]) -> dict[str, Any]:
    return {
        "data": {
            "train": samples["nominal_train"],
            "val": samples["nominal_val"],
            "inputs": {"jet": {"variables": ["x0", "x1"]}},
            "labels": {"type": "summary_statistic", "classes": ["label_signal", "label_background"]},
            "variations": {
                "r": {
                    "up": {"train": samples["up_train"], "val": samples["up_val"]},
                    "down": {"train": samples["down_train"], "val": samples["down_val"]},
                }
            },
        },
        "model": {"name": "mlp", "hidden": [16], "dropout": 0.0, "batch_norm": False},
        "training": {
            "epochs": 3,
            "batch_size": 4096,
            "learning_rate": 1e-2,
            "schedule": "constant",
            "warmup_fraction": 0.0,
            "seed": 0,
            "bins": BINS,
            "loss": [
                {
                    "name": "inferno",
                    "signal_yield": 50,
                    "background_yield": 1000,
                    "temperature": 0.1,
                    "nuisances": [{"name": "r", "step": 0.5, "constraint": 1.0}],
                }
            ],
        },
    }


def write_config(path: Path, content: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


def test_a_run_config_trains_inferno_and_writes_a_run(
    samples: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path / "inferno.yaml", config_dict(samples))
    code, _, err = run(
        ["train", "-c", str(path), "--runs-dir", str(tmp_path / "runs"), "--name", "inferno", "--no-progress"], capsys
    )
    assert code == 0, err
    folder = tmp_path / "runs" / "inferno"
    info = json.loads((folder / "model.json").read_text())
    assert info["task"] == "summary_statistic" and info["num_outputs"] == BINS
    history = RunDirectory(folder).read_history()
    assert len(history) == 3 and all(np.isfinite(record["val_loss"]) for record in history)

    # the run applies like any other: BINS bin probabilities per jet, summing to one
    model = TrainedModel.load(folder)
    assert model.output_names == [f"bin_{index}" for index in range(BINS)]

    # the recorded validation loss is the INFERNO variance of the validation jets, their variations included:
    # rebuilt here from the run's weights (the best epoch's), it is the same number, and larger than the
    # stat-only variance of the same network (the profiled nuisance costs precision), itself below the
    # one-bin value s + b (binning can only add information while b is known)
    config = load_run_config(path)
    preprocessing = Preprocessing.load(folder / "preprocessing.json")
    val = InMemoryJets.from_split(config.data, "val", preprocessing)
    assert sorted(np.unique(val.arrays.observers[VARIATION_OBSERVER]).tolist()) == [-1, 0, 1]
    probabilities = model.predict(load_with_variations(config.data, "val")[0])
    assert probabilities.shape == (len(val), BINS)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    assert model.network is not None
    task = make_task(config, val.class_names)
    trainer = Trainer(model.network, config.training, task, None)
    source = InMemorySource(val, 4096, False, 0)
    best = min(record["val_loss"] for record in history)
    assert trainer.evaluate(source)["loss"] == pytest.approx(best, rel=1e-4)
    stat_only = load_run_config(
        path,
        [
            "data.variations={}",
            "training.loss=[{name: inferno, signal_yield: 50, background_yield: 1000, temperature: 0.1}]",
        ],
    )
    nominal = InMemoryJets.from_split(stat_only.data, "val", preprocessing)
    variance = Trainer(model.network, stat_only.training, make_task(stat_only, val.class_names), None).evaluate(
        InMemorySource(nominal, 4096, False, 0)
    )["loss"]
    assert variance < min(best, 50 + 1000)

    # heplearn fit takes the run like a classifier's: each jet's value is its bin, (argmax + ½) / bins
    values, labels, _, class_names, _ = run_observable(folder, [samples["nominal_val"]], progress=False)
    nominal = probabilities[val.arrays.observers[VARIATION_OBSERVER] == 0]
    np.testing.assert_allclose(values, (nominal.argmax(1) + 0.5) / BINS)
    assert class_names == ["signal", "background"] and (labels == 0).sum() == 150


def test_the_data_codes_follow_the_nuisances_by_name() -> None:
    config = load_run_config(
        {
            "data": {
                "inputs": {"jet": {"variables": ["x0"]}},
                "labels": {"type": "summary_statistic"},
                "variations": {"tune": {"up": {}, "down": {}}, "fsr": {"up": {}, "down": {}}},
            },
            "model": {"name": "mlp"},
        }
    )
    settings = InfernoSettings(
        nuisances=[NuisanceSettings(name="fsr", step=1.0), NuisanceSettings(name="tune", step=1.0)]
    )
    codes = variation_codes(settings, config.data)
    assert codes is not None
    # data codes −2 … 2 (tune is the first variation, fsr the second) -> nuisance codes (fsr first)
    assert codes.tolist() == [-1, -2, 0, 2, 1]
    assert torch.equal(codes[torch.tensor([1, -1, 2]) + 2], torch.tensor([2, -2, 1]))
    with pytest.raises(ConfigError, match=r"nuisances \(fsr\) must be the data.variations \(tune, fsr\)"):
        variation_codes(InfernoSettings(nuisances=[NuisanceSettings(name="fsr", step=1.0)]), config.data)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c["training"]["loss"][0].update(temprature=0.1), r"training\.loss\[0\].*temprature"),
        (lambda c: c["data"]["variations"]["r"].update(upp={}), r"data\.variations\.r\.upp"),
        (
            lambda c: c["training"]["loss"][0]["nuisances"][0].update(step=-1),
            r"training\.loss\[0\]\.nuisances\.0\.step",
        ),
        (lambda c: c["training"].update(bins=1), r"training\.bins"),
        (lambda c: c["data"]["labels"].update(type="summary_statistics"), r"data\.labels\.type"),
        (lambda c: c["training"].update(streaming=True), r"data\.variations: .*training\.streaming: false"),
    ],
)
def test_a_bad_key_is_refused_by_name(
    samples: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, named: str
) -> None:
    content = config_dict(samples)
    change(content)
    path = write_config(tmp_path / "bad.yaml", content)
    code, _, err = run(["train", "-c", str(path), "--runs-dir", str(tmp_path / "runs"), "--no-progress"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert re.search(named, err), err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_nuisance_without_its_variation_is_refused(
    samples: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content = config_dict(samples)
    content["training"]["loss"][0]["nuisances"].append({"name": "tune", "step": 1.0})
    path = write_config(tmp_path / "bad.yaml", content)
    code, _, err = run(["train", "-c", str(path), "--runs-dir", str(tmp_path / "runs"), "--no-progress"], capsys)
    assert code == 2 and "data.variations (r)" in err and "r, tune" in err
