"""An optional parametric detector: tracking, calorimeter cells and resolutions (off by default).

The model follows the particle-flow picture of a general-purpose LHC detector, with CMS-like
default parameters (CMS tracker: JINST 9 (2014) P10009; CMS ECAL/HCAL: JINST 3 (2008) S08004):

- charged particles inside the tracker (|η| < ``tracker_eta_max``, pT > ``track_pt_min``) are
  reconstructed as tracks with probability ``tracking_efficiency`` (barrel/endcap); their pT is
  smeared with σ(pT)/pT = a ⊕ b·pT. Charged particles below ``track_pt_min`` curl up in the
  field and are lost. An untracked charged hadron (or electron) still deposits its energy in the
  HCAL (ECAL); an untracked muon is lost;
- photons (and untracked electrons) go to ECAL cells, neutral hadrons (and untracked charged
  hadrons) to HCAL cells, both of size Δη × Δφ. The particles of a cell are merged into one
  massless object at the cell centre whose energy is smeared with
  σ(E)/E = S/√E ⊕ C (S, C per region: barrel |η| < 1.5, endcap < 3, forward < 5). Cells below
  the threshold are dropped. ECAL cells are stored as photons (pdg id 22) and HCAL cells as
  neutral hadrons (pdg id 130, the K⁰_L code);
- the calorimeter response (``ecal_scale``, ``hcal_scale``: mean measured / true energy) is 1 in
  the nominal detector;
- nothing is seen beyond ``calorimeter_eta_max``.

Tracks also get measured impact parameters (``tracks.impact_parameters``), with
σ(d0) = a ⊕ b/pT and σ(dz) = a ⊕ b/pT (mm, pT in GeV). The CMS tracker measures 10 μm (d0) and
30 μm (dz) for 100 GeV muons at |η| < 1.4 (JINST 9 (2014) P10009, abstract): those are the
constant terms; the multiple-scattering terms b = 0.09 and 0.11 mm·GeV give the ≈ 0.1 mm of
1 GeV tracks in that paper's figures (read off approximately).

Detector profiles (``DETECTOR_PROFILES``; ``load_detector`` takes a profile name or a YAML file):

``nominal``
    The defaults above.
``alt``
    A "data-like" detector for domain adaptation and calibration studies: tracking efficiency
    0.90/0.80, track pT and impact-parameter resolutions × 1.5, ECAL and HCAL resolutions worse
    (ECAL S = 5%/8%/120%, C = 1%/1.5%/7%; HCAL S = 120%/120%/200%, C = 8%/8%/12%), and a lower
    calorimeter response (ECAL 0.98, HCAL 0.92).

A YAML profile holds any ``DetectorConfig`` field, and optionally ``base: alt`` (default
``nominal``) for the fields it does not set.

All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from heplearn.errors import ConfigError
from heplearn.generate import kinematics
from heplearn.generate.events import FinalState

ECAL_CELL_PDGID = 22
HCAL_CELL_PDGID = 130
_REGION_EDGES = (1.5, 3.0)  # barrel | endcap | forward


@dataclass(frozen=True)
class DetectorConfig:
    """Parameters of the parametric detector (GeV, radians).

    Per-region tuples are (barrel |η| < 1.5, endcap 1.5-3, forward 3-5). ``name`` is the
    profile's name, recorded in the provenance.
    """

    name: str = "custom"
    tracker_eta_max: float = 2.5
    calorimeter_eta_max: float = 5.0
    track_pt_min: float = 0.5
    tracking_efficiency: tuple[float, float] = (0.95, 0.85)  # barrel, endcap
    # σ(pT)/pT = a ⊕ b·pT (b in 1/GeV), barrel and endcap
    track_resolution_constant: tuple[float, float] = (0.005, 0.01)
    track_resolution_slope: tuple[float, float] = (1.5e-4, 3e-4)
    ecal_stochastic: tuple[float, float, float] = (0.03, 0.05, 1.0)
    ecal_constant: tuple[float, float, float] = (0.005, 0.01, 0.05)
    hcal_stochastic: tuple[float, float, float] = (1.0, 1.0, 1.8)
    hcal_constant: tuple[float, float, float] = (0.05, 0.05, 0.1)
    ecal_cell: tuple[float, float] = (0.0174, 0.0174)  # Δη, Δφ
    hcal_cell: tuple[float, float] = (0.087, 0.087)
    ecal_threshold: float = 0.5
    hcal_threshold: float = 1.0
    ecal_scale: float = 1.0  # calorimeter response: mean measured / true energy
    hcal_scale: float = 1.0
    # impact-parameter resolution a ⊕ b/pT: (a in mm, b in mm·GeV)
    d0_resolution: tuple[float, float] = (0.010, 0.090)
    dz_resolution: tuple[float, float] = (0.030, 0.110)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"detector.name must be a non-empty string, got {self.name!r}")
        for name in ("ecal_scale", "hcal_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (
                isinstance(value, int | float) and math.isfinite(value) and 0 < value <= 2
            ):
                raise ConfigError(f"detector.{name} must be a number within (0, 2], got {value!r}")
        for name in ("tracker_eta_max", "calorimeter_eta_max", "ecal_threshold", "hcal_threshold", "track_pt_min"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"detector.{name} must be a non-negative number, got {value!r}")
        expected = {
            "tracking_efficiency": 2,
            "track_resolution_constant": 2,
            "track_resolution_slope": 2,
            "ecal_stochastic": 3,
            "ecal_constant": 3,
            "hcal_stochastic": 3,
            "hcal_constant": 3,
            "ecal_cell": 2,
            "hcal_cell": 2,
            "d0_resolution": 2,
            "dz_resolution": 2,
        }
        for name, length in expected.items():
            try:
                value = tuple(float(v) for v in getattr(self, name))
            except (TypeError, ValueError) as error:
                raise ConfigError(f"detector.{name} must be {length} numbers, got {getattr(self, name)!r}") from error
            if len(value) != length or not all(math.isfinite(v) and v >= 0 for v in value):
                raise ConfigError(f"detector.{name} must be {length} non-negative numbers, got {value!r}")
            object.__setattr__(self, name, value)
        if not all(0 <= e <= 1 for e in self.tracking_efficiency):
            raise ConfigError(f"detector.tracking_efficiency must be within 0-1, got {self.tracking_efficiency}")
        if not all(0 < size <= math.pi for size in (*self.ecal_cell, *self.hcal_cell)):
            raise ConfigError("detector cell sizes must be within (0, π]")

    def describe(self) -> dict[str, object]:
        """The detector's settings as a mapping (for provenance)."""
        return asdict(self)


