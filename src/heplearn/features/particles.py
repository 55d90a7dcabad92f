"""Standard derived particle and jet variables, available by name in every data config.

A ``VariableTable`` looks a name up in the file's fields first, then in the config's
``new_variables`` expressions, then in the built-in definitions below, computing each on demand
and once. The built-ins are the inputs of the standard taggers (ParticleNet, arXiv:1902.08570;
ParT, arXiv:2202.03772): log pT, log E, their ratios to the jet, Δη, Δφ, ΔR.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from heplearn.data.expressions import Expression


def wrap_phi(angle: Any) -> Any:
    """An azimuthal difference folded into [-π, π)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


@dataclass(frozen=True)
class Builtin:
    needs: tuple[str, ...]
    compute: Callable[[Mapping[str, Any]], Any]
    doc: str


def _pt(v: Mapping[str, Any]) -> Any:
    return np.hypot(v["part_px"], v["part_py"])


def _eta(v: Mapping[str, Any]) -> Any:
    return np.arcsinh(v["part_pz"] / v["part_pt"])


BUILTINS: dict[str, Builtin] = {
    "part_pt": Builtin(("part_px", "part_py"), _pt, "particle transverse momentum"),
    "part_eta": Builtin(("part_pz", "part_pt"), _eta, "particle pseudorapidity"),
    "part_phi": Builtin(("part_px", "part_py"), lambda v: np.arctan2(v["part_py"], v["part_px"]),
                        "particle azimuth"),
    "part_logpt": Builtin(("part_pt",), lambda v: np.log(v["part_pt"]), "log pT"),
    "part_loge": Builtin(("part_energy",), lambda v: np.log(v["part_energy"]), "log E"),
    "part_logptrel": Builtin(("part_pt", "jet_pt"), lambda v: np.log(v["part_pt"] / v["jet_pt"]),
                             "log(pT / pT_jet)"),
    "part_logerel": Builtin(("part_energy", "jet_energy"),
                            lambda v: np.log(v["part_energy"] / v["jet_energy"]), "log(E / E_jet)"),
    # JetClass convention: Δη = η_particle − η_jet, not flipped by the sign of η_jet.
    "part_deta": Builtin(("part_eta", "jet_eta"), lambda v: v["part_eta"] - v["jet_eta"],
                         "η_particle − η_jet"),
    "part_dphi": Builtin(("part_phi", "jet_phi"), lambda v: wrap_phi(v["part_phi"] - v["jet_phi"]),
                         "φ_particle − φ_jet wrapped to [−π, π)"),
    "part_deltaR": Builtin(("part_deta", "part_dphi"), lambda v: np.hypot(v["part_deta"], v["part_dphi"]),
                           "ΔR to the jet axis"),
    "jet_pt": Builtin(("part_px", "part_py"), lambda v: np.hypot(ak.sum(v["part_px"], axis=1),
                                                               ak.sum(v["part_py"], axis=1)),
                      "jet pT from its constituents"),
    "jet_energy": Builtin(("part_energy",), lambda v: ak.sum(v["part_energy"], axis=1),
                          "jet energy from its constituents"),
    "jet_nparticles": Builtin(("part_px",), lambda v: ak.num(v["part_px"], axis=1), "constituents"),
}


class VariableTable(Mapping[str, Any]):
    """Fields of one chunk plus derived variables, computed lazily and cached."""

    def __init__(self, chunk: ak.Array, new_variables: Mapping[str, Expression]) -> None:
        self._chunk = chunk
        self._fields = set(chunk.fields)
        self._new = new_variables
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self._cache:
            return self._cache[name]
        if name in self._fields:
            value = self._chunk[name]
        elif name in self._new:
            value = self._new[name].evaluate(self)
        elif name in BUILTINS:
            value = BUILTINS[name].compute(self)
        else:
            raise KeyError(name)
        self._cache[name] = value
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._fields or name in self._new or name in BUILTINS)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._fields | set(self._new) | set(BUILTINS)))

    def __len__(self) -> int:
        return len(self._fields | set(self._new) | set(BUILTINS))


def file_fields_needed(
    names: set[str], available: set[str], new_variables: Mapping[str, Expression]
) -> tuple[set[str], set[str]]:
    """(fields to read from the file, names that can be neither read nor derived).

    File fields win over derivations; a derived variable pulls in what it depends on.
    """
    read: set[str] = set()
    unknown: set[str] = set()
    pending = list(names)
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in available:
            read.add(name)
        elif name in new_variables:
            pending.extend(new_variables[name].names)
        elif name in BUILTINS:
            pending.extend(BUILTINS[name].needs)
        else:
            unknown.add(name)
    return read, unknown
