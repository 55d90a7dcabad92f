"""Pileup: the overlay's Poisson counts and beam-spot spread, ρ, and pileup in generated jets."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from typer.testing import CliRunner

from heplearn.data import io
from heplearn.errors import ConfigError, HeplearnError
from heplearn.generate.driver import generate
from heplearn.generate.events import FinalState
from heplearn.generate.pileup import BEAM_SPOT_SIGMA_Z, PileupPool, fixed_grid_rho, make_pool, pool_path
from heplearn.generate.processes import GeneratorOptions
from tests.generate.test_options_and_cli import make_app

POOL_SIZE = 60


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> PileupPool:
    directory = tmp_path_factory.mktemp("pool")
    path = make_pool(pool_path(directory, 14_000.0, 1, POOL_SIZE), 14_000.0, 1, POOL_SIZE)
    return PileupPool(path)


def empty_events(n: int) -> FinalState:
    zeros = np.zeros(0)
    return FinalState(
        px=zeros,
        py=zeros,
        pz=zeros,
        energy=zeros,
        pid=np.zeros(0, dtype=np.int64),
        charge=zeros,
        counts=np.zeros(n, dtype=np.int64),
    )


def test_pool_is_minimum_bias(pool: PileupPool) -> None:
    assert len(pool) == POOL_SIZE
    assert 50 < pool.counts.mean() < 600  # a non-diffractive 14 TeV collision: a few hundred visible particles


def test_overlay_counts_are_poisson(pool: PileupPool) -> None:
    mu = 3.0
    result, n_pileup = pool.overlay(empty_events(4000), mu, np.random.default_rng(0))
    assert n_pileup.mean() == pytest.approx(mu, abs=4 * np.sqrt(mu / 4000))
    assert n_pileup.var() == pytest.approx(mu, rel=0.1)  # Poisson: variance = mean
    # the particles of each event are those of its chosen interactions
    assert result.counts.sum() == pytest.approx(n_pileup.sum() * pool.counts.mean(), rel=0.1)
    # each interaction sits somewhere on the luminous region
    assert np.std(result.vz) == pytest.approx(BEAM_SPOT_SIGMA_Z, rel=0.1)


def test_rho_grows_linearly_with_mu(pool: PileupPool) -> None:
    # ρ is a median of cell densities: it rises with μ, about linearly once most cells are filled.
    rho = {
        mu: float(np.mean(fixed_grid_rho(pool.overlay(empty_events(300), mu, np.random.default_rng(1))[0])))
        for mu in (10.0, 20.0, 40.0)
    }
    assert rho[10.0] < rho[20.0] < rho[40.0]
    assert (rho[40.0] - rho[20.0]) / (rho[20.0] - rho[10.0]) == pytest.approx(2.0, rel=0.35), rho


def test_rho_of_a_uniform_grid() -> None:
    # one 1 GeV particle at the centre of every cell: ρ = 1 GeV / cell area
    n_eta, n_phi = round(10 / 0.55), 11
    eta = -5 + (np.arange(n_eta) + 0.5) * 10 / n_eta
    phi = -np.pi + (np.arange(n_phi) + 0.5) * 2 * np.pi / n_phi
    eta, phi = (grid.ravel() for grid in np.meshgrid(eta, phi))
    px, py, pz = np.cos(phi), np.sin(phi), np.sinh(eta)
    particles = FinalState(
        px=px,
        py=py,
        pz=pz,
        energy=np.cosh(eta),
        pid=np.full(len(px), 211),
        charge=np.ones(len(px)),
        counts=np.array([len(px)]),
    )
    assert fixed_grid_rho(particles)[0] == pytest.approx(1 / ((10 / n_eta) * (2 * np.pi / n_phi)))


def test_pileup_in_generated_jets(tmp_path: Path) -> None:
    options = GeneratorOptions(pt_min=150.0, pt_max=200.0, radius=0.4, mpi=False, pileup=10.0, pileup_pool=POOL_SIZE)
    generate(["qcd"], 20, tmp_path, seed=3, options=options, progress=False, fractions=(1.0, 0.0, 0.0))
    jets = io.open_source(tmp_path / "train.parquet").read()
    npv = ak.to_numpy(jets.aux_pv_npvs)
    assert 6 < npv.mean() < 16 and npv.min() >= 1
    assert np.all(ak.to_numpy(jets.aux_rho) > 0)
    assert io.open_source(tmp_path / "train.parquet").provenance()["options"]["pileup"] == 10.0
    assert len(list((tmp_path / "chunks").glob("pileup-*.parquet"))) == 1


def test_negative_mu_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pileup μ must be a non-negative number"):
        GeneratorOptions(pileup=-1.0)
    result = CliRunner().invoke(
        make_app(), ["generate", "qcd", "--jets", "5", "--pileup", "-2", "-o", str(tmp_path / "out")]
    )
    assert isinstance(result.exception, HeplearnError) and "pileup μ" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_pileup_in_event_samples(tmp_path: Path) -> None:
    from heplearn.generate.event_driver import generate_events_sample
    from heplearn.generate.nanoaod import EventOptions

    options = EventOptions(mpi=False, pileup=5.0, pileup_pool=30)
    generate_events_sample(
        ["zmumu_jets"], 4, tmp_path, seed=2, options=options, progress=False, fractions=(1.0, 0.0, 0.0)
    )
    events = io.open_source(tmp_path / "train.parquet").read()
    assert np.all(ak.to_numpy(events.PV_npvs) >= 1) and ak.to_numpy(events.PV_npvs).mean() > 2
    # without pileup: one vertex and a smaller ρ
    generate_events_sample(
        ["zmumu_jets"],
        4,
        tmp_path / "clean",
        seed=2,
        options=EventOptions(mpi=False),
        progress=False,
        fractions=(1.0, 0.0, 0.0),
    )
    clean = io.open_source(tmp_path / "clean" / "train.parquet").read()
    assert np.all(ak.to_numpy(clean.PV_npvs) == 1)
    assert ak.to_numpy(events.fixedGridRhoFastjetAll).mean() > ak.to_numpy(clean.fixedGridRhoFastjetAll).mean()
