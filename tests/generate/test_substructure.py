"""Soft drop and N-subjettiness on hand-made jets whose answers are known in closed form."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from heplearn.generate.substructure import jet_nsubjettiness, jet_sdmass, substructure_fields

R0 = 0.8


def massless(pt: float, rapidity: float, phi: float) -> dict[str, float]:
    return {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(rapidity), "E": pt * np.cosh(rapidity)}


def jets(*particle_lists: list[dict[str, float]]) -> ak.Array:
    return ak.Array(list(particle_lists), with_name="Momentum4D")


def pair_mass(pt1: float, pt2: float, dy: float, dphi: float) -> float:
    """Invariant mass of two massless particles: m² = 2 pT1 pT2 (cosh Δy − cos Δφ)."""
    return float(np.sqrt(2 * pt1 * pt2 * (np.cosh(dy) - np.cos(dphi))))


def test_two_hard_particles_tau1_analytic_and_tau2_zero() -> None:
    # Equal pT at y = 0 and y = 0.3: the one-jet axis sits at y = 0.15 exactly, so
    # τ1 = (100·0.15 + 100·0.15) / (200 · R0); two axes on the two particles give τ2 = 0.
    taus = jet_nsubjettiness(jets([massless(100, 0.0, 0.0), massless(100, 0.3, 0.0)]), R0)
    assert taus[0, 0] == pytest.approx(30 / (200 * R0), rel=1e-9)
    assert taus[0, 1] == pytest.approx(0.0, abs=1e-12)


def test_tau1_asymmetric_pair_matches_formula() -> None:
    # Two particles at y = 0, φ = 0 and 0.4: the axis is the azimuth of their vector sum.
    pt1, pt2, dphi = 150.0, 50.0, 0.4
    axis = np.arctan2(pt2 * np.sin(dphi), pt1 + pt2 * np.cos(dphi))
    expected = (pt1 * axis + pt2 * (dphi - axis)) / ((pt1 + pt2) * R0)
    taus = jet_nsubjettiness(jets([massless(pt1, 0, 0), massless(pt2, 0, dphi)]), R0)
    assert taus[0, 0] == pytest.approx(expected, rel=1e-9)


def test_tau2_uses_exclusive_kt_axes() -> None:
    # A soft particle C next to A: exclusive kT merges A+C first, so the two axes are A+C and B.
    a, b, c = massless(100, 0, 0), massless(100, 0, 0.5), massless(5, 0, 0.05)
    axis = np.arctan2(5 * np.sin(0.05), 100 + 5 * np.cos(0.05))
    expected = (100 * axis + 5 * (0.05 - axis)) / (205 * R0)
    taus = jet_nsubjettiness(jets([a, b, c]), R0)
    assert taus[0, 1] == pytest.approx(expected, rel=1e-9)
    assert taus[0, 2] == pytest.approx(0.0, abs=1e-12)  # three particles, three axes


def test_tau_normalisation_scales_with_r0() -> None:
    jet = jets([massless(100, 0, 0), massless(60, 0.2, 0.3), massless(30, -0.1, 0.2)])
    assert jet_nsubjettiness(jet, 0.4)[0, 0] == pytest.approx(2 * jet_nsubjettiness(jet, 0.8)[0, 0], rel=1e-9)


def test_symmetric_splitting_passes_soft_drop() -> None:
    masses = jet_sdmass(jets([massless(100, 0, 0), massless(100, 0, 0.3)]), R0)
    assert masses[0] == pytest.approx(pair_mass(100, 100, 0, 0.3), rel=1e-9)


def test_soft_wide_emission_is_groomed() -> None:
    pair = [massless(100, 0, 0), massless(100, 0, 0.3)]
    soft = massless(1.0, 0.0, 0.75)  # z ≈ 0.005 < 0.1: dropped at the first declustering
    groomed = jet_sdmass(jets([*pair, soft]), R0)[0]
    assert groomed == pytest.approx(pair_mass(100, 100, 0, 0.3), rel=1e-9)
    plain = np.sqrt(
        sum(p["E"] for p in [*pair, soft]) ** 2
        - sum(p["px"] for p in [*pair, soft]) ** 2
        - sum(p["py"] for p in [*pair, soft]) ** 2
        - sum(p["pz"] for p in [*pair, soft]) ** 2
    )
    assert plain > groomed + 1.0


def test_asymmetric_splitting_grooms_to_single_prong() -> None:
    # z = 5/105 < 0.1: the softer prong goes and a single massless particle remains.
    masses = jet_sdmass(jets([massless(100, 0, 0), massless(5, 0, 0.3)]), R0)
    assert masses[0] == pytest.approx(0.0, abs=1e-6)


def test_beta_zero_cut_is_angle_independent_but_beta_one_is_not() -> None:
    # z = 0.08: fails z_cut = 0.1 at β = 0; with β = 1 the cut is 0.1·(ΔR/R0) = 0.0375: passes.
    jet = jets([massless(92, 0, 0), massless(8, 0, 0.3)])
    assert jet_sdmass(jet, R0)[0] == pytest.approx(0.0, abs=1e-6)
    assert jet_sdmass(jet, R0, beta=1.0)[0] == pytest.approx(pair_mass(92, 8, 0, 0.3), rel=1e-9)


def test_many_jets_at_once_and_field_names() -> None:
    batch = jets(
        [massless(100, 0, 0), massless(100, 0.3, 0)],
        [massless(100, 0, 0), massless(100, 0, 0.3), massless(1.0, 0, 0.75)],
    )
    fields = substructure_fields(batch, R0)
    assert set(fields) == {"jet_sdmass", "jet_tau1", "jet_tau2", "jet_tau3", "jet_tau4"}
    assert all(len(values) == 2 for values in fields.values())
    assert fields["jet_tau1"][0] == pytest.approx(0.1875, rel=1e-6)
    assert fields["jet_sdmass"][1] == pytest.approx(pair_mass(100, 100, 0, 0.3), rel=1e-6)


def test_empty_input_gives_empty_output() -> None:
    empty = ak.Array([[massless(1, 0, 0)]], with_name="Momentum4D")[:0]
    assert jet_sdmass(empty, R0).shape == (0,)
    assert jet_nsubjettiness(empty, R0).shape == (0, 4)


def test_soft_drop_gives_zg_and_rg_of_the_first_passing_declustering() -> None:
    from heplearn.generate.substructure import jet_soft_drop

    # 100 + 30 GeV, 0.2 apart: z = 30/130 passes z_cut = 0.1, so z_g = 3/13, R_g = 0.2, m_SD = m;
    # 100 + 5 GeV: z = 5/105 fails and the groomed jet is one massless particle (all three 0)
    groomed = jet_soft_drop(
        jets(
            [massless(100, 0.0, 0.0), massless(30, 0.2, 0.0)],
            [massless(100, 0.0, 0.0), massless(5, 0.2, 0.0)],
        ),
        R0,
    )
    assert groomed["zg"] == pytest.approx([3 / 13, 0.0])
    assert groomed["rg"] == pytest.approx([0.2, 0.0])
    assert groomed["msoftdrop"] == pytest.approx([pair_mass(100, 30, 0.2, 0.0), 0.0])
