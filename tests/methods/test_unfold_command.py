"""``heplearn unfold`` on files: the run directory, the output weights, and bad input refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from heplearn.data import io
from tests.gaussian_unfolding import gaussian_iterates, weighted_moments
from tests.test_cli import run


def write_samples(folder: Path, n: int = 12_000, seed: int = 2) -> dict[str, Path]:
    """The Gaussian problem as files: simulation (gen_x, reco_x, 10% lost with reco_x = −10), data."""
    rng = np.random.default_rng(seed)
    gen = rng.normal(0, 1, n)
    reco = gen + rng.normal(0, 0.5, n)
    reco[rng.random(n) < 0.1] = -10.0
    truth = rng.normal(0.2, 0.8, n)
    data = (truth + rng.normal(0, 0.5, n))[rng.random(n) > 0.1]
    # 10% more truth rows without a generator level: the dummy -10 with weight 0 (must not set the bins)
    truth_weight = np.r_[np.ones(n), np.zeros(n // 10)]
    truth = np.r_[truth, np.full(n // 10, -10.0)]
    simulation = ak.zip({"gen_x": gen.astype(np.float32), "reco_x": reco.astype(np.float32)})
    return {
        "simulation": io.write(simulation, folder / "simulation.parquet"),
        "data": io.write(
            ak.zip({"reco_x": data.astype(np.float32), "event_weight": np.ones(len(data), np.float32)}),
            folder / "data.parquet",
        ),
        "other": io.write(ak.zip({"reco_y": data.astype(np.float32)}), folder / "other.parquet"),
        "truth": io.write(
            ak.zip({"gen_x": truth.astype(np.float32), "truth_weight": truth_weight.astype(np.float32)}),
            folder / "truth.parquet",
        ),
    }


def write_config(folder: Path, files: dict[str, Path], **changes: Any) -> Path:
    content = {
        "simulation": str(files["simulation"]),
        "data": str(files["data"]),
        "gen": {"inputs": {"jet": {"variables": ["gen_x"]}}},
        "reco": {"inputs": {"jet": {"variables": ["reco_x"]}}},
        "reco_pass": "reco_x > -9",
        "weights": {"data": "event_weight"},
        "model": {"name": "mlp", "hidden": [32, 32], "dropout": 0.0, "batch_norm": False},
        "training": {
            "epochs": 10,
            "batch_size": 1000,
            "learning_rate": 3e-3,
            "weight_decay": 0.0,
            "threads": 1,
            "early_stopping_patience": None,
        },
        "unfolding": {"iterations": 2, "validation_fraction": 0.1, "no_reco": "previous"},
        **changes,
    }
    path = folder / "unfold.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def test_unfold_writes_a_run_with_the_weights_of_every_iteration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_samples(tmp_path)
    config = write_config(
        tmp_path,
        files,
        truth=str(files["truth"]),
        weights={"data": "event_weight", "truth": "truth_weight"},
        comparison={"bins": 20, "bootstraps": 3, "labels": {"gen_x": "x [GeV]"}},
    )
    code, out, err = run(
        ["unfold", "--config", str(config), "--name", "gauss", "--runs-dir", str(tmp_path / "runs"), "--no-progress"],
        capsys,
    )
    assert code == 0, err
    run_dir = tmp_path / "runs" / "gauss"
    assert f"weights: {run_dir / 'weights.parquet'}" in out
    table = pq.read_table(run_dir / "weights.parquet").to_pandas()
    assert list(table.columns) == ["prior_weight", "weight", "weight_iteration_1", "weight_iteration_2"]
    assert len(table) == 12_000
    gen = ak.to_numpy(io.read(files["simulation"])["gen_x"]).astype(np.float64)
    # the 10% lost events are random, so the unfolding still follows the recursion (within statistics)
    assert weighted_moments(gen, table["weight"].to_numpy()) == pytest.approx(gaussian_iterates(2)[-1], abs=0.03)
    for iteration in ("01", "02"):
        per_iteration = pq.read_table(run_dir / "iterations" / iteration / "weights.parquet")
        assert per_iteration.column_names == ["pull", "push"]
        assert (run_dir / "iterations" / iteration / "step1" / "metrics.jsonl").is_file()
        assert (run_dir / "iterations" / iteration / "step2" / "metrics.jsonl").is_file()
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["unfolding"]["iterations"] == 2 and "git_hash" in resolved["provenance"]
    # the closure figure: OmniFold and IBU much closer to the truth than the generator
    assert (run_dir / "figures" / "unfolding.png").is_file() and (run_dir / "figures" / "unfolding.pdf").is_file()
    discriminators = json.loads((run_dir / "unfolding.json").read_text())["triangular_discriminator_1e3"]["gen_x"]
    assert discriminators["generator"] > 5 * discriminators["OmniFold"]
    assert discriminators["generator"] > 5 * discriminators["IBU"]
    closure = json.loads((run_dir / "unfolding.json").read_text())["closure_chi2"]["gen_x"]
    assert set(closure) == {"generator", "IBU", "OmniFold"} and closure["OmniFold"]["ndf"] == 19
    assert closure["generator"]["chi2_ndf"] > 3 * closure["OmniFold"]["chi2_ndf"]
    assert not list(run_dir.rglob("*.tmp*"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": "other"}, "reco_x"),
        ({"set": "unfolding.iterations=0"}, "unfolding.iterations"),
        ({"set": "weights.data=event_weight * 0"}, "data: the total weight is 0"),
        ({"set": "weights.data=-event_weight"}, "data: the total weight is -"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, str], message: str
) -> None:
    files = write_samples(tmp_path, n=500)
    if "data" in change:
        files = {**files, "data": files[change["data"]]}
    config = write_config(tmp_path, files)
    overrides = ["--set", change["set"]] if "set" in change else []
    code, _, err = run(
        ["unfold", "--config", str(config), "--runs-dir", str(tmp_path / "runs"), "--no-progress", *overrides], capsys
    )
    assert code == 2
    assert err.startswith("heplearn: error:") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
