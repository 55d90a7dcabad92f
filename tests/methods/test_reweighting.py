"""DCTR against known answers (arXiv:1907.08209; research/methods.md §1): Gaussians whose density ratio
is known in closed form, the parametrised version over a range of means, and the fit of a mean.

The issue's tolerances hold for 10⁵ events per class; the default tests use fewer events (a few
seconds each on two shared cores) with the tolerances scaled by √(10⁵/N), the statistics; the
full-size versions with the issue's exact tolerances are marked ``slow``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot

from heplearn.data import io
from heplearn.methods.reweighting import WeightOptions, kfold_assignment, read_sample, reweight
from heplearn.methods.reweighting_parametrised import ParametrisedModel, fit_parameters, reweight_parametrised
from heplearn.run_config import RunConfig, load_run_config
from tests.test_cli import run as run_cli

FULL = 100_000  # events per class of the issue's tests
QUIET = WeightOptions(beside_source=False, report=False)
HIDDEN = [50, 50, 50]  # the notebooks: 3 × 50 ReLU
PARAMETRISED_HIDDEN = [100, 100, 100]  # f(x, θ) learns a product of its inputs: wider layers
# smooth units for f(x, θ): with ReLU, every seed's log-ratio at μ = −1.5 flattened in the sparse tail
# (x < −3.5: −0.4 at x = −4 against μx − μ²/2) and the weighted variance came out 0.95-0.97
PARAMETRISED_ACTIVATION = "silu"
FULL_ENSEMBLE = 5  # classifiers of the full-size parametrised test


def write_gaussian(
    path: Path, n: int, seed: int, mean: float | np.ndarray = 0.0, sigma: float = 1.0, **extra: np.ndarray
) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(mean, sigma, n) if np.ndim(mean) == 0 else rng.normal(mean, sigma)
    return io.write(ak.zip({"x": x.astype(np.float32), **extra}), path)


def gaussian_config(
    epochs: int,
    learning_rate: float = 1e-3,
    hidden: list[int] | None = None,
    activation: str = "relu",
    **data: Any,
) -> RunConfig:
    """The notebooks' network: 3 × 50 ReLU, Adam; batch 1000 (GaussianDCTRExample.ipynb)."""
    return load_run_config(
        {
            "data": {"inputs": {"jet": {"variables": ["x"]}}, **data},
            "model": {
                "name": "mlp",
                "hidden": hidden or HIDDEN,
                "dropout": 0.0,
                "batch_norm": False,
                "activation": activation,
            },
            "training": {
                "epochs": epochs,
                "batch_size": 1000,
                "learning_rate": learning_rate,
                "weight_decay": 0.0,
                "seed": 1,
                "threads": 1,
                "early_stopping_patience": None,
            },
        }
    )


