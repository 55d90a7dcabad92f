"""``heplearn fit --working-point``: scale factors per pT bin from pseudo-data whose true tagging
efficiency is 0.9× the simulation's, with a varied simulation for the systematic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.test_cli import run

SIM_EFFICIENCY, BACKGROUND_EFFICIENCY, RATIO = 0.6, 0.1, 0.9


def jets(rng: np.random.Generator, n: int, top: bool, efficiency: float) -> pa.Table:
    """Top (mass N(172, 15) GeV) or QCD (50 + Exp(60) GeV) jets, pT uniform in [300, 900) GeV; the
    tagger score lies above 0.5 for a fraction ``efficiency`` of them, independently of mass and pT."""
    mass = rng.normal(172.0, 15.0, n) if top else 50.0 + rng.exponential(60.0, n)
    passing = rng.random(n) < efficiency
    score = np.where(passing, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 0.5, n))
    return pa.table({"score_top": score, "jet_sdmass": mass, "jet_pt": rng.uniform(300.0, 900.0, n)})


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder, rng = tmp_path_factory.mktemp("sf"), np.random.default_rng(11)
    tables = {
        "top": jets(rng, 30_000, True, SIM_EFFICIENCY),
        "qcd": jets(rng, 60_000, False, BACKGROUND_EFFICIENCY),
        # a varied simulation (another tune): ε_sim = 0.63, so SF shifts by 0.9·(0.6/0.63 − 1) = −0.043
        "top_tune": jets(rng, 30_000, True, 0.63),
        "data": pa.concat_tables(
            [jets(rng, 8_000, True, RATIO * SIM_EFFICIENCY), jets(rng, 16_000, False, BACKGROUND_EFFICIENCY)]
        ),
    }
    paths = {}
    for name, table in tables.items():
        paths[name] = str(folder / f"{name}.parquet")
        pq.write_table(table, paths[name])
    return paths


def arguments(samples: dict[str, str], output: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--working-point",
        "0.5",
        "--pt-bins",
        "300,500,900",
        "--signal-scores",
        samples["top"],
        "--background-scores",
        samples["qcd"],
        "--data",
        samples["data"],
        "--column",
        "score_top",
        "--sf-observable",
        "jet_sdmass",
        "--bins",
        "25",
        "--low",
        "50",
        "--high",
        "300",
        "--output",
        str(output),
        "--no-progress",
        *extra,
    ]


def test_scale_factors_recover_the_known_efficiency_ratio(
    samples: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "sf"
    code, out, err = run(arguments(samples, output, "--systematic", f"tune={samples['top_tune']}:"), capsys)
    assert code == 0, err
    assert out.count("SF [") == 2 and "(syst.)" in out
    results = json.loads((output / "scale_factors.json").read_text())
    assert [(b["low"], b["high"]) for b in results["bins"]] == [(300, 500), (500, 900)]
    for row in results["bins"]:
        assert row["efficiency_simulation"] == pytest.approx(SIM_EFFICIENCY, abs=0.015)
        assert abs(row["scale_factor"] - RATIO) < 2 * row["statistical"]
        assert 0.01 < row["statistical"] < 0.05  # ~4000 data top jets per bin: binomial σ(ε)/ε ≈ 1.4%
        # the varied simulation's shift, known in advance: ε_sim 0.6 → 0.63 (its own sampling σ ≈ 0.014)
        assert row["shifts"]["tune"] == pytest.approx(RATIO * (SIM_EFFICIENCY / 0.63 - 1), abs=0.03)
        assert row["systematic"] == pytest.approx(abs(row["shifts"]["tune"]))
        assert row["total"] == pytest.approx(np.hypot(row["statistical"], row["systematic"]))
    report = (output / "report.html").read_text()
    assert "Scale factors" in report and "Δ tune" in report and "data:image/png;base64" in report
    assert (output / "plots" / "scale_factors.png").is_file()


def test_scale_factor_input_errors_are_one_line(
    samples: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(arguments(samples, tmp_path / "a", "--working-point", "1.5"), capsys)
    assert code == 2 and "no simulated signal jets pass the working point 1.5" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(arguments(samples, tmp_path / "b", "--pt-bins", "500,300"), capsys)
    assert code == 2 and "bin edges must increase" in err
    code, _, err = run(arguments(samples, tmp_path / "c", "--pt-bins", "300,x"), capsys)
    assert code == 2 and "--pt-bins" in err
    code, _, err = run(arguments(samples, tmp_path / "d", "--sf-observable", "jet_mass"), capsys)
    assert code == 2 and "jet_mass" in err
    assert not (tmp_path / "a" / "report.html").exists()
