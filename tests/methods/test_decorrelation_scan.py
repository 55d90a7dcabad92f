"""`heplearn decorrelate`: the λ scan trades background rejection for less mass sculpting."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import yaml

from heplearn.data import io
from heplearn.errors import ConfigError
from heplearn.methods.decorrelation_scan import (
    decorrelated_config,
    decorrelation_scan,
    method_settings,
    parse_methods,
    scan_configs,
)
from heplearn.run_config import load_run_config
from tests.conftest import make_jets
from tests.test_cli import run


def overlapping_jets(n: int, seed: int) -> ak.Array:
    """The test jets with a falling QCD mass spectrum under the top peak (they overlap, as in data)."""
    jets = make_jets(n, seed=seed)
    rng = np.random.default_rng(seed + 100)
    is_top = ak.to_numpy(jets["label_top"]) == 1
    mass = np.where(is_top, rng.normal(170, 25, n), 30 + rng.exponential(70, n))
    return ak.with_field(jets, mass.astype(np.float32), "jet_sdmass")


def write_config(folder: Path) -> Path:
    files = {
        split: io.write(overlapping_jets(n, seed), folder / f"{split}.parquet")
        for split, n, seed in (("train", 2500, 41), ("val", 800, 42), ("test", 1500, 43))
    }
    config = {
        "data": {
            **{split: str(path) for split, path in files.items()},
            "inputs": {"jet": {"variables": ["jet_sdmass", "jet_nparticles"]}},
            "labels": {"classes": ["label_top", "label_qcd"]},
        },
        "model": {"name": "mlp", "preset": "small"},
        "training": {
            "epochs": 5,
            "batch_size": 256,
            "seed": 1,
            "threads": 1,
            "learning_rate": 3e-3,
            "early_stopping_patience": None,
        },
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_scan_trades_rejection_for_less_sculpting(tmp_path: Path) -> None:
    config = load_run_config(write_config(tmp_path))
    scan = decorrelation_scan(
        config,
        [0.0, 30.0],
        "jet_sdmass",
        "disco,adversarial,planing",
        tmp_path / "scan",
        signal_efficiency=0.7,  # at 50% no background jet of the decorrelated taggers passes in this toy
        progress=False,
        settings={"adversarial": {"bins": 10, "pretrain_steps": 10}},
    )
    points = {point.method: point for point in scan.points}
    assert [point.method for point in scan.points] == ["plain", "disco", "adversarial", "planing"]
    plain = points["plain"]
    for method in ("disco", "adversarial"):
        assert points[method].inverse_jsd > 2 * plain.inverse_jsd, method  # sculpts less
        assert points[method].rejection < plain.rejection, method  # and rejects less: the mass was the best input
    assert points["planing"].inverse_jsd > plain.inverse_jsd  # a flat mass in training sculpts less too
    assert points["planing"].strength is None  # one point, no λ
    assert scan.window.inverse_jsd < points["disco"].inverse_jsd  # a mass window sculpts by construction
    saved = json.loads((tmp_path / "scan" / "scan.json").read_text())
    assert [point["strength"] for point in saved["points"]] == [0.0, 30.0, 30.0, None]
    assert saved["methods"] == ["disco", "adversarial", "planing"]
    assert scan.figures[0].name.startswith("disco_adversarial_planing_scan")
    assert all(path.is_file() for path in scan.figures)
    run_config = yaml.safe_load((Path(points["adversarial"].run_dir or "") / "config.yaml").read_text())
    assert run_config["training"]["step"]["pretrain_steps"] == 10  # the settings reached the adversary


def test_each_method_builds_its_config(tmp_path: Path) -> None:
    config = load_run_config(write_config(tmp_path))
    plan = scan_configs(
        config, [0, 3, 10], "jet_sdmass", ["disco", "adversarial", "planing"], {"planing": {"bins": 25}}
    )
    assert [(method, strength) for method, strength, _ in plan] == [
        ("plain", 0.0),
        ("disco", 3),
        ("disco", 10),
        ("adversarial", 3),
        ("adversarial", 10),
        ("planing", 1.0),
    ]
    plain, disco, _, adversary, _, planing = (run_config.training for _, _, run_config in plan)
    assert plain.step.name == "single" and plain.loss == "auto"
    assert [(term.name, term.weight) for term in disco.loss] == [("cross_entropy", 1.0), ("disco", 3.0)]
    assert adversary.step.name == "adversarial" and adversary.step.model_dump()["strength"] == 3
    assert [term.name for term in planing.loss] == ["planed_cross_entropy"]
    assert planing.loss[0].model_dump()["bins"] == 25


def test_bad_scans_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = write_config(tmp_path)
    config = load_run_config(config_path)
    with pytest.raises(ConfigError, match="must be 0 or more"):
        decorrelated_config(config, "disco", "jet_sdmass", -1.0)
    with pytest.raises(ConfigError, match="choose one of disco, adversarial, planing"):
        decorrelated_config(config, "pivot", "jet_sdmass", 1.0)
    with pytest.raises(ConfigError, match="'pivot': choose from disco, adversarial, planing"):
        parse_methods("disco,pivot")
    with pytest.raises(ConfigError, match="settings for planing: that method is not in the scan"):
        scan_configs(config, [1.0], "jet_sdmass", ["disco"], {"planing": {"bins": 10}})
    with pytest.raises(ConfigError, match="at least one strength above 0"):
        scan_configs(config, [0.0], "jet_sdmass", ["disco"])
    with pytest.raises(ConfigError, match=r"--adversary 'bins': expected KEY=VALUE"):
        method_settings({"adversarial": ["bins"]})
    assert method_settings({"adversarial": ["range=[0, 300]", "bins=20"], "planing": []}) == {
        "adversarial": {"range": [0, 300], "bins": 20}
    }
    arguments = ["decorrelate", "-c", str(config_path), "--observer", "jet_sdmass", "--no-progress"]
    output = ["-o", str(tmp_path / "out")]
    for extra, message in (
        (["--lambdas", "0,-3"], "must be 0 or more"),
        (["--method", "disco,pivot"], "'pivot': choose from"),
        (["--method", "disco,adversarial", "--adversary", "bins"], "--adversary 'bins': expected KEY=VALUE"),
        (["--method", "adversarial", "--adversary", "bin=20"], "bin: unknown key"),
        (["--method", "disco", "--planing", "bins=20"], "settings for planing"),
    ):
        code, _, err = run([*arguments, *extra, *output], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (extra, err)
    assert not (tmp_path / "out").exists()  # refused before anything is trained or written
