"""The JetClass field names that every heplearn file and reader uses.

Per-particle fields are jagged (one list per jet), per-jet fields are flat; one-hot class labels
start with ``label_`` and truth information with ``aux_``. Files written with these names move
freely between heplearn, weaver-core and the public JetClass / top-tagging tooling.
"""

from __future__ import annotations

PARTICLE_KINEMATICS = ("part_px", "part_py", "part_pz", "part_energy")
PARTICLE_ANGLES = ("part_deta", "part_dphi")
PARTICLE_TRACK = ("part_d0val", "part_d0err", "part_dzval", "part_dzerr")
PARTICLE_TYPES = (
    "part_isChargedHadron",
    "part_isNeutralHadron",
    "part_isPhoton",
    "part_isElectron",
    "part_isMuon",
)
PARTICLE_FIELDS = (
    *PARTICLE_KINEMATICS,
    *PARTICLE_ANGLES,
    *PARTICLE_TRACK,
    "part_charge",
    *PARTICLE_TYPES,
)
JET_FIELDS = (
    "jet_pt",
    "jet_eta",
    "jet_phi",
    "jet_energy",
    "jet_nparticles",
    "jet_sdmass",
    "jet_tau1",
    "jet_tau2",
    "jet_tau3",
    "jet_tau4",
)

PARTICLE_PREFIX = "part_"
JET_PREFIX = "jet_"
LABEL_PREFIX = "label_"
AUX_PREFIX = "aux_"

# The JetClass ROOT files and weaver-core keep their events in a tree of this name.
DEFAULT_TREE = "tree"


def label_fields(fields: list[str] | tuple[str, ...]) -> list[str]:
    """The one-hot label fields among ``fields``, in file order."""
    return [name for name in fields if name.startswith(LABEL_PREFIX)]


def class_name(label_field: str) -> str:
    """``label_Top`` -> ``Top``."""
    return label_field.removeprefix(LABEL_PREFIX)
