"""``heplearn anomaly``: train a VAE, set and validate its threshold with a pure rate, hunt a bump;
bad input ends in one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

from heplearn.data import io
from heplearn.data.jets import JetArrays
from heplearn.trained_model import TrainedModel
from tests.methods.test_cwola import SIDEBANDS, SR, TRUE_SHAPE, sample_dijet
from tests.methods.test_quantile_cut import sculpting_background
from tests.test_cli import run


def gaussian_file(path: Path, n: int, seed: int) -> Path:
    x = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    return io.write(ak.zip({f"x{i}": np.ascontiguousarray(x[:, i]) for i in range(4)}), path)


def test_train_then_threshold_with_validation_and_pure_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train, calibration, check = (
        gaussian_file(tmp_path / f"{name}.parquet", n, seed)
        for name, n, seed in (("train", 2000, 1), ("calibration", 20_000, 2), ("check", 20_000, 3))
    )
    code, out, err = run(
        [
            "anomaly",
            "train",
            "--train",
            str(train),
            "--variables",
            "x0,x1,x2,x3",
            "--preset",
            "small",
            "--beta",
            "0.2",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--name",
            "vae",
            "--no-progress",
            "--set",
            "training.epochs=2",
            "--set",
            "training.threads=1",
        ],
        capsys,
    )
    assert code == 0, err
    run_dir = tmp_path / "runs" / "vae"
    assert out.startswith(f"run: {run_dir}")
    code, out, err = run(
        [
            "anomaly",
            "threshold",
            str(run_dir),
            "--background",
            str(calibration),
            "--efficiency",
            "0.01",
            "--validate",
            str(check),
            "--trigger",
            "x0 > 2",
        ],
        capsys,
    )
    assert code == 0, err
    report = json.loads((run_dir / "threshold.json").read_text())
    assert report["threshold"]["efficiency"] == pytest.approx(0.01, abs=1 / 20_000)
    # the validation and the pure rate, recomputed from the run's scores of the check file
    model = TrainedModel.load(run_dir)
    x = np.stack([ak.to_numpy(io.read(check)[f"x{i}"]) for i in range(4)], axis=1)
    scores = model.predict(JetArrays({"jet": x}, None, np.zeros(len(x), np.int64), np.ones(len(x), np.float32)))
    accepted = scores[:, 0] > report["threshold"]["value"]
    assert report["validation"]["efficiency"] == pytest.approx(accepted.mean())
    assert abs(report["validation"]["pull"]) < 4
    assert report["efficiencies"]["pure"] == pytest.approx((accepted & ~(x[:, 0] > 2)).mean())
    assert report["efficiencies"]["others"]["x0 > 2"] == pytest.approx((x[:, 0] > 2).mean())
    assert "pull" in out and "pure" in out
    html = (run_dir / "threshold_report" / "report.html").read_text()
    assert "data:image/png;base64," in html and "efficiency on the validation sample" in html
    # a rate above the input rate: one line, exit 2
    code, _, err = run(
        ["anomaly", "threshold", str(run_dir), "--background", str(calibration), "--rate", "50MHz"], capsys
    )
    assert code == 2 and "above the input rate" in err and len(err.strip().splitlines()) == 1


def test_cwola_command_writes_the_table_and_the_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(6)
    mjj = sample_dijet(6000, rng, TRUE_SHAPE, *SIDEBANDS)
    events = io.write(
        ak.zip({"mjj": mjj, "f0": rng.normal(size=6000), "f1": rng.normal(size=6000)}), tmp_path / "events.parquet"
    )
    output = tmp_path / "hunt"
    code, out, err = run(
        [
            "anomaly",
            "cwola",
            "--data",
            str(events),
            "--features",
            "f0,f1",
            "--efficiencies",
            "0.1",
            "--folds",
            "2",
            "--epochs",
            "1",
            "--output",
            str(output),
        ],
        capsys,
    )
    assert code == 0, err
    table = json.loads((output / "cwola.json").read_text())["selections"]
    assert [row["efficiency"] for row in table] == [1.0, 0.1]
    in_sr = (mjj > 3300) & (mjj < 3700)
    assert table[0]["observed"] == in_sr.sum()  # before any cut: every SR event
    assert (output / "spectra.png").stat().st_size > 10_000 and "Z = " in out
    code, _, err = run(
        [
            "anomaly",
            "cwola",
            "--data",
            str(events),
            "--features",
            "f0,f1",
            "--sidebands",
            "3400,5000",
            "--output",
            str(output),
        ],
        capsys,
    )
    assert code == 2 and "must enclose the signal region" in err


def test_a_latent_score_without_an_encoder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = gaussian_file(tmp_path / "train.parquet", 50, 1)
    arguments = ["anomaly", "train", "--train", str(train), "--variables", "x0,x1,x2,x3", "--runs-dir", str(tmp_path)]
    code, _, err = run([*arguments, "--model", "autoencoder", "--score", "latent_norm"], capsys)
    assert code == 2 and "no encoder exported for it" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.glob("*/model.json"))  # nothing trained, nothing half-written


def calorimeter_events(path: Path, n: int, seed: int) -> Path:
    """Events with 0–4 jets and 0–2 photons (NanoAOD-style jagged pt, eta, phi): the calorimeter image's input."""
    rng = np.random.default_rng(seed)
    fields = {}
    for collection, most in (("Jet", 4), ("Photon", 2)):
        counts = rng.integers(0, most + 1, n)
        total = int(counts.sum())
        values = {
            "pt": rng.exponential(50.0, total) + 20.0,
            "eta": rng.uniform(-2.8, 2.8, total),
            "phi": rng.uniform(-np.pi, np.pi, total),
        }
        for name, flat in values.items():
            fields[f"{collection}_{name}"] = ak.unflatten(flat.astype(np.float32), counts)
    return io.write(ak.zip(fields, depth_limit=1), path)


