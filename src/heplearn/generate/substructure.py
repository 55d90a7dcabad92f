"""Jet substructure with FastJet's contrib tools: soft-drop mass and N-subjettiness.

The ``fastjet`` Python package ships fastjet-contrib's ``SoftDrop`` and ``Nsubjettiness``
behind its vectorised awkward interface, so the values here *are* the contrib values. Each jet's
constituents are one "event": they are re-clustered with Cambridge/Aachen at a radius large
enough to gather them all into one jet, which is what both tools start from.

Soft drop (Larkoski, Marzani, Soyez, Thaler, arXiv:1402.2657): decluster the C/A tree from the
top; at each step keep the branches if
``min(pT1, pT2) / (pT1 + pT2) > z_cut (ΔR12 / R0)^β``, otherwise drop the softer branch and
continue with the harder one. With β = 0 and z_cut = 0.1 it is the modified mass-drop tagger.

N-subjettiness (Thaler, Van Tilburg, arXiv:1011.2268, arXiv:1108.2701), the "normalised
measure" of fastjet-contrib with β = 1:
``τ_N = Σ_i pT_i min_k ΔR_ik / (Σ_i pT_i R0)``, with the N axes the exclusive-kT subjets of the
jet (contrib's ``KT_Axes``: kT algorithm, E-scheme, run exclusively to N jets). ΔR uses
rapidity and azimuth.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from heplearn.generate._fastjet import fastjet

# C/A with this radius merges every pair of constituents before any goes to the beam, so the
# re-clustering gives exactly one jet (FastJet's own "max allowable R" is 1000).
_RECLUSTER_RADIUS = 1000.0
TAU_ORDERS = (1, 2, 3, 4)


def _recluster(constituents: ak.Array) -> fastjet.ClusterSequence:
    definition = fastjet.JetDefinition(fastjet.cambridge_algorithm, _RECLUSTER_RADIUS)
    return fastjet.ClusterSequence(constituents, definition)


def _check(constituents: ak.Array) -> None:
    if constituents.ndim != 2 or not {"px", "py", "pz", "E"} <= set(ak.fields(constituents)):
        raise ValueError("constituents must be a jagged record array with px, py, pz, E (one list per jet)")


def jet_sdmass(constituents: ak.Array, radius: float, *, beta: float = 0.0, z_cut: float = 0.1) -> np.ndarray:
    """Soft-drop groomed mass of each jet (GeV); R0 = ``radius``, the jet radius."""
    _check(constituents)
    if len(constituents) == 0:
        return np.zeros(0)
    return _soft_drop(_recluster(constituents), radius, beta, z_cut)


def jet_soft_drop(
    constituents: ak.Array, radius: float, *, beta: float = 0.0, z_cut: float = 0.1
) -> dict[str, np.ndarray]:
    """Soft drop's groomed mass ``msoftdrop`` (GeV), momentum fraction ``zg`` and opening angle ``rg``.

    z_g = min(pT1, pT2)/(pT1 + pT2) and R_g = ΔR12 of the first declustering that passes the
    condition (Larkoski, Marzani, Thaler, arXiv:1502.02676); both are 0 when no declustering passes
    (the groomed jet is one constituent).
    """
    _check(constituents)
    if len(constituents) == 0:
        return {"msoftdrop": np.zeros(0), "zg": np.zeros(0), "rg": np.zeros(0)}
    groomed = _groom(_recluster(constituents), radius, beta, z_cut)
    return {
        "msoftdrop": ak.to_numpy(groomed.msoftdrop).astype(np.float64),
        "zg": np.clip(ak.to_numpy(groomed.symmetrysoftdrop).astype(np.float64), 0.0, None),
        "rg": np.clip(ak.to_numpy(groomed.deltaRsoftdrop).astype(np.float64), 0.0, None),
    }


def jet_nsubjettiness(
    constituents: ak.Array, radius: float, *, beta: float = 1.0, orders: tuple[int, ...] = TAU_ORDERS
) -> np.ndarray:
    """τ_N for N in ``orders`` (shape (jets, len(orders))); R0 = ``radius``."""
    _check(constituents)
    if len(constituents) == 0:
        return np.zeros((0, len(orders)))
    return _nsubjettiness(_recluster(constituents), radius, beta, orders)


def substructure_fields(constituents: ak.Array, radius: float) -> dict[str, np.ndarray]:
    """``jet_sdmass`` (β = 0, z_cut = 0.1) and ``jet_tau1..4`` (β = 1) with R0 = ``radius``."""
    _check(constituents)
    n_jets = len(constituents)
    if n_jets == 0:
        empty = np.zeros(0, dtype=np.float32)
        return {"jet_sdmass": empty, **{f"jet_tau{n}": empty for n in TAU_ORDERS}}
    sequence = _recluster(constituents)
    taus = _nsubjettiness(sequence, radius, 1.0, TAU_ORDERS)
    fields = {"jet_sdmass": _soft_drop(sequence, radius, 0.0, 0.1).astype(np.float32)}
    for column, order in enumerate(TAU_ORDERS):
        fields[f"jet_tau{order}"] = taus[:, column].astype(np.float32)
    return fields


def _groom(sequence: fastjet.ClusterSequence, radius: float, beta: float, z_cut: float) -> ak.Array:
    return sequence.exclusive_jets_softdrop_grooming(
        njets=1,
        beta=beta,
        symmetry_cut=z_cut,
        symmetry_measure="scalar_z",
        R0=radius,
        recursion_choice="larger_pt",
    )


def _soft_drop(sequence: fastjet.ClusterSequence, radius: float, beta: float, z_cut: float) -> np.ndarray:
    return ak.to_numpy(_groom(sequence, radius, beta, z_cut).msoftdrop).astype(np.float64)


def _nsubjettiness(
    sequence: fastjet.ClusterSequence, radius: float, beta: float, orders: tuple[int, ...]
) -> np.ndarray:
    taus = sequence.njettiness(
        measure_definition="NormalizedMeasure",
        axes_definition="KT_Axes",
        njets=list(orders),
        beta=beta,
        R0=radius,
    )
    return ak.to_numpy(taus).astype(np.float64).reshape(-1, len(orders))
