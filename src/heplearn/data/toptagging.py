"""The public Top Tagging reference dataset (Kasieczka et al., arXiv:1902.09914) as JetClass fields.

Its HDF5 files are pandas tables (key ``table``) with zero-padded constituent columns
``E_0..E_199, PX_*, PY_*, PZ_*`` and the label ``is_signal_new`` (1 = top). Reading one gives the
jagged ``part_*`` fields (padding dropped), the jet four-momentum as the constituent sum, the
particle angles relative to the jet axis, and one-hot ``label_Top`` / ``label_QCD``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import awkward as ak
import h5py
import numpy as np
import pandas as pd
import vector
from typing_extensions import override

from heplearn.data.io import FieldInfo, Source
from heplearn.errors import DataError

CONSTITUENT_COLUMN = re.compile(r"^(E|PX|PY|PZ)_(\d+)$")
LABEL_COLUMN = "is_signal_new"
PARTICLE_OUTPUTS = ("part_px", "part_py", "part_pz", "part_energy", "part_deta", "part_dphi")
JET_OUTPUTS = ("jet_pt", "jet_eta", "jet_phi", "jet_energy", "jet_mass", "jet_nparticles")
LABEL_OUTPUTS = ("label_Top", "label_QCD")
TRUTH_COLUMNS = {
    "truthE": "aux_truth_energy",
    "truthPX": "aux_truth_px",
    "truthPY": "aux_truth_py",
    "truthPZ": "aux_truth_pz",
    "ttv": "aux_ttv",
}


def _pandas_group(handle: h5py.File) -> tuple[str, str] | None:
    """(key, pandas_type) of the first pandas frame stored in the file, if any."""
    for key, item in handle.items():
        if isinstance(item, h5py.Group):
            kind = item.attrs.get("pandas_type")
            if kind is not None:
                return key, kind.decode() if isinstance(kind, bytes) else str(kind)
    return None


def _column_names(path: Path, key: str, kind: str, handle: h5py.File) -> list[str]:
    if kind == "frame":  # pandas "fixed" format keeps the column names in axis0
        return [name.decode() for name in handle[key]["axis0"][:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(pd.read_hdf(path, key, start=0, stop=1).columns)


def is_toptagging_file(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file in the public Top Tagging layout (a pandas table of ``E_i, PX_i, ...``)."""
    try:
        with h5py.File(path, "r") as handle:
            found = _pandas_group(handle)
            if found is None:
                return False
            names = _column_names(path, found[0], found[1], handle)
    except Exception:
        return False
    return "E_0" in names and "PX_0" in names


class TopTaggingSource(Source):
    """A Top Tagging HDF5 file, read into the JetClass schema on the fly."""

    format_name = "Top Tagging HDF5"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        with h5py.File(path, "r") as handle:
            found = _pandas_group(handle)
            if found is None:
                raise DataError(f"{path}: no pandas table in the file")
            self._key, kind = found
            group = handle[self._key]
            self._entries = int(group["axis1"].shape[0] if kind == "frame" else group["table"].shape[0])
            self._columns = _column_names(path, self._key, kind, handle)
        slots = [int(m.group(2)) for c in self._columns if (m := CONSTITUENT_COLUMN.match(c))]
        self._slots = max(slots) + 1 if slots else 0
        missing = [
            f"{p}_{i}" for p in ("E", "PX", "PY", "PZ") for i in range(self._slots) if f"{p}_{i}" not in self._columns
        ]
        if missing:
            raise DataError(f"{path}: Top Tagging layout lacks columns {', '.join(missing[:5])}")

    @property
    @override
    def table_name(self) -> str:
        return self._key

    @property
    @override
    def num_entries(self) -> int:
        return self._entries

    def _outputs(self) -> list[str]:
        names = [*PARTICLE_OUTPUTS, *JET_OUTPUTS]
        if LABEL_COLUMN in self._columns:
            names += LABEL_OUTPUTS
        names += [out for column, out in TRUTH_COLUMNS.items() if column in self._columns]
        return names

    @override
    def fields(self) -> list[FieldInfo]:
        return [
            FieldInfo(
                name,
                "var * float32"
                if name.startswith("part_")
                else ("int64" if name.startswith(("label_", "jet_n")) else "float32"),
                name.startswith("part_"),
            )
            for name in self._outputs()
        ]

    def _read(self, fields: list[str], start: int, stop: int) -> ak.Array:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pd.read_hdf(self.path, self._key, start=start, stop=stop)
        converted = convert_frame(frame, self._slots)
        return converted[fields]


def convert_frame(frame: pd.DataFrame, slots: int) -> ak.Array:
    """One pandas chunk of the Top Tagging layout as a JetClass-schema record array."""

    def block(prefix: str) -> np.ndarray:
        return frame[[f"{prefix}_{i}" for i in range(slots)]].to_numpy(np.float32)

    energy, px, py, pz = block("E"), block("PX"), block("PY"), block("PZ")
    real = energy > 0  # constituents are zero-padded
    counts = real.sum(axis=1)

    # Any: vector's arrays get their momentum attributes (eta, pt, deltaphi, ...) from behaviours mypy cannot see
    jet: Any = vector.array({"px": px.sum(1), "py": py.sum(1), "pz": pz.sum(1), "E": energy.sum(1)})
    particles: Any = vector.array({"px": px[real], "py": py[real], "pz": pz[real], "E": energy[real]})
    jet_of_particle = np.repeat(np.arange(len(frame)), counts)
    jet_per_particle = jet[jet_of_particle]

    def jagged(values: np.ndarray) -> ak.Array:
        return ak.unflatten(np.asarray(values, dtype=np.float32), counts)

    columns: dict[str, ak.Array | np.ndarray] = {
        "part_px": jagged(px[real]),
        "part_py": jagged(py[real]),
        "part_pz": jagged(pz[real]),
        "part_energy": jagged(energy[real]),
        "part_deta": jagged(particles.eta - jet_per_particle.eta),
        "part_dphi": jagged(particles.deltaphi(jet_per_particle)),
        "jet_pt": np.asarray(jet.pt, np.float32),
        "jet_eta": np.asarray(jet.eta, np.float32),
        "jet_phi": np.asarray(jet.phi, np.float32),
        "jet_energy": np.asarray(jet.E, np.float32),
        "jet_mass": np.asarray(jet.mass, np.float32),
        "jet_nparticles": counts.astype(np.int64),
    }
    if LABEL_COLUMN in frame.columns:
        is_top = frame[LABEL_COLUMN].to_numpy().astype(np.int64)
        columns["label_Top"] = is_top
        columns["label_QCD"] = 1 - is_top
    for column, out in TRUTH_COLUMNS.items():
        if column in frame.columns:
            columns[out] = frame[column].to_numpy(np.float32)
    return ak.zip(columns, depth_limit=1)
