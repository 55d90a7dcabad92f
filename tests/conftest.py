"""Shared fixtures: small JetClass-layout samples written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch

from heplearn.data import io


def make_jets(n: int, seed: int = 0, max_particles: int = 60) -> ak.Array:
    """``n`` jets with JetClass fields: constituents spread around a jet axis, two classes.

    Class-1 ("signal") jets have more constituents and a wider spread, so a classifier can learn.
    """
    rng = np.random.default_rng(seed)
    is_signal = rng.integers(0, 2, n)
    counts = rng.integers(5, max_particles // 2, n) + is_signal * rng.integers(0, max_particles // 2, n)
    total = int(counts.sum())
    jet_eta = rng.uniform(-2, 2, n)
    jet_phi = rng.uniform(-np.pi, np.pi, n)
    spread = np.repeat(0.1 + 0.15 * is_signal, counts)
    deta = rng.normal(0, 1, total) * spread
    dphi = rng.normal(0, 1, total) * spread
    pt = rng.exponential(20.0, total) + 0.5
    eta = np.repeat(jet_eta, counts) + deta
    phi = np.repeat(jet_phi, counts) + dphi
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2)
    charge = rng.choice([-1, 0, 1], total).astype(np.float32)

    def jagged(values: np.ndarray) -> ak.Array:
        return ak.unflatten(values.astype(np.float32), counts)

    jet_px = ak.sum(jagged(px), axis=1)
    jet_py = ak.sum(jagged(py), axis=1)
    return ak.zip(
        {
            "part_px": jagged(px),
            "part_py": jagged(py),
            "part_pz": jagged(pz),
            "part_energy": jagged(energy),
            "part_deta": jagged(deta),
            "part_dphi": jagged(dphi),
            "part_charge": jagged(charge),
            "part_isChargedHadron": jagged((charge != 0).astype(np.float32)),
            "part_isPhoton": jagged((charge == 0).astype(np.float32)),
            "jet_pt": np.hypot(ak.to_numpy(jet_px), ak.to_numpy(jet_py)).astype(np.float32),
            "jet_eta": jet_eta.astype(np.float32),
            "jet_phi": jet_phi.astype(np.float32),
            "jet_energy": ak.to_numpy(ak.sum(jagged(energy), axis=1)),
            "jet_nparticles": counts.astype(np.int64),
            "jet_sdmass": rng.normal(80 + 90 * is_signal, 15, n).astype(np.float32),
            "label_top": is_signal.astype(np.int64),
            "label_qcd": (1 - is_signal).astype(np.int64),
        },
        depth_limit=1,
    )


@pytest.fixture(scope="session")
def jets() -> ak.Array:
    return make_jets(600, seed=1)


@pytest.fixture(scope="session")
def jet_files(tmp_path_factory: pytest.TempPathFactory, jets: ak.Array) -> dict[str, Path]:
    """The same 600 jets as Parquet (3 row groups), ROOT (a TTree, and an RNTuple) and HDF5."""
    folder = tmp_path_factory.mktemp("jets")
    return {
        "parquet": io.write(jets, folder / "jets.parquet", {"seed": 1}, row_group_size=200),
        "root": io.write(jets, folder / "jets.root", {"seed": 1}),
        "hdf5": io.write(jets, folder / "jets.h5", {"seed": 1}),
        "rntuple": write_rntuple(jets, folder / "jets_rntuple.root", 250, provenance={"seed": 1}),
    }


def with_trained_batch_norms(network: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """``network`` with non-trivial running statistics and affine parameters in every batch norm
    (what folding them into the dense layers of an exported graph must reproduce)."""
    from heplearn.models.nn_base import MaskedBatchNorm

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, MaskedBatchNorm):
                channels = module.running_mean.shape[0]
                module.running_mean.copy_(torch.randn(channels, generator=generator) * 0.5)
                module.running_var.copy_(torch.rand(channels, generator=generator) * 2 + 0.2)
                module.weight.copy_(1 + 0.3 * torch.randn(channels, generator=generator))
                module.bias.copy_(0.3 * torch.randn(channels, generator=generator))
    return network


def write_rntuple(
    jets: ak.Array,
    path: Path,
    cluster_size: int = 10_000,
    name: str = "tree",
    provenance: dict[str, object] | None = None,
) -> Path:
    """``jets`` as an RNTuple ``name`` the way uproot >= 5.7 writes one (a dict assigned to a key),
    one cluster per ``cluster_size`` entries (each ``extend`` closes a cluster)."""
    import json

    import uproot

    fields = {field: jets[field] for field in jets.fields}
    with uproot.recreate(path) as output:
        if provenance is not None:
            output[io.PROVENANCE_KEY] = json.dumps(provenance)
        output[name] = {field: values[:cluster_size] for field, values in fields.items()}
        for start in range(cluster_size, len(jets), cluster_size):
            output[name].extend({field: values[start : start + cluster_size] for field, values in fields.items()})
    return path