@pytest.mark.parametrize("step", ["plain", "nae"])
def test_cicada_trains_from_the_command_line_and_is_thresholded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], step: str
) -> None:
    train = calorimeter_events(tmp_path / "train.parquet", 256, 1)
    calibration = calorimeter_events(tmp_path / "calibration.parquet", 1000, 2)
    arguments = ["anomaly", "train", "--train", str(train), "--variables", "Jet,Photon", "--model", "cicada"]
    options = ["--preset", "small", "--step", step, "--pretrain-steps", "2", "--runs-dir", str(tmp_path / "runs")]
    settings = ["--set", "training.epochs=1", "--set", "training.threads=1", "--set", "training.batch_size=64"]
    code, out, err = run([*arguments, *options, *settings, "--name", step, "--no-progress"], capsys)
    run_dir = tmp_path / "runs" / step
    assert code == 0 and out.startswith(f"run: {run_dir}"), err
    model = TrainedModel.load(run_dir)
    assert model.config.model.name == "cicada"
    assert model.config.training.step.name == ("normalized_autoencoder" if step == "nae" else "single")
    # the run's score is CICADA's: the mean squared error over the 18 × 14 regions of the event's image
    scores, arrays = model.predict_files([calibration])
    assert arrays.inputs["image"].shape[1:] == (1, 18, 14)
    image = torch.from_numpy(arrays.inputs["image"][:5])
    with torch.inference_mode():
        reconstruction = model.network({"image": image}).reshape(image.shape)
    assert scores[:5, 0] == pytest.approx(((reconstruction - image) ** 2).mean(dim=(1, 2, 3)).numpy(), rel=1e-4)
    code, out, err = run(
        ["anomaly", "threshold", str(run_dir), "--background", str(calibration), "--efficiency", "0.1"], capsys
    )
    assert code == 0 and out.startswith("threshold: score > "), err
    report = json.loads((run_dir / "threshold.json").read_text())
    assert report["threshold"]["efficiency"] == pytest.approx((scores[:, 0] > report["threshold"]["value"]).mean())


def test_the_nae_step_refuses_the_vae(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = gaussian_file(tmp_path / "train.parquet", 50, 1)
    arguments = ["anomaly", "train", "--train", str(train), "--variables", "x0,x1,x2,x3", "--runs-dir", str(tmp_path)]
    code, _, err = run([*arguments, "--step", "nae"], capsys)
    assert code == 2 and "model vae has a variational one" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.glob("*/model.json"))


