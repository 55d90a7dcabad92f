"""``heplearn fit --systematic-down``: a two-sided shape variation takes the −1σ sample, not the mirror."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from heplearn.errors import ConfigError
from heplearn.stats.fitting import FitInputs, Values
from heplearn.stats.templates import Binning, make_template
from tests.stats.test_fit_command import write_scores

BINS = 5


def _histosys(workspace: dict, sample: str, name: str) -> dict:
    for channel in workspace["channels"]:
        for entry in channel["samples"]:
            if entry["name"] == sample:
                return next(m for m in entry["modifiers"] if m["name"] == name)["data"]
    raise KeyError(sample)


def test_the_down_sample_is_the_low_template(tmp_path: Path) -> None:
    from heplearn.cli import main

    rng = np.random.default_rng(11)
    top, qcd = rng.beta(5, 2, 5000), rng.beta(2, 5, 5000)
    up, down = rng.beta(2.4, 5, 5000), rng.beta(2, 5.6, 4000)  # the down sample also has another size
    files = {
        name: write_scores(tmp_path / f"{name}.parquet", values)
        for name, values in (
            ("top", top),
            ("qcd", qcd),
            ("up", up),
            ("down", down),
            ("data", np.concatenate([rng.beta(5, 2, 300), rng.beta(2, 5, 1700)])),
        )
    }
    common = [
        "fit",
        "--signal-scores",
        files["top"],
        "--background-scores",
        files["qcd"],
        "--data",
        files["data"],
        "--bins",
        str(BINS),
        "--scan-points",
        "5",
        "--no-limit",
        "--no-scan-2d",
        "--no-unbinned",
        "--no-progress",
        "--systematic",
        f"fsr=:{files['up']}",
    ]
    main([*common, "-o", str(tmp_path / "two"), "--systematic-down", f"fsr=:{files['down']}"])
    main([*common, "-o", str(tmp_path / "mirrored")])
    two = _histosys(json.loads((tmp_path / "two" / "workspace.json").read_text()), "background", "fsr")
    mirrored = _histosys(json.loads((tmp_path / "mirrored" / "workspace.json").read_text()), "background", "fsr")
    # both keep the +1σ template; the low one is the down sample's shape at the nominal's yield
    assert two["hi_data"] == pytest.approx(mirrored["hi_data"])
    nominal = np.asarray(two["hi_data"]).sum()
    edges = json.loads((tmp_path / "two" / "results.json").read_text())["binning"]["edges"]  # sparse bins merged
    expected = make_template(down, None, Binning(edges=tuple(edges))).counts
    assert np.asarray(two["lo_data"]) == pytest.approx(expected * nominal / expected.sum(), rel=1e-9)
    assert not np.allclose(two["lo_data"], mirrored["lo_data"])  # without it: 2·nominal − up


def test_a_down_sample_needs_its_up_one() -> None:
    values = Values(np.array([0.5]), np.array([1.0]))
    with pytest.raises(ConfigError, match="fsr: a −1σ sample needs the \\+1σ one"):
        FitInputs(values, values, values, {}, systematics_down={"fsr": (None, values)})


def test_the_discovery_test_can_be_left_out(tmp_path: Path) -> None:
    """``FitSettings(discovery=False)`` skips q₀ (its background-only fit); the fit and its report stand."""
    from heplearn.stats.fitting import FitSettings, fit_inputs, summary_line

    rng = np.random.default_rng(5)
    signal, background = rng.normal(1, 1, 4000), rng.normal(-1, 1, 4000)
    data = np.concatenate([rng.normal(1, 1, 200), rng.normal(-1, 1, 1800)])

    def values(x: np.ndarray) -> Values:
        return Values(x, np.ones(len(x)))

    inputs = FitInputs(values(signal), values(background), values(data))
    quick = {
        "binning": Binning(BINS, -4.0, 4.0),
        "unbinned": False,
        "limit": False,
        "impacts": False,
        "scan_2d": False,
        "scan_points": 5,
    }
    without = fit_inputs(inputs, tmp_path, FitSettings(**quick, discovery=False), progress=False)
    assert without.discovery is None
    assert json.loads((tmp_path / "results.json").read_text())["discovery"] is None
    assert (
        "Z obs" not in summary_line(without) and "discovery significance" not in (tmp_path / "report.html").read_text()
    )
    assert without.full.value() == pytest.approx(1.0, abs=3 * without.full.uncertainty())