DETECTOR_PROFILES: dict[str, DetectorConfig] = {
    "nominal": DetectorConfig(name="nominal"),
    "alt": DetectorConfig(
        name="alt",
        tracking_efficiency=(0.90, 0.80),
        track_resolution_constant=(0.0075, 0.015),
        track_resolution_slope=(2.25e-4, 4.5e-4),
        ecal_stochastic=(0.05, 0.08, 1.2),
        ecal_constant=(0.01, 0.015, 0.07),
        hcal_stochastic=(1.2, 1.2, 2.0),
        hcal_constant=(0.08, 0.08, 0.12),
        ecal_scale=0.98,
        hcal_scale=0.92,
        d0_resolution=(0.015, 0.135),
        dz_resolution=(0.045, 0.165),
    ),
}


def load_detector(spec: str | Path | DetectorConfig | None) -> DetectorConfig | None:
    """A detector from a profile name (``nominal``, ``alt``), a YAML file, or ``None`` (no detector).

    The YAML file maps ``DetectorConfig`` fields to values, with an optional ``base`` profile for
    the rest; its name defaults to the file's stem.
    """
    if spec is None or isinstance(spec, DetectorConfig):
        return spec
    text = str(spec).strip()
    if text.lower() in DETECTOR_PROFILES:
        return DETECTOR_PROFILES[text.lower()]
    path = Path(text)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise ConfigError(f"unknown detector {text!r}: choose from {', '.join(DETECTOR_PROFILES)} or a YAML file")
    if not path.is_file():
        raise ConfigError(f"detector file {path} does not exist")
    import yaml

    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"detector file {path}: not valid YAML ({error})".replace("\n", " ")) from error
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"detector file {path}: expected a mapping of detector fields")
    base_name = str(values.pop("base", "nominal")).lower()
    base = DETECTOR_PROFILES.get(base_name)
    if base is None:
        raise ConfigError(
            f"detector file {path}: unknown base {base_name!r}: choose from {', '.join(DETECTOR_PROFILES)}"
        )
    known = {f.name for f in fields(DetectorConfig)}
    unknown = sorted(set(map(str, values)) - known)
    if unknown:
        raise ConfigError(
            f"detector file {path}: unknown field {', '.join(unknown)}: choose from {', '.join(sorted(known))}"
        )
    values.setdefault("name", path.stem)
    try:
        return replace(base, **values)
    except (ConfigError, TypeError) as error:
        raise ConfigError(f"detector file {path}: {error}") from error


