"""``heplearn fit`` end to end: score files or a run in, the fitted fraction, workspace and report out."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyhf
import pytest

from heplearn.cli import main
from heplearn.data import io
from heplearn.run_config import load_run_config
from heplearn.stats.fitting import FitSettings, fit_inputs, inputs_from_run
from heplearn.stats.templates import Binning
from heplearn.training.from_config import train
from tests.evaluation.conftest import make_overlapping_jets, run_config


def write_scores(path: Path, values: np.ndarray) -> str:
    pq.write_table(pa.table({"score_top": values}), path)
    return str(path)


@pytest.fixture(scope="module")
def score_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Beta-distributed scores: top ~ B(5, 2), QCD ~ B(2, 5); data with 10% top; a QCD variation."""
    folder = tmp_path_factory.mktemp("scores")
    rng = np.random.default_rng(4)
    top = rng.binomial(4000, 0.10)
    return {
        "top": write_scores(folder / "top.parquet", rng.beta(5, 2, 20_000)),
        "qcd": write_scores(folder / "qcd.parquet", rng.beta(2, 5, 20_000)),
        "qcd_tune": write_scores(folder / "qcd_tune.parquet", rng.beta(2.2, 5, 20_000)),
        "data": write_scores(
            folder / "data.parquet", np.concatenate([rng.beta(5, 2, top), rng.beta(2, 5, 4000 - top)])
        ),
        "true_fraction": str(top / 4000),
    }


def test_fit_from_score_files(score_files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "fit"
    main(
        [
            "fit",
            "--signal-scores",
            score_files["top"],
            "--background-scores",
            score_files["qcd"],
            "--data",
            score_files["data"],
            "--column",
            "score_top",
            "--bins",
            "6",
            "--scan-points",
            "9",
            "--no-limit",
            "--systematic",
            f"tune=:{score_files['qcd_tune']}",
            "--lumi-uncertainty",
            "0.02",
            "--expected-fraction",
            "0.1",
            "--output",
            str(output),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert "α unbinned" in printed and "report:" in printed
    results = json.loads((output / "results.json").read_text())
    truth = float(score_files["true_fraction"])
    for name in ("unbinned", "binned_stat_only", "full_model"):
        fitted = results["fraction"][name]
        assert abs(fitted["fraction"] - truth) < 3 * fitted["uncertainty"], name
    # the tune systematic can only widen σ(α); MC statistics of 20k-event templates barely do
    assert (
        results["fraction"]["full_model"]["uncertainty"]
        >= 0.99 * results["fraction"]["binned_stat_only"]["uncertainty"]
    )
    assert results["fraction"]["binned_stat_only"]["uncertainty"] == pytest.approx(
        results["fraction"]["expected_uncertainty"], rel=0.1
    )
    assert results["discovery"]["observed_z"] > 5
    assert results["upper_limit"] is None  # --no-limit; the limit's known answers are in test_results
    workspace = json.loads((output / "workspace.json").read_text())
    model = pyhf.Workspace(workspace).model()
    assert {"mu", "tune", "lumi", "background_norm"} <= set(model.config.par_names)
    assert (output / "report.html").read_text().count("data:image/png;base64") >= 4
    assert {p.name for p in (output / "plots").iterdir()} >= {
        "postfit.png",
        "scan_mu.png",
        "pulls.png",
        "scan_mu_background.png",
        "templates.pdf",
    }


def test_bad_input_ends_with_one_line(
    score_files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--signal-scores",
                score_files["top"],
                "--background-scores",
                score_files["qcd"],
                "--data",
                score_files["data"],
                "--column",
                "score_w",
                "--output",
                str(tmp_path / "fit"),
            ]
        )
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "no field 'score_w'" in error and error.count("\n") == 1


def test_fit_from_a_run_recovers_the_fraction_of_a_mixture(tmp_path: Path) -> None:
    files = {
        split: str(io.write(make_overlapping_jets(n, 60 + i), tmp_path / f"{split}.parquet"))
        for i, (split, n) in enumerate((("train", 3000), ("val", 500), ("test", 4000)))
    }
    run = train(
        load_run_config(run_config(files, {"name": "bdt", "n_estimators": 40, "n_jobs": 1})),
        name="bdt",
        runs_dir=tmp_path / "runs",
        progress=False,
    ).run_dir
    jets = make_overlapping_jets(12_000, 70)
    is_top = ak.to_numpy(jets["label_top"]) == 1
    keep = ~is_top | (np.random.default_rng(0).random(len(jets)) < 0.25)  # about 20% top
    mixture = str(io.write(jets[keep], tmp_path / "mixture.parquet"))
    inputs = inputs_from_run(run, [files["test"]], [mixture], progress=False)
    assert inputs.signal_name == "top" and inputs.background_name == "qcd"
    outcome = fit_inputs(
        inputs,
        tmp_path / "fit",
        FitSettings(binning=Binning(10, 0, 1), limit=False, scan_2d=False, scan_points=9, impacts=False),
        progress=False,
    )
    assert inputs.true_fraction == pytest.approx(0.2, abs=0.02)
    for fitted in (outcome.unbinned, outcome.binned, outcome.fraction):
        assert fitted is not None
        assert abs(fitted.fraction - inputs.true_fraction) < 3 * fitted.uncertainty
    # real data have no labels: the same jets without label fields give the same data values
    unlabelled = jets[keep][[name for name in jets.fields if not name.startswith("label_")]]
    blind = inputs_from_run(
        run, [files["test"]], [str(io.write(unlabelled, tmp_path / "data.parquet"))], progress=False
    )
    assert blind.true_fraction is None
    np.testing.assert_array_equal(blind.data.values, inputs.data.values)
