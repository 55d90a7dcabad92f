"""evaluate_run and compare_runs on real runs: the files, the figures, the Neyman–Pearson check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from heplearn.data import io
from heplearn.errors import DataError, HeplearnError
from heplearn.evaluation.compare import compare_runs
from heplearn.evaluation.evaluate import EvaluationSettings, evaluate_run
from heplearn.evaluation.plots import PlotStyle
from heplearn.run_config import load_run_config
from heplearn.trained_model import TrainedModel
from heplearn.training.from_config import train
from tests.evaluation.conftest import run_config, write_splits

FAST = EvaluationSettings(
    style=PlotStyle(formats=("png",), dpi=50), bootstrap=20, importance_repeats=1, importance_jets=600
)


def read_metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())  # strict JSON: no NaN or Infinity


def test_evaluate_a_particle_model(
    tagging_runs: dict[str, Path], tagging_files: dict[str, str], tmp_path: Path
) -> None:
    result = evaluate_run(
        tagging_runs["pfn"], [tagging_files["test"]], tmp_path / "out", dataset="test", settings=FAST, progress=False
    )
    metrics = read_metrics(tmp_path / "out")
    assert result.report == tmp_path / "out" / "report.html" and result.metrics == metrics
    probabilities, arrays = TrainedModel.load(tagging_runs["pfn"]).predict_files([tagging_files["test"]])
    expected = roc_auc_score(arrays.label == 0, probabilities[:, 0])
    assert metrics["auc"] == pytest.approx(expected, rel=1e-6)
    assert 0 < metrics["auc_uncertainty"] < 0.05
    assert [row["signal_efficiency"] for row in metrics["rejection"]] == [0.3, 0.5, 0.7]
    assert metrics["overtraining"] is None and metrics["multiclass"] is None
    features = {f["name"]: f for f in metrics["feature_importance"]["features"]}
    assert set(features) == {"part_deta", "part_dphi", "part_logpt"}  # the groups a PFN reads
    assert all(f["kind"] == "particle" and f["gain"] is None for f in features.values())
    assert metrics["sculpting"]["observer"] == "jet_sdmass"
    assert set(metrics["efficiency_versus"]) == {"jet_pt", "jet_eta", "jet_sdmass"}  # η added for evaluation
    names = {path.name for path in result.plots}
    assert {
        "roc.png",
        "scores.png",
        "confusion.png",
        "sculpting.png",
        "importance.png",
        "calibration.png",
        "efficiency_jet_pt.png",
        "significance.png",
    } <= names
    html = result.report.read_text()
    assert html.count("data:image/png;base64,") == len(result.plots)
    assert "pfn" in html and "Environment" in html and "particles:" in html  # the config is embedded


def test_default_output_is_the_run_eval_folder(tagging_runs: dict[str, Path], bdt_evaluation: Any) -> None:
    result = bdt_evaluation
    assert result.output == tagging_runs["bdt"] / "eval" / "test"
    metrics = read_metrics(result.output)
    check = metrics["overtraining"]
    assert [row["background_efficiency"] for row in check["rows"]] == [0.01, 0.1, 0.3]
    assert set(check["ks"]) == {"top", "qcd"} and check["weighted_ks"] is False
    features = {f["name"]: f for f in metrics["feature_importance"]["features"]}
    assert set(features) == {"jet_sdmass", "jet_nparticles", "jet_phi"}
    assert features["jet_sdmass"]["auc_drop"] > features["jet_phi"]["auc_drop"]
    assert all(f["gain"] is not None for f in features.values())  # XGBoost gain beside the permutation
    assert {path.suffix for path in result.plots} == {".png", ".pdf"}


def test_compare_runs_on_the_same_jets(
    tagging_runs: dict[str, Path], tagging_files: dict[str, str], tmp_path: Path
) -> None:
    result = compare_runs(
        [tagging_runs["bdt"], tagging_runs["pfn"]], [tagging_files["test"]], tmp_path, settings=FAST, progress=False
    )
    metrics = read_metrics(tmp_path)
    assert [row["name"] for row in metrics["models"]] == ["bdt", "pfn"]
    for row, run in zip(metrics["models"], ("bdt", "pfn"), strict=True):
        probabilities, arrays = TrainedModel.load(tagging_runs[run]).predict_files([tagging_files["test"]])
        assert row["auc"] == pytest.approx(roc_auc_score(arrays.label == 0, probabilities[:, 0]), rel=1e-6)
        assert row["figures"]["auc"] == row["auc"] and "rejection_at_50" in row["figures"]
        assert len(row["inverse_jsd"]) == 3
    assert (tmp_path / "plots" / "roc.png").is_file() and result.report == tmp_path / "report.html"
    assert "Ratio to" not in result.report.read_text()  # captions only: the ratio lives in the plot
    assert result.report.read_text().count("<tr><td title=") == 2


def test_neyman_pearson_check_on_a_toy_with_the_exact_likelihood_ratio(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    splits = {}
    for split, n in (("train", 3000), ("val", 500), ("test", 3000)):
        is_signal = rng.random(n) < 0.5
        x = rng.normal(np.where(is_signal, 0.8, 0.0)[:, None], 1.0, (n, 2))
        log_lr = 0.8 * x.sum(axis=1) - 0.64  # two unit Gaussians shifted by 0.8 in each coordinate
        columns = {
            "x0": x[:, 0].copy(),
            "x1": x[:, 1].copy(),
            "label_signal": is_signal.astype(np.int64),
            "label_background": (~is_signal).astype(np.int64),
            "aux_log_lr": log_lr,
        }
        jets = ak.zip(columns, depth_limit=1)
        splits[split] = str(io.write(jets, tmp_path / f"{split}.parquet"))
    config = load_run_config(
        {
            "data": {
                **splits,
                "inputs": {"jet": {"variables": ["x0", "x1"]}},
                "labels": {"classes": ["label_signal", "label_background"]},
            },
            "model": {"name": "bdt", "n_estimators": 30, "n_jobs": 1},
        }
    )
    run = train(config, name="toy", runs_dir=tmp_path / "runs", progress=False).run_dir
    result = evaluate_run(run, [splits["test"]], settings=FAST, progress=False)
    optimal = result.metrics["neyman_pearson"]
    assert optimal["optimal_auc"] == pytest.approx(
        roc_auc_score(
            ak.to_numpy(io.read(splits["test"])["label_signal"]) == 1,
            ak.to_numpy(io.read(splits["test"])["aux_log_lr"]),
        )
    )
    assert 0 <= optimal["auc_gap"] < 0.03
    assert optimal["auc_gap"] == pytest.approx(optimal["optimal_auc"] - result.metrics["auc"])
    assert result.metrics["sculpting"] is None and result.metrics["efficiency_versus"] == {}
    html = result.report.read_text()
    assert "Neyman–Pearson check" in html and "optimal (likelihood ratio)" in html


def test_multiclass_run(tmp_path: Path) -> None:
    classes = ("top", "w", "qcd")
    files = write_splits(tmp_path / "data", classes, sizes=(1500, 300, 900))
    config = load_run_config(run_config(files, {"name": "bdt", "n_estimators": 30, "n_jobs": 1}, classes))
    run = train(config, name="multi", runs_dir=tmp_path / "runs", progress=False).run_dir
    settings = EvaluationSettings(style=FAST.style, bootstrap=10, importance=False, background_fractions=(0, 0.3, 0.7))
    result = evaluate_run(run, [files["test"]], settings=settings, progress=False)
    multiclass = result.metrics["multiclass"]
    assert set(multiclass["one_vs_rest_auc"]) == set(classes)
    assert set(multiclass["one_vs_one_auc"]) == {"top_vs_w", "top_vs_qcd", "w_vs_qcd"}
    assert multiclass["background_fractions"] == {"top": 0.0, "w": 0.3, "qcd": 0.7}
    assert result.metrics["score"].startswith("D(top)")
    assert np.allclose(np.sum(result.metrics["confusion_matrix"], axis=1), 1.0)
    assert set(result.metrics["calibration"]) == set(classes)
    assert (result.output / "plots" / "roc_one_vs_rest.png").is_file()


def test_bad_input_is_a_heplearn_error(
    tagging_runs: dict[str, Path], tagging_files: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(DataError, match="no such run directory"):
        evaluate_run(tmp_path / "missing", [tagging_files["test"]], tmp_path / "out")
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(DataError, match="not a finished heplearn run"):
        evaluate_run(tmp_path / "unfinished", [tagging_files["test"]], tmp_path / "out")
    with pytest.raises(DataError, match="no file matches"):
        evaluate_run(tagging_runs["bdt"], [tmp_path / "nope.parquet"], tmp_path / "out")
    with pytest.raises(HeplearnError, match="at least one"):
        compare_runs([], [tagging_files["test"]], tmp_path / "out")
    with pytest.raises(HeplearnError, match="mass observer"):
        evaluate_run(
            tagging_runs["bdt"],
            [tagging_files["test"]],
            tmp_path / "out",
            settings=EvaluationSettings(mass_observer="jet_nothing", importance=False),
        )
    assert not (tmp_path / "out" / "report.html").exists()
