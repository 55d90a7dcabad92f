"""The LHCO-like benchmark (``heplearn.methods.lhco_benchmark``, ``heplearn anomaly benchmark``):
its dijet features from NanoAOD-layout events, a small end-to-end run, and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from heplearn.data import io
from heplearn.errors import ConfigError, DataError
from heplearn.methods.lhco_benchmark import event_features, run_benchmark
from tests.test_cli import run


def write_events(folder: Path, mjj: np.ndarray, masses: np.ndarray, tau21: np.ndarray) -> Path:
    """Two back-to-back large-R jets at η = 0 with m_jj = ``mjj`` (TeV), jet masses ``masses`` (n, 2) in GeV."""
    folder.mkdir(parents=True, exist_ok=True)
    # back to back at η = 0: m_jj = 2·E = 2·√(pT² + m²) for equal masses; for unequal ones solve per jet
    m1, m2 = masses[:, 0], masses[:, 1]
    e_total = 1000.0 * mjj
    # p = |p⃗| of each jet: E1 + E2 = M, E1² − E2² = m1² − m2²
    e1 = (e_total + (m1**2 - m2**2) / e_total) / 2
    pt = np.sqrt(np.maximum(e1**2 - m1**2, 0.0))
    phi = np.random.default_rng(0).uniform(-np.pi, np.pi, len(mjj))
    n = len(mjj)
    fields = {
        "FatJet_pt": np.stack([pt, pt], axis=1),
        "FatJet_eta": np.zeros((n, 2)),
        "FatJet_phi": np.stack([phi, np.angle(np.exp(1j * (phi + np.pi)))], axis=1),
        "FatJet_mass": masses,
        "FatJet_tau1": np.ones((n, 2)),
        "FatJet_tau2": tau21,
    }
    events = ak.zip({name: ak.Array(values.tolist()) for name, values in fields.items()}, depth_limit=1)
    return io.write(events, folder / "train.parquet")


def sample(folder: Path, n: int, seed: int, signal: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    if signal:  # a resonance at 3.5 TeV with jets of 100 and 500 GeV, two-pronged
        mjj = rng.normal(3.5, 0.05, n)
        masses = np.stack([rng.normal(100, 5, n), rng.normal(500, 10, n)], axis=1)
        tau21 = rng.uniform(0.1, 0.4, (n, 2))
    else:  # a falling spectrum with light, one-pronged jets
        mjj = 2.8 + rng.exponential(0.6, n)
        masses = rng.uniform(20, 200, (n, 2))
        tau21 = rng.uniform(0.3, 0.9, (n, 2))
    return write_events(folder, mjj, masses, tau21)


def test_dijet_features_have_their_known_values(tmp_path: Path) -> None:
    mjj = np.array([3.0, 3.5, 4.0])
    masses = np.array([[100.0, 500.0], [300.0, 50.0], [80.0, 80.0]])
    tau21 = np.array([[0.2, 0.6], [0.5, 0.3], [0.4, 0.4]])
    features, mass = event_features(write_events(tmp_path / "events", mjj, masses, tau21).parent)
    np.testing.assert_allclose(mass, mjj, rtol=1e-9)
    # J1 is the lighter jet: (m_J1, m_J2 − m_J1, τ21 of J1, τ21 of J2), masses in TeV
    expected = [[0.1, 0.4, 0.2, 0.6], [0.05, 0.25, 0.3, 0.5], [0.08, 0.0, 0.4, 0.4]]
    np.testing.assert_allclose(features, expected, atol=1e-9)


def test_a_small_benchmark_runs_and_ranks_the_signal(tmp_path: Path) -> None:
    background = sample(tmp_path / "qcd", 6000, 1).parent
    signal = sample(tmp_path / "wprime", 600, 2, signal=True).parent
    result = run_benchmark(
        background,
        signal,
        tmp_path / "out",
        injection=0.05,
        mass_range=(2.8, 6.0),
        methods=["supervised", "CWoLa"],
        epochs=2,
        folds=2,
        log=lambda line: None,
    )
    sizes = result.sizes
    # 5% of the data's SR background, as signal events in the SR
    assert sizes["injected_sr_signal"] == round(0.05 * sizes["data_sr_background"])
    assert set(result.curves) == {"supervised", "CWoLa"}
    assert result.curves["supervised"].auc > 0.99  # the two samples barely overlap
    assert result.curves["CWoLa"].auc > 0.6, result.curves["CWoLa"].auc
    saved = json.loads((tmp_path / "out" / "sic.json").read_text())
    assert [row["method"] for row in saved["rows"]] == ["supervised", "CWoLa"]
    assert saved["rows"][0]["literature"] == 17.6
    assert (tmp_path / "out" / "report.html").exists()


def test_bad_benchmark_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    background = sample(tmp_path / "qcd", 2000, 3).parent
    signal = sample(tmp_path / "wprime", 40, 4, signal=True).parent
    with pytest.raises(DataError, match=r"only .* SR signal events exist"):
        run_benchmark(background, signal, None, injection=0.5, mass_range=(2.8, 6.0))
    with pytest.raises(ConfigError, match="must enclose the signal region"):
        run_benchmark(background, signal, None, mass_range=(3.4, 6.0))
    with pytest.raises(ConfigError, match="methods: BDT"):
        run_benchmark(background, signal, None, methods=["BDT"])
    with pytest.raises(ConfigError, match="flow epochs"):  # an untrainable flow
        run_benchmark(background, signal, None, flow_epochs=0)
    with pytest.raises(DataError, match="no event files"):
        run_benchmark(tmp_path / "empty", signal, None)
    code, _, err = run(
        ["anomaly", "benchmark", "--background", str(background), "--signal", str(signal), "--mass-range", "3.5,3.6"],
        capsys,
    )
    assert code == 2
    assert err.count("\n") == 1 and "sidebands" in err