def weighted_moments(x: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    mean = float(np.average(x, weights=weights))
    return mean, float(np.average((x - mean) ** 2, weights=weights))


def scale(n: int) -> float:
    """How much wider than at 10⁵ events a statistical tolerance is at ``n``."""
    return math.sqrt(FULL / n)


# --------------------------------------------------------------------------- plain DCTR
def shift_closure(tmp_path: Path, n: int, folds: int, epochs: int) -> tuple[Any, np.ndarray]:
    source = write_gaussian(tmp_path / "source.parquet", n, 1)
    target = write_gaussian(tmp_path / "target.parquet", n, 2, mean=1.0)
    result = reweight(
        gaussian_config(epochs),
        [source],
        [target],
        folds=folds,
        runs_dir=tmp_path / "runs",
        options=QUIET,
        progress=False,
    )
    return result, result.source.arrays.inputs["jet"][:, 0].astype(np.float64)


def check_shift(result: Any, x: np.ndarray, widen: float) -> None:
    """N(0,1) → N(1,1): w* = exp(x − ½) (research/methods.md §1, test 1)."""
    exact = np.exp(x - 0.5)
    central = np.abs(x) < 2.5
    assert np.median(np.abs(result.weights[central] / exact[central] - 1)) < 0.05
    mean, variance = weighted_moments(x, result.weights)
    assert mean == pytest.approx(1.0, abs=0.01 * widen)
    assert variance == pytest.approx(1.0, abs=0.02 * widen)
    # Σ_source f/(1−f) estimates N_target (the raw weights carry N₀/N₁ = 1 here)
    assert result.summary["reweighted_total_raw_times_target_over_source"] == pytest.approx(len(x), rel=0.03)


def test_dctr_reweights_a_shifted_gaussian_to_the_exact_weight(tmp_path: Path) -> None:
    n = 30_000
    result, x = shift_closure(tmp_path, n, folds=2, epochs=20)
    check_shift(result, x, scale(n))
    # every event's weight comes from the fold model that did not see it
    settings = json.loads((result.run_dir / "reweight.json").read_text())
    assert [record["fold"] for record in settings["fold_records"]] == [0, 1]
    for fold in (0, 1):
        from heplearn.trained_model import TrainedModel

        model = TrainedModel.load(result.run_dir / f"fold-{fold}")
        mine = result.fold == fold
        prior = settings["fold_records"][fold]["prior_source_over_target"]
        np.testing.assert_allclose(
            model.predict(result.source.arrays.take(np.flatnonzero(mine)))[:, 0] * prior,
            result.raw_weights[mine],
            rtol=1e-5,
        )
        assert settings["fold_records"][fold]["train_events"] == pytest.approx(0.8 * n, abs=2)
    # the friend file: one row per source entry, the weights in entry order
    table = pq.read_table(result.run_dir / "weights" / "source.weights.parquet").to_pydict()
    np.testing.assert_allclose(table["weight"], result.weights, rtol=1e-6)
    assert table["fold"] == result.fold.tolist()


def test_an_ensemble_averages_the_log_ratios_of_its_members_in_each_fold(tmp_path: Path) -> None:
    """``ensemble=2``: two classifiers per fold from two seeds; each weight is exp of their mean log-ratio."""
    from heplearn.methods.reweighting import density_ratio
    from heplearn.trained_model import TrainedModel

    source = write_gaussian(tmp_path / "source.parquet", 2000, 5)
    target = write_gaussian(tmp_path / "target.parquet", 2000, 6, mean=1.0)
    result = reweight(
        gaussian_config(2),
        [source],
        [target],
        folds=2,
        ensemble=2,
        runs_dir=tmp_path / "runs",
        options=QUIET,
        progress=False,
    )
    settings = json.loads((result.run_dir / "reweight.json").read_text())
    assert settings["ensemble"] == 2 and len(settings["fold_records"][0]["best_val_loss"]) == 2
    for fold in (0, 1):
        mine = np.flatnonzero(result.fold == fold)
        prior = settings["fold_records"][fold]["prior_source_over_target"]
        members = [
            density_ratio(
                TrainedModel.load(result.run_dir / f"fold-{fold}-{j}"), result.source.arrays.take(mine), prior
            )
            for j in (0, 1)
        ]
        assert np.median(np.abs(members[0] / members[1] - 1)) > 1e-3  # the seeds differ
        np.testing.assert_allclose(result.raw_weights[mine], np.sqrt(members[0] * members[1]), rtol=1e-5)


@pytest.mark.slow
def test_dctr_shifted_gaussian_full_size(tmp_path: Path) -> None:
    result, x = shift_closure(tmp_path, FULL, folds=5, epochs=30)
    check_shift(result, x, 1.0)


def test_dctr_reweights_a_wider_gaussian_to_the_exact_weight(tmp_path: Path) -> None:
    """N(0,1) → N(1, 1.3²): w* = (1/1.3)·exp(−(x−1)²/3.38 + x²/2) (the DCTR repository's first example)."""
    n = 30_000
    source = write_gaussian(tmp_path / "source.parquet", n, 3)
    target = write_gaussian(tmp_path / "target.parquet", n, 4, mean=1.0, sigma=1.3)
    result = reweight(
        gaussian_config(20), [source], [target], folds=2, runs_dir=tmp_path / "runs", options=QUIET, progress=False
    )
    x = result.source.arrays.inputs["jet"][:, 0].astype(np.float64)
    exact = np.exp(-((x - 1) ** 2) / 3.38 + x**2 / 2) / 1.3
    central = np.abs(x) < 2.5
    assert np.median(np.abs(result.weights[central] / exact[central] - 1)) < 0.05
    mean, variance = weighted_moments(x, result.weights)
    widen = scale(n)
    assert mean == pytest.approx(1.0, abs=0.02 * widen)
    assert variance == pytest.approx(1.69, abs=0.05 * widen)  # the tails of the wider target weigh more


def test_kfold_assignment_deals_every_event_to_one_fold() -> None:
    folds = kfold_assignment(1003, 5, seed=4)
    assert sorted(np.bincount(folds).tolist()) == [200, 200, 201, 201, 201]
    assert not np.array_equal(folds, kfold_assignment(1003, 5, seed=5))
    np.testing.assert_array_equal(folds, kfold_assignment(1003, 5, seed=4))


def test_friend_files_follow_the_source_entries_through_the_selection(tmp_path: Path) -> None:
    """ROOT sources get a ROOT friend tree of the same name and length; dropped entries hold NaN."""
    n = 3000
    rng = np.random.default_rng(9)
    keep = rng.uniform(size=n) < 0.7
    source = io.write(
        ak.zip({"x": rng.normal(size=n).astype(np.float32), "keep": keep.astype(np.int32)}), tmp_path / "source.root"
    )
    target = io.write(
        ak.zip({"x": rng.normal(0.5, 1, n).astype(np.float32), "keep": np.ones(n, np.int32)}), tmp_path / "target.root"
    )
    config = gaussian_config(2, selection="keep == 1")
    result = reweight(config, [source], [target], folds=2, runs_dir=tmp_path / "runs", progress=False)
    beside = tmp_path / "source.weights.root"
    assert beside in result.friends and (result.run_dir / "weights" / "source.weights.root") in result.friends
    with uproot.open(beside) as file:
        tree = file["tree"]
        assert tree.num_entries == n
        weights = tree["weight"].array(library="np")
    assert np.all(np.isnan(weights[~keep])) and not np.any(np.isnan(weights[keep]))
    np.testing.assert_allclose(weights[keep], result.weights, rtol=1e-6)
    report = json.loads((result.run_dir / "report" / "closure.json").read_text())
    (row,) = [row for row in report["observables"] if row["observable"] == "x"]
    assert row["chi2_ndf_source"] > 5  # before: the shift of 0.5 is obvious
    assert (result.run_dir / "report" / "report.html").stat().st_size > 10_000


# --------------------------------------------------------------------------- parametrised DCTR
@pytest.fixture(scope="module")
def parametrised(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # two classifiers of 30 epochs cost what one of 60 did (the loss is flat after ~20) and average
    # out part of one training's noise in the fitted mean (one alone: 0.01-0.03 either way)
    return train_parametrised(tmp_path_factory.mktemp("parametrised"), 50_000, epochs=30, ensemble=2)


def train_parametrised(folder: Path, n: int, epochs: int, ensemble: int = 1) -> dict[str, Any]:
    """Source N(0,1); target N(μ,1) with μ ~ U[−2, 2] per event; a mystery sample N(1.3, 1);
    ``ensemble`` classifiers from different seeds, their log-ratios averaged."""
    mu = np.random.default_rng(11).uniform(-2, 2, n)
    files = {
        "source": write_gaussian(folder / "source.parquet", n, 12),
        "target": write_gaussian(folder / "target.parquet", n, 13, mean=mu, gen_mu=mu.astype(np.float32)),
        "mystery": write_gaussian(folder / "mystery.parquet", n, 14, mean=1.3),
    }
    config = gaussian_config(epochs, 3e-3, PARAMETRISED_HIDDEN, PARAMETRISED_ACTIVATION)
    result = reweight_parametrised(
        config,
        [files["source"]],
        [files["target"]],
        ["gen_mu"],
        ranges={"gen_mu": (-2.0, 2.0)},
        ensemble=ensemble,
        runs_dir=folder / "runs",
        options=QUIET,
        progress=False,
    )
    return {"n": n, "run": result.run_dir, **files}


def standard_errors(x: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Standard errors of a weighted mean and variance (delta method, independent events)."""
    mean, variance = weighted_moments(x, weights)
    total = weights.sum()
    return (
        float(np.sqrt(np.sum(weights**2 * (x - mean) ** 2)) / total),
        float(np.sqrt(np.sum(weights**2 * ((x - mean) ** 2 - variance) ** 2)) / total),
    )


def check_parametrised_moments(trained: dict[str, Any], strict: bool) -> None:
    """Weights at μ = −1.5 turn N(0,1) into N(−1.5, 1) (research/methods.md §1, test 3).

    At μ = −1.5 only about one source event in 9.5 counts (N_eff = N e^{−μ²}), so the moments are
    checked within 3 standard errors of the exactly weighted sample; ``strict`` (4 × 10⁵ events):
    also within the issue's ±0.02.
    """
    loaded = ParametrisedModel.load(trained["run"])
    sample = read_sample([trained["source"]], loaded.data, "source")
    x = sample.arrays.inputs["jet"][:, 0].astype(np.float64)
    weights = loaded.weights(sample.arrays, {"gen_mu": -1.5})
    mean, variance = weighted_moments(x, weights)
    error_mean, error_variance = standard_errors(x, np.exp(-1.5 * x - 1.125))
    assert mean == pytest.approx(-1.5, abs=3 * error_mean)
    assert variance == pytest.approx(1.0, abs=3 * error_variance)
    if strict:
        assert mean == pytest.approx(-1.5, abs=0.02)
        assert variance == pytest.approx(1.0, abs=0.02)


def exact_fit(source: Path, target: Path) -> float:
    """μ̂ of the same fit with the exact classifier, log p_μ/p₀ = μx − μ²/2: the answer on these events."""
    from scipy.optimize import minimize_scalar

    x0 = ak.to_numpy(io.read(source)["x"]).astype(np.float64)
    x1 = ak.to_numpy(io.read(target)["x"]).astype(np.float64)
    offset = math.log(len(x1) / len(x0))

    def loss(mu: float) -> float:
        return float(
            np.logaddexp(0, -(mu * x1 - mu**2 / 2 + offset)).sum() + np.logaddexp(0, mu * x0 - mu**2 / 2 + offset).sum()
        )

    return float(minimize_scalar(loss, bounds=(-2, 2), method="bounded", options={"xatol": 1e-6}).x)


def check_fit(trained: dict[str, Any], widen: float) -> None:
    """The fit of a N(1.3, 1) sample with f frozen gives μ̂ = 1.30 ± 0.02 (test 4; ± 0.02 √(10⁵/N))."""
    fitted = fit_parameters(trained["run"], [trained["source"]], [trained["mystery"]], progress=False)
    assert fitted.values["gen_mu"] == pytest.approx(1.3, abs=0.02 * widen)
    # the sandwich error: about √(2/n) for a mean fitted from two samples of n, and the exact
    # classifier's fit on the same events lies within 3 of it from the truth
    error = fitted.uncertainties["gen_mu"]
    assert 0.5 * math.sqrt(2 / trained["n"]) < error < 2 * math.sqrt(2 / trained["n"])
    assert exact_fit(trained["source"], trained["mystery"]) == pytest.approx(1.3, abs=3 * error)
    assert json.loads((trained["run"] / "fit.json").read_text())["values"] == fitted.values


def test_parametrised_weights_reproduce_a_shifted_gaussian(parametrised: dict[str, Any]) -> None:
    check_parametrised_moments(parametrised, strict=False)


def test_fit_of_the_mean_with_the_classifier_frozen(parametrised: dict[str, Any]) -> None:
    check_fit(parametrised, scale(parametrised["n"]))


@pytest.fixture(scope="module")
def parametrised_full(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # the mean log-ratio of 5 classifiers: it averages out one training's noise (the members' weighted
    # means at μ = 1.3: 1.275-1.314), not the shared pull at μ = −1.5 (see ``parametrised_large``)
    return train_parametrised(tmp_path_factory.mktemp("parametrised_full"), FULL, epochs=60, ensemble=FULL_ENSEMBLE)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the fixture trains 5 classifiers at 10⁵ events
def test_parametrised_full_size_moments_within_statistics(parametrised_full: dict[str, Any]) -> None:
    check_parametrised_moments(parametrised_full, strict=False)


@pytest.fixture(scope="module")
def parametrised_large(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # ±0.02 needs more than 10⁵ events to test the classifier rather than the sample: at μ = −1.5
    # the exact weights' own standard errors on 10⁵ source events are 0.016 (mean) and 0.027
    # (variance), so even w* misses ±0.02 on the variance about half the time. At 4×10⁵ they are
    # 0.008 and 0.013. (At 10⁵ the SiLU ensemble of 5 gives −1.476 / 0.976 against w*'s −1.495 /
    # 0.992: a pull towards the inside of the trained range of about +0.02 in the mean at −1.5,
    # +0.10 at −2, shared by ReLU, SiLU, tanh, 4 layers, FiLM, lr 10⁻² and 240 epochs, and shrinking
    # with more events: +0.004 at −1.5 with 4×10⁵.)
    return train_parametrised(tmp_path_factory.mktemp("parametrised_large"), 4 * FULL, epochs=60)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # one classifier at 4 × 10⁵ events: about 6 min on a quiet core
def test_parametrised_moments_within_the_issue_tolerance(parametrised_large: dict[str, Any]) -> None:
    check_parametrised_moments(parametrised_large, strict=True)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the fixture trains 5 classifiers at 10⁵ events
def test_parametrised_full_size_fit(parametrised_full: dict[str, Any]) -> None:
    check_fit(parametrised_full, 1.0)


# --------------------------------------------------------------------------- bad input
def write_config(path: Path, **data: Any) -> Path:
    config = {
        "data": {"inputs": {"jet": {"variables": ["x"]}}, **data},
        "model": {"name": "mlp", "preset": "small"},
        "training": {"epochs": 1, "batch_size": 256, "threads": 1},
    }
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize(
    "case",
    [
        "retyped",
        "missing",
        "zero_weight",
        "negative_weight",
        "one_fold",
        "no_ensemble",
        "outside_range",
        "start_outside",
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=500).astype(np.float32)
    weight = np.ones(500, np.float32)
    source = io.write(ak.zip({"x": x, "w": weight}), tmp_path / "source.parquet")
    target_fields: dict[str, Any] = {"x": x + 1, "w": weight, "mu": rng.uniform(-1, 1, 500).astype(np.float32)}
    config = write_config(tmp_path / "config.json")
    runs = tmp_path / "runs"
    arguments = [
        "reweight",
        "--config",
        str(config),
        "--source",
        str(source),
        "--runs-dir",
        str(runs),
        "--no-progress",
        "--run-only",
    ]
    expected = ""
    if case == "retyped":
        target_fields["x"] = target_fields["x"].astype(np.float64)
        expected = "different fields: 'x' is float32"
    elif case == "missing":
        target_fields["y"] = target_fields.pop("x")
        expected = "no field 'x'"
    elif case in {"zero_weight", "negative_weight"}:
        target_fields["w"] = np.zeros(500, np.float32) - (case == "negative_weight")
        config = write_config(tmp_path / "config.json", weights="w")
        arguments[2] = str(config)
        expected = "target: the summed event weight is"
    elif case == "one_fold":
        arguments += ["--folds", "1"]
        expected = "folds must be 2 or more"
    elif case == "no_ensemble":
        arguments += ["--ensemble", "0"]
        expected = "ensemble must be 1 or more classifiers"
    elif case == "outside_range":
        arguments += ["--parametrised", "--parameter", "mu", "--range", "-1:1", "--at", "1.5"]
        expected = "mu = 1.5 is outside the trained range [-1, 1]"
    target = io.write(ak.zip(target_fields), tmp_path / "target.parquet")
    arguments += ["--target", str(target)]
    if case == "start_outside":
        code, out, err = run_cli([*arguments, "--parametrised", "--parameter", "mu", "--no-report"], capsys)
        assert code == 0, err
        run = Path(out.split()[1])
        before = sorted(path.name for path in run.iterdir())
        code, out, err = run_cli(
            [
                "reweight",
                "fit",
                str(run),
                "--source",
                str(source),
                "--target",
                str(target),
                "--start",
                "4",
                "--no-progress",
            ],
            capsys,
        )
        assert code == 2 and "start: mu = 4 is outside the trained range" in err, err
        assert sorted(path.name for path in run.iterdir()) == before  # no fit.json
        return
    code, out, err = run_cli(arguments, capsys)
    assert code == 2, (out, err)
    assert err.startswith("heplearn: error:") and expected in err and len(err.strip().splitlines()) == 1, err
    assert not runs.exists()  # nothing half-written
    assert not list(tmp_path.glob("*.weights.*"))


def test_a_particle_network_takes_theta_per_particle_and_the_fit_sees_what_it_applies(tmp_path: Path) -> None:
    """PFN on particles: θ is one more feature of every real particle (the paper's (pT, y, φ, PID, θ)),
    points stay (Δη, Δφ), and the fit's differentiable θ path gives exactly the weights it applies;
    an ensemble of two applies the geometric mean of its members' ratios, in both paths."""
    import torch

    from heplearn.data.batches import to_batch
    from heplearn.methods.reweighting import density_ratio, labelled
    from heplearn.methods.reweighting_parametrised import _FrozenClassifier, with_parameters
    from tests.conftest import make_jets

    source = io.write(make_jets(300, seed=21), tmp_path / "source.parquet")
    target_jets = make_jets(300, seed=22)
    theta = np.random.default_rng(23).uniform(0.1, 0.2, 300).astype(np.float32)
    target = io.write(ak.with_field(target_jets, theta, "alphas"), tmp_path / "target.parquet")
    config = load_run_config(
        {
            "data": {
                "inputs": {
                    "particles": {"length": 40, "variables": ["part_deta", "part_dphi", "part_pt"]},
                    "points": {"length": 40, "variables": ["part_deta", "part_dphi"], "standardize": False},
                }
            },
            "model": {"name": "pfn", "preset": "small"},
            "training": {"epochs": 1, "batch_size": 64, "threads": 1},
        }
    )
    run = reweight_parametrised(
        config, [source], [target], ["alphas"], ensemble=2, runs_dir=tmp_path / "runs", options=QUIET, progress=False
    ).run_dir
    loaded = ParametrisedModel.load(run)
    assert len(loaded.models) == 2 and (run / "model-1" / "model.safetensors").is_file()
    assert loaded.ranges["alphas"] == pytest.approx((float(theta.min()), float(theta.max())))
    sample = read_sample([source], loaded.data, "source")
    at = float(np.median(theta))
    applied = loaded.weights(sample.arrays, {"alphas": at})

    augmented = with_parameters(sample.arrays, loaded.data, np.full((len(sample), 1), at))
    assert augmented.inputs["particles"].shape[-1] == 4 and augmented.inputs["points"].shape[-1] == 2
    mask = sample.arrays.mask
    assert np.all(augmented.inputs["particles"][..., 3][mask] == np.float32(at))
    assert np.all(augmented.inputs["particles"][..., 3][~mask] == 0)
    members = [density_ratio(model, augmented, loaded.prior) for model in loaded.models]
    assert np.median(np.abs(members[0] / members[1] - 1)) > 1e-3  # two seeds, two classifiers
    np.testing.assert_allclose(applied, np.sqrt(members[0] * members[1]), rtol=1e-5)

    frozen = _FrozenClassifier(loaded)
    placeholder = with_parameters(sample.arrays, loaded.data, np.zeros((len(sample), 1)))  # θ replaced below
    batch = to_batch(loaded.preprocessing.apply(labelled(placeholder.take(np.arange(0)), placeholder)))
    with torch.no_grad():
        log_ratio = frozen.log_ratio(batch, torch.full((len(sample), 1), at))
    np.testing.assert_allclose(np.exp(log_ratio.numpy()), applied, rtol=2e-4)


def test_friend_files_of_one_stem_from_two_folders_do_not_collide() -> None:
    from heplearn.methods.reweighting import Sample, plan_friends

    files = [Path("/data/a/train.parquet"), Path("/data/b/train.parquet"), Path("/data/b/val.root")]
    sample = Sample("source", None, files, np.zeros(0), np.zeros(0), [1, 1, 1], ["tree"] * 3)  # type: ignore[arg-type]
    plans = plan_friends(sample, [Path("/run/weights"), None], None)
    assert plans == [
        [Path("/run/weights/0-train.weights.parquet"), Path("/data/a/train.weights.parquet")],
        [Path("/run/weights/1-train.weights.parquet"), Path("/data/b/train.weights.parquet")],
        [Path("/run/weights/2-val.weights.root"), Path("/data/b/val.weights.root")],
    ]


def test_the_closure_plot_leaves_a_ratio_out_where_the_target_bin_is_empty() -> None:
    """An empty target bin has no ratio: before, inf ± inf reached matplotlib's errorbar, which warns
    (and pytest fails on warnings); the report of any sparse tail did that."""
    from heplearn.methods.reweighting_report import Histograms, plot_closure

    sums = np.array([1.0, 2.0, 3.0, 4.0])
    target = np.array([0.0, 2.0, 3.0, 0.0])
    figure = plot_closure(Histograms("jet_mass", np.linspace(0, 1, 5), (sums, sums), (sums, sums), (target, target)))
    ratio_axis = figure.axes[1]
    points = ratio_axis.lines[0].get_ydata()  # the source's ratio markers
    # normalised to the target (5 against 10): the filled bins read 0.5
    assert np.isnan(points[[0, 3]]).all() and np.allclose(points[[1, 2]], [0.5, 0.5])


def test_source_theta_is_drawn_from_the_targets_values_so_a_grid_target_cannot_leak() -> None:
    """A target made at a few θ (a scan of α_s at 0.10, 0.12, …): the source's θ must follow the
    same distribution, or the classifier learns "θ on the grid ⇒ target" (a uniform draw gave the
    QCD α_s scan a validation AUC of 0.94 from θ alone), in every epoch's draw."""
    from heplearn.data.in_memory import InMemoryJets
    from heplearn.data.jets import JetArrays
    from heplearn.data.preprocessing import Preprocessing
    from heplearn.methods.reweighting import CLASS_NAMES, SOURCE, labelled
    from heplearn.methods.reweighting_parametrised import RedrawnParameters, parametrised_data

    rng = np.random.default_rng(3)
    grid = np.array([-1.0, 0.5, 1.0])
    n = 4000
    target_theta = rng.choice(grid, n, p=[0.5, 0.25, 0.25])[:, None]

    def arrays(theta: np.ndarray) -> JetArrays:
        x = rng.normal(size=(n, 1))
        return JetArrays({"jet": np.hstack([x, theta]).astype(np.float32)}, None, np.zeros(n), np.ones(n, np.float32))

    data = parametrised_data(gaussian_config(1).data, ["gen_mu"])
    joined = labelled(arrays(target_theta), arrays(np.zeros((n, 1))))
    preprocessing = Preprocessing.fit(joined, data, CLASS_NAMES)
    batches = RedrawnParameters(
        InMemoryJets(joined, CLASS_NAMES, preprocessing, data), 1000, 5, preprocessing, target_theta, ["jet"]
    )
    centre, inverse_scale, _ = preprocessing.constants("jet")
    for epoch in (0, 1):
        theta = np.concatenate(
            [
                batch["jet"][:, -1].numpy()[batch["label"].numpy() == SOURCE] / inverse_scale[-1] + centre[-1]
                for batch in batches.epoch_batches(epoch)
            ]
        )
        assert len(theta) == n
        nearest = grid[np.abs(theta[:, None] - grid).argmin(axis=1)]
        np.testing.assert_allclose(theta, nearest, atol=1e-5)  # only the target's values
        shares = [np.mean(nearest == value) for value in grid]
        np.testing.assert_allclose(shares, [0.5, 0.25, 0.25], atol=0.03)  # in the target's proportions