def apply_detector(particles: FinalState, config: DetectorConfig, rng: np.random.Generator) -> FinalState:
    """Reconstructed particles (tracks and calorimeter cells) of a batch of events."""
    event = np.repeat(np.arange(particles.n_events), particles.counts)
    pt = kinematics.pt(particles.px, particles.py)
    eta = kinematics.pseudorapidity(particles.px, particles.py, particles.pz)
    abs_eta = np.abs(eta)
    absolute = np.abs(particles.pid)
    charged = particles.charge != 0
    in_tracker = abs_eta < config.tracker_eta_max
    efficiency = np.where(abs_eta < _REGION_EDGES[0], *config.tracking_efficiency)
    tracked = charged & in_tracker & (pt > config.track_pt_min) & (rng.random(len(particles)) < efficiency)
    # Untracked charged particles reach the calorimeter unless they curl up (low pT in the
    # tracker acceptance) or are muons (minimum ionising).
    to_calorimeter = (
        (~charged | (~tracked & ~(in_tracker & (pt <= config.track_pt_min))))
        & (absolute != 13)
        & (abs_eta < config.calorimeter_eta_max)
    )
    electromagnetic = (particles.pid == 22) | (absolute == 11)

    tracks = _smear_tracks(particles, tracked=tracked, pt=pt, abs_eta=abs_eta, config=config, rng=rng)
    ecal = _cells(
        particles,
        event,
        to_calorimeter & electromagnetic,
        rng=rng,
        cell=config.ecal_cell,
        stochastic=config.ecal_stochastic,
        constant=config.ecal_constant,
        threshold=config.ecal_threshold,
        pdgid=ECAL_CELL_PDGID,
        scale=config.ecal_scale,
    )
    hcal = _cells(
        particles,
        event,
        to_calorimeter & ~electromagnetic,
        rng=rng,
        cell=config.hcal_cell,
        stochastic=config.hcal_stochastic,
        constant=config.hcal_constant,
        threshold=config.hcal_threshold,
        pdgid=HCAL_CELL_PDGID,
        scale=config.hcal_scale,
    )
    track_event = event[tracked]
    return _merge(particles.n_events, [(track_event, tracks), ecal, hcal])


def _region(abs_eta: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(_REGION_EDGES), abs_eta, side="right")