def test_quantile_cut_command_flattens_the_efficiency(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    score, mass = sculpting_background(10_000, rng)
    events = io.write(ak.zip({"score": score, "mjj": mass}), tmp_path / "background.parquet")
    output = tmp_path / "qr"
    arguments = ["anomaly", "quantile-cut", "--background", str(events), "--score", "score", "--output", str(output)]
    code, out, err = run([*arguments, "--efficiency", "0.1", "--bins", "5", "--epochs", "20"], capsys)
    assert code == 0 and "bins" in out, err
    report = json.loads((output / "quantile_cut.json").read_text())
    rows = report["bins"]
    assert [row["events"] for row in rows] == [2000] * 5  # bins of equal population
    assert sum(row["efficiency"] * row["events"] for row in rows) / 10_000 == pytest.approx(report["passed"])
    assert report["passed"] == pytest.approx(0.1, abs=0.015)
    regressed = np.array([row["efficiency"] for row in rows])
    inclusive = np.array([row["inclusive_cut_efficiency"] for row in rows])
    assert inclusive[-1] > 3 * inclusive[0]  # one cut sculpts ...
    assert np.abs(regressed - 0.1).max() < 0.025  # ... the regressed one keeps ε in every bin (σ ≈ 0.007)
    assert (output / "efficiency_by_bin.png").stat().st_size > 10_000
    code, _, err = run([*arguments, "--efficiency", "1.5"], capsys)
    assert code == 2 and r"lies in (0, 1)" in err and len(err.strip().splitlines()) == 1
    code, _, err = run([*arguments, "--efficiency", "0.1", "--run", str(tmp_path)], capsys)
    assert code == 2 and "not both" in err


def test_cathode_command_scores_the_signal_region(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(8)
    mjj = sample_dijet(5000, rng, TRUE_SHAPE, *SIDEBANDS)
    background = rng.normal(size=(5000, 2)) + (mjj[:, None] - 3000.0) / 1000.0  # features that follow the mass
    signal_mass = rng.uniform(*SR, 100)
    signal = rng.normal(3.0, 0.3, size=(100, 2))  # far from the SR background: any working CATHODE finds it
    features, mass = np.r_[background, signal], np.r_[mjj, signal_mass]
    truth = np.r_[np.zeros(5000, np.int64), np.ones(100, np.int64)]
    events = io.write(
        ak.zip({"mjj": mass, "f0": features[:, 0].copy(), "f1": features[:, 1].copy(), "is_signal": truth}),
        tmp_path / "events.parquet",
    )
    output = tmp_path / "cathode"
    arguments = ["anomaly", "cathode", "--data", str(events), "--features", "f0,f1", "--output", str(output)]
    fast = ["--flow-epochs", "3", "--transforms", "2", "--hidden", "16,16", "--epochs", "3", "--folds", "2"]
    fast = [*fast, "--no-progress"]
    code, out, err = run([*arguments, *fast, "--label", "is_signal"], capsys)
    assert code == 0 and "max SIC" in out, err
    summary = json.loads((output / "cathode.json").read_text())
    in_sr = (mass > SR[0]) & (mass < SR[1])
    assert summary["signal_region_events"] == in_sr.sum() and summary["samples"] == 4 * in_sr.sum()
    assert summary["sideband_events"] == (~in_sr).sum()
    scores = io.read(output / "scores.parquet")
    assert len(scores) == in_sr.sum() and np.array_equal(ak.to_numpy(scores["mass"]), mass[in_sr])
    labelled = summary["labelled"]
    assert labelled["signal"] == 100 and labelled["auc"] > 0.9 and labelled["max_sic"] > 2
    assert (output / "cathode.png").stat().st_size > 10_000
    # overlapping sidebands, then a flow without transforms: one line, exit 2
    code, _, err = run([*arguments, "--sidebands", "3400,5000"], capsys)
    assert code == 2 and "must enclose the signal region" in err and len(err.strip().splitlines()) == 1
    code, _, err = run([*arguments, "--transforms", "0", "--output", str(tmp_path / "bad")], capsys)
    assert code == 2 and "transforms ≥ 1" in err and not (tmp_path / "bad").exists()


def test_quantile_cut_of_a_trained_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(size=(3000, 4)).astype(np.float32)
    mjj = 1500.0 + rng.exponential(600.0, 3000)
    columns = {f"x{i}": np.ascontiguousarray(x[:, i]) for i in range(4)}
    events = io.write(ak.zip({**columns, "mjj": mjj}), tmp_path / "background.parquet")
    arguments = ["anomaly", "train", "--train", str(events), "--variables", "x0,x1,x2,x3", "--model", "autoencoder"]
    options = ["--preset", "small", "--runs-dir", str(tmp_path / "runs"), "--name", "ae", "--no-progress"]
    code, _, err = run([*arguments, *options, "--set", "training.epochs=1", "--set", "training.threads=1"], capsys)
    assert code == 0, err
    output = tmp_path / "qr"
    arguments = ["anomaly", "quantile-cut", "--run", str(tmp_path / "runs" / "ae"), "--background", str(events)]
    code, out, err = run([*arguments, "--efficiency", "0.1", "--bins", "3", "--epochs", "5", "-o", str(output)], capsys)
    assert code == 0 and "over 3 bins" in out, err
    report = json.loads((output / "quantile_cut.json").read_text())
    # the score cut is the run's: its inclusive (1 − ε) quantile on these events
    scores, _ = TrainedModel.load(tmp_path / "runs" / "ae").predict_files([events])
    assert report["inclusive_cut"] == pytest.approx(np.quantile(scores[:, 0], 0.9), rel=1e-5)
    assert report["score"].startswith("run ") and report["events"] == 3000