def _smear_tracks(
    particles: FinalState,
    *,
    tracked: np.ndarray,
    pt: np.ndarray,
    abs_eta: np.ndarray,
    config: DetectorConfig,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    barrel = abs_eta[tracked] < _REGION_EDGES[0]
    constant = np.where(barrel, *config.track_resolution_constant)
    slope = np.where(barrel, *config.track_resolution_slope)
    sigma = np.hypot(constant, slope * pt[tracked])
    scale = np.clip(1.0 + sigma * rng.standard_normal(len(sigma)), 0.01, None)
    px, py, pz = (getattr(particles, name)[tracked] * scale for name in ("px", "py", "pz"))
    original = particles.energy[tracked] ** 2 - (
        particles.px[tracked] ** 2 + particles.py[tracked] ** 2 + particles.pz[tracked] ** 2
    )
    mass2 = np.maximum(original, 0.0)
    vx, vy, vz = particles.vertex()
    return {
        "px": px,
        "py": py,
        "pz": pz,
        "energy": np.sqrt(px**2 + py**2 + pz**2 + mass2),
        "pid": particles.pid[tracked],
        "charge": particles.charge[tracked],
        "vx": vx[tracked],
        "vy": vy[tracked],
        "vz": vz[tracked],
    }


def _cells(
    particles: FinalState,
    event: np.ndarray,
    selected: np.ndarray,
    *,
    rng: np.random.Generator,
    cell: tuple[float, float],
    stochastic: tuple[float, float, float],
    constant: tuple[float, float, float],
    threshold: float,
    pdgid: int,
    scale: float = 1.0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Merge the selected particles into Δη × Δφ cells per event; scale and smear the cell energies."""
    deta, dphi = cell
    n_phi = max(1, round(2 * np.pi / dphi))
    dphi = 2 * np.pi / n_phi  # cells tile the full circle
    px, py, pz = particles.px[selected], particles.py[selected], particles.pz[selected]
    eta = kinematics.pseudorapidity(px, py, pz)
    phi = kinematics.azimuth(px, py)
    ieta = np.floor(eta / deta).astype(np.int64)
    iphi = np.minimum(np.floor((phi + np.pi) / dphi).astype(np.int64), n_phi - 1)
    keys = np.stack([event[selected], ieta, iphi], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    energy = np.bincount(inverse.ravel(), weights=particles.energy[selected], minlength=len(unique))

    cell_eta = (unique[:, 1] + 0.5) * deta
    cell_phi = (unique[:, 2] + 0.5) * dphi - np.pi
    region = _region(np.abs(cell_eta))
    s, c = np.asarray(stochastic)[region], np.asarray(constant)[region]
    with np.errstate(divide="ignore"):
        sigma = np.hypot(s / np.sqrt(np.maximum(energy, 1e-12)), c)
    smeared = energy * (scale + sigma * rng.standard_normal(len(energy)))
    keep = smeared > threshold
    smeared, cell_eta, cell_phi = smeared[keep], cell_eta[keep], cell_phi[keep]
    cell_pt = smeared / np.cosh(cell_eta)
    n = len(smeared)
    return unique[keep, 0], {
        "px": cell_pt * np.cos(cell_phi),
        "py": cell_pt * np.sin(cell_phi),
        "pz": cell_pt * np.sinh(cell_eta),
        "energy": smeared,
        "pid": np.full(n, pdgid, dtype=np.int64),
        "charge": np.zeros(n),
        "vx": np.zeros(n),
        "vy": np.zeros(n),
        "vz": np.zeros(n),  # cells point at the origin
    }


def _merge(n_events: int, parts: list[tuple[np.ndarray, dict[str, np.ndarray]]]) -> FinalState:
    event = np.concatenate([part[0] for part in parts])
    order = np.argsort(event, kind="stable")
    columns = {
        name: np.concatenate([part[1][name] for part in parts])[order]
        for name in ("px", "py", "pz", "energy", "pid", "charge", "vx", "vy", "vz")
    }
    return FinalState(**columns, counts=np.bincount(event, minlength=n_events).astype(np.int64))
